"""Payment links on the page: ``GET /pay/link/<id>`` shows what is sold; its form's POST makes
the visitor's intent (``shared.invoices.links.start_checkout``) and sends them to its page.

A GET never creates anything, so crawlers, previews and refreshes make no intents. The POST
(CSRF-checked) is idempotent per browser: the visitor's ``client_key`` is derived from a random
cookie (HttpOnly, SameSite=Lax, path ``/pay``, a day) and the link and amount, so a double
click, a refresh of the POST or a back-and-forth finds the SAME intent (its id derives from the
key), while another amount for a custom-amount link is another intent. Starts are limited per
address (30/min, counted in Firestore like the API's route), so a refresh storm costs reads,
not intents.
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

import flask

from shared.checkout import access, money
from shared.invoices import links
from shared.invoices.models import StartCheckout
from shared.ledger import assets
from shared.platform import ratelimit
from shared.platform.errors import InvalidRequest
from shared.platform.router import client_ip
from shared.platform.uow import run_unit
from shared.web.config import get_web_settings

VISITOR_COOKIE = "payloom_pay_visitor"
START_LIMIT = ratelimit.Limit("checkout.link.start", 30, 60, shared=True)


def load(deps, link_id: str) -> dict[str, Any]:
    """An active link of any mode (the id is the credential), else 404."""
    if not access.LINK_RE.match(link_id or ""):
        raise access.missing()
    snap = links.link_ref(deps.db, link_id).get()
    doc = snap.to_dict() if snap.exists else None
    if doc is None or not doc.get("active"):
        raise access.missing()
    return doc


def describe(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    """What the landing page shows: lines or a fixed price, or the custom amount's bounds."""
    code = doc["currency"]
    custom = doc.get("custom_amount")
    return {
        "description": doc.get("description") or "",
        "currency": code,
        "lines": [{"description": x["description"], "quantity": x["quantity"],
                   "amount": money.ledger(x["quantity"] * x["unit_amount"], code, lang)}
                  for x in doc.get("line_items") or []],
        "amount": money.ledger(doc.get("amount"), code, lang) if doc.get("amount") else "",
        "custom": None if custom is None else {
            "minimum": money.ledger(custom["minimum"], code, lang),
            "maximum": money.ledger(custom["maximum"], code, lang),
            "preset": assets.format_decimal(custom["preset"], code) if custom.get("preset") else ""},
    }


def visitor(request: flask.Request) -> tuple[str, bool]:
    """The browser's visitor cookie value and whether it is new."""
    value = request.cookies.get(VISITOR_COOKIE, "")
    if 24 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum():
        return value, False
    return secrets.token_urlsafe(24), True


def client_key(visitor_id: str, link_id: str, amount: int | None) -> str:
    return hashlib.sha256(f"{visitor_id}|{link_id}|{amount}".encode()).hexdigest()[:48]


def parse_amount(doc: dict[str, Any], raw: str | None) -> int | None:
    """The custom amount typed by the visitor (a decimal in the link's currency)."""
    if doc.get("custom_amount") is None:
        return None
    if raw is None or not raw.strip():
        raise InvalidRequest("Enter an amount.", code="parameter_missing", param="amount")
    return assets.parse_decimal(raw.strip()[:40], doc["currency"])


def start(deps, request: flask.Request, link_id: str, visitor_id: str) -> str:
    """The client secret of this visitor's intent for the link (made once)."""
    ratelimit.enforce(deps.db, START_LIMIT, client_ip(request, deps.settings), deps.clock.now())
    doc = load(deps, link_id)
    amount = parse_amount(doc, request.form.get("amount"))
    body = StartCheckout(client_key=client_key(visitor_id, link_id, amount), amount=amount)
    return run_unit(deps, lambda uow: links.start_checkout(uow, link_id, body)).client_secret


def set_visitor(deps, response: flask.Response, value: str) -> None:
    response.set_cookie(VISITOR_COOKIE, value, max_age=86400, path="/pay", httponly=True,
                        samesite="Lax", secure=get_web_settings().cookie_secure(deps.settings))
