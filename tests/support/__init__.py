"""Test-only helpers: keys generated at test time, Auth0-shaped tokens, Tyk-shaped Dispatch objects."""
