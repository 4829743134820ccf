"""Identity and access: accounts, sessions, MFA, phone OTP, social login, SIWE, DIDs, API keys."""
