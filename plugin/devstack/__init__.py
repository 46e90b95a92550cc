"""A whole local stack for trying and testing the plugin: Redis, Tyk, an Auth0 stand-in, an echo upstream."""
