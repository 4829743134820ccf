"""Factors: phone numbers and SMS one-time codes, phone sign-in, and second factors (TOTP, backup codes, SMS)."""
