"""Reading the dashboard's forms: bounded text, decimal amounts, and the one-time key that
makes a form's money-moving submission idempotent.

A form that moves money (a refund) or creates a priced object (an invoice, a payment link)
carries a random ``idem`` value made when the form was shown; the service derives the new
object's id from it (the same ``idempotency_key`` argument the API passes from the
``Idempotency-Key`` header), so a double click or a resubmitted form creates it once.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.ledger import assets
from shared.platform.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)
_IDEM_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def text(form: Mapping[str, str], name: str, max_length: int = 200) -> str:
    value = (form.get(name) or "").strip()
    if len(value) > max_length:
        raise InvalidRequest(f"{name} is too long (at most {max_length} characters).",
                             param=name, code="parameter_invalid")
    return value


def new_idem() -> str:
    return secrets.token_urlsafe(18)


def idem(form: Mapping[str, str]) -> str:
    value = form.get("idem") or ""
    if not _IDEM_RE.match(value):
        raise InvalidRequest("The form expired; open it again.", param="idem",
                             code="form_expired")
    return value


def amount(form: Mapping[str, str], name: str, currency: str, *, required: bool = True) -> int | None:
    """A decimal amount typed in the currency (``"12.34"`` USD → 1234), exact or refused."""
    raw = text(form, name, 40).replace(",", "")
    if not raw:
        if required:
            raise InvalidRequest(f"Enter the {name.replace('_', ' ')}.", param=name,
                                 code="parameter_missing")
        return None
    return assets.parse_decimal(raw, assets.get_asset(currency.upper(), param="currency"),
                                param=name)


def integer(form: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = text(form, name, 20) or str(default)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}.",
                             param=name, code="parameter_invalid")
    return int(raw)


def validate(model: type[M], data: dict[str, Any]) -> M:
    """``model`` built from the form's values, or a 400 naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ())) or None
        raise InvalidRequest(f"Invalid {param or 'value'}: {first.get('msg', 'invalid value')}",
                             param=param, code="parameter_invalid") from None


def confirmed(form: Mapping[str, str]) -> bool:
    return form.get("confirm") == "yes"
