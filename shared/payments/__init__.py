"""Payment intents: states, methods (wallet; crypto by helper X) and settlement (ADR 0031)."""
