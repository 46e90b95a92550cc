"""tyk-auth0-plugin: a gRPC auth plugin for the Tyk gateway that verifies Auth0 access tokens."""

__version__ = "0.1.0"
