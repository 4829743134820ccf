"""Refunds of captured payment intents (/v1/refunds): wallet, card and crypto (ADR 0035)."""
