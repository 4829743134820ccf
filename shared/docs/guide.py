"""What the quick start, events and errors pages show, built from the code they describe.

The quick start's request is a constant that tests send to the running stack (so the page's
first call is known to work); the events come from the OpenAPI ``webhooks`` section; the error
codes from its ``x-error-codes`` (every code the source raises).
"""
from __future__ import annotations

import json
import shlex
from typing import Any

from babel.dates import format_timedelta

from shared.platform.errors import error_envelope
from shared.platform.openapi import ERRORS
from shared.web import i18n
from shared.webhooks.settings import STANDARD_SCHEDULE

# The first payment intent of the quick start (tests create it with a real test key).
QUICKSTART_INTENT: dict[str, Any] = {"amount": 1500, "currency": "USD",
                                     "description": "Order #1042",
                                     "metadata": {"order_id": "1042"}}
QUICKSTART_IDEMPOTENCY_KEY = "order-1042"
ERROR_EXAMPLE = error_envelope("invalid_request_error", "parameter_missing",
                               "Missing required param: currency.", "currency")
RETRY_SCHEDULE = STANDARD_SCHEDULE
HTTP_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error",
              503: "api_error"}

WEBHOOK_EXAMPLE = '''\
import payloom
from flask import Flask, request

app = Flask(__name__)
SECRET = "whsec_…"   # shown once when you create the endpoint

@app.post("/payloom/webhooks")
def receive():
    try:
        event = payloom.Webhook.construct_event(request.get_data(), request.headers, SECRET)
    except payloom.SignatureVerificationError:
        return "", 400
    if event.type == "payment_intent.succeeded":
        fulfil(event.data.object.id)   # de-duplicate on event.id: deliveries may repeat
    return "", 204
'''


def curl_create(base: str) -> str:
    body = json.dumps(QUICKSTART_INTENT, separators=(",", ":"))
    return (f"curl {base}/v1/payment_intents \\\n"
            f'  -H "Authorization: Bearer $PAYLOOM_KEY" \\\n'
            f'  -H "Idempotency-Key: {QUICKSTART_IDEMPOTENCY_KEY}" \\\n'
            f'  -H "Content-Type: application/json" \\\n'
            f"  -d {shlex.quote(body)}")


def curl_retrieve(base: str) -> str:
    return (f"curl {base}/v1/payment_intents/pi_… \\\n"
            f'  -H "Authorization: Bearer $PAYLOOM_KEY"')


def sdk_example(base: str) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in QUICKSTART_INTENT.items())
    return (
        "import payloom\n\n"
        'payloom.api_key = "sk_test_…"        # test mode: nothing moves real money\n'
        f'payloom.api_base = "{base}"\n\n'
        f"intent = payloom.PaymentIntent.create({args},\n"
        f"                                      idempotency_key={QUICKSTART_IDEMPOTENCY_KEY!r})\n"
        "print(intent.id, intent.status, intent.client_secret)\n\n"
        "intent = payloom.PaymentIntent.retrieve(intent.id)\n"
        "for intent in payloom.PaymentIntent.list(limit=10).auto_paging_iter():\n"
        "    print(intent.id, intent.amount, intent.currency)\n")


def event_families(hooks: dict[str, Any], reference: str) -> list[tuple[str, list[dict[str, str]]]]:
    """Event types grouped by the object they are about, each linking to its entry in the
    reference (Swagger UI lists webhooks under the tag ``webhooks``: ``#/webhooks/<operationId>``)."""
    families: dict[str, list[dict[str, str]]] = {}
    for name, hook in sorted(hooks.items()):
        post = hook["post"]
        families.setdefault(name.split(".", 1)[0], []).append({
            "name": name, "summary": post.get("summary", "") if post.get("summary") != name else "",
            "version": post.get("x-event-version", ""),
            "href": f"{reference}#/webhooks/{post.get('operationId', '')}"})
    return sorted(families.items())


def sample_event(hooks: dict[str, Any]) -> dict[str, Any] | None:
    hook = hooks.get("payment_intent.succeeded") or next(iter(hooks.values()), None)
    if hook is None:
        return None
    return hook["post"]["requestBody"]["content"]["application/json"].get("example")


def schedule_text(lang: str) -> list[str]:
    locale = i18n.locale(lang)
    return [format_timedelta(s, locale=locale, threshold=1.0) if s else "0"
            for s in RETRY_SCHEDULE]


def error_table(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every status the API answers with an error, its type and the codes the source raises
    (the document's ``x-error-codes``, so a frozen document needs no source scan)."""
    codes = {int(k): v for k, v in document.get("x-error-codes", {}).items()}
    rows = []
    for status in sorted(set(codes) | set(ERRORS)):
        known = ERRORS.get(status)
        rows.append({"status": status, "codes": codes.get(status, []),
                     "type": known[2][0] if known else HTTP_TYPES.get(status, "invalid_request_error")})
    return rows
