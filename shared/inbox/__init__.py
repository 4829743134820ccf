"""The verified inbox for providers' webhooks (card processor, KYC, payouts): verify the
provider's own signature, store the raw event once per event id, acknowledge, then process it
from a Cloud Task with retries through the handlers the owning capabilities register (ADR 0008)."""
