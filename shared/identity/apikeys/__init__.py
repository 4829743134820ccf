"""API keys: secret keys for merchants' servers, and the scopes they may carry."""
