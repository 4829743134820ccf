"""The events API (read side of the outbox) and the outbox sweeper."""
