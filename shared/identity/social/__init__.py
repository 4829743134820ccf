"""Social sign-in: OAuth 2 / OpenID Connect providers and the identities linked to users."""
