"""Outbound webhooks: endpoints, Standard Webhooks signing, delivery with retries (ADR 0008)."""
