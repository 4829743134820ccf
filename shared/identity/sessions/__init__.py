"""Sessions: signing keys, access tokens, sessions and refresh tokens, the authenticator, how sign-ins end."""
