"""What the page shows of an intent: its state, amounts, and the version of both (the ETag).

Pure (no I/O): a function of the intent document, the time and the language, so the full page,
the ``/status`` poll and the tests agree. The payer sees the amount, what was received, what is
still due, the crypto payment request once chosen, and the last card failure's reason; never the
merchant's ids, receipts, fees, settlement or the payer's own identity.

States: ``awaiting`` (payable), ``processing`` (paid in full, confirming), ``underpaid`` (part
arrived; the rest is due), ``succeeded`` (also overpaid and paid late: the merchant has the
money), ``expired`` and ``canceled``. An intent still ``requires_payment_method`` past its
``expires_at`` shows ``expired`` at once: the expiry timer may run a little later.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from shared.payments import states

AWAITING, PROCESSING, UNDERPAID, SUCCEEDED, EXPIRED, CANCELED = (
    "awaiting", "processing", "underpaid", "succeeded", "expired", "canceled")
FINAL = frozenset({SUCCEEDED, CANCELED})
# A failed card attempt's reason → a message key of the catalogue (``notice`` in the panel).
CARD_FAILURES = {"insufficient_funds": "insufficient_funds",
                 "payment_intent_authentication_failure": "authentication_failed"}


def unix(value: Any) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def state_of(doc: dict[str, Any], now: dt.datetime) -> str:
    status = doc["status"]
    if status in states.PAID:
        return SUCCEEDED
    if status == states.REQUIRES_PAYMENT_METHOD:
        return EXPIRED if now >= doc["expires_at"] else AWAITING
    return {states.PROCESSING: PROCESSING, states.UNDERPAID: UNDERPAID,
            states.CANCELED: CANCELED}.get(status, EXPIRED)


def card_notice(doc: dict[str, Any]) -> str | None:
    """Why the last card attempt failed, while the intent is payable again (else None)."""
    card = doc.get("card") or {}
    err = card.get("last_payment_error")
    if doc["status"] != states.REQUIRES_PAYMENT_METHOD or card.get("status") != \
            states.REQUIRES_PAYMENT_METHOD or not err:
        return None
    return CARD_FAILURES.get(err.get("decline_code") or "") or \
        CARD_FAILURES.get(err.get("code") or "") or "card_declined"


def remaining(doc: dict[str, Any]) -> int | None:
    """Minor units still due (underpaid), else None."""
    if doc.get("amount") is None:
        return None
    return max(0, int(doc["amount"]) - int(doc.get("amount_received") or 0))


def crypto_remaining(doc: dict[str, Any]) -> int | None:
    """On-chain base units still to send to the deposit address (what is on its way counts)."""
    crypto = doc.get("crypto") or {}
    if crypto.get("amount_due") is None:
        return None
    return max(0, int(crypto["amount_due"]) - int(crypto.get("received") or 0))


def version(doc: dict[str, Any], now: dt.datetime, lang: str) -> str:
    """The ETag of what the panel shows: changes exactly when the panel would."""
    crypto = doc.get("crypto") or {}
    card = doc.get("card") or {}
    shown = [state_of(doc, now), doc["status"], doc.get("amount_received"),
             doc.get("amount_pending"), crypto.get("address"), crypto.get("received"),
             crypto.get("confirmed"), card.get("status"), card.get("attempts"),
             card_notice(doc), lang]
    digest = hashlib.sha256(json.dumps(shown, default=str).encode()).hexdigest()[:20]
    return f'"{digest}"'


def overpaid_by(doc: dict[str, Any]) -> int | None:
    if doc["status"] != states.OVERPAID or doc.get("amount") is None:
        return None
    return int(doc.get("amount_received") or 0) - int(doc["amount"])


def time_left(doc: dict[str, Any], now: dt.datetime) -> str:
    """The countdown's first value ("14:59", "1:02:03"); the page's script keeps it going."""
    seconds = max(0, int((doc["expires_at"] - now).total_seconds()))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
