"""The identity routers. Route modules register on these; function entry points import them.

``auth``: public sign-up/sign-in flows under /v1/auth (plus /.well-known/jwks.json).
``accounts``: the signed-in user's own resources under /v1/me.
"""
from shared.platform.router import Router

auth_api = Router("auth", public_prefix="auth")
accounts_api = Router("accounts", public_prefix="me")
