"""Typed errors: one class per ``type`` of the API's error envelope.

Every API error answers ``{"error": {"type", "code", "message", "param"}}``; the class is
chosen by ``type`` (never by guessing from the status), so a 404 ``resource_missing`` is an
``InvalidRequestError`` as at Stripe. Errors that never reached a Payloom router (a proxy's
HTML 502, a dropped connection) become ``APIError`` / ``APIConnectionError``.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional


class PayloomError(Exception):
    """Base class. ``http_status``, ``code``, ``param``, ``request_id`` and the parsed
    ``json_body`` are kept for logging and branching; the message is the API's own."""

    def __init__(self, message: str = "", *, http_status: Optional[int] = None,
                 code: Optional[str] = None, param: Optional[str] = None,
                 request_id: Optional[str] = None, json_body: Optional[Any] = None,
                 headers: Optional[Mapping[str, str]] = None,
                 idempotency_key: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.param = param
        self.request_id = request_id
        self.json_body = json_body
        self.headers = dict(headers or {})
        self.idempotency_key = idempotency_key

    @property
    def type(self) -> Optional[str]:
        return ENVELOPE_TYPE_OF.get(type(self))

    def __str__(self) -> str:
        parts = [self.message or self.__class__.__name__]
        if self.code:
            parts.append(f"(code={self.code}")
            parts[-1] += f", param={self.param})" if self.param else ")"
        if self.request_id:
            parts.append(f"[request {self.request_id}]")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(message={self.message!r}, http_status={self.http_status!r}, "
                f"code={self.code!r}, param={self.param!r}, request_id={self.request_id!r})")


class InvalidRequestError(PayloomError):
    """400/404/405/409/413/415/422: the request cannot succeed as sent (``param`` names the
    field when one is at fault)."""


class AuthenticationError(PayloomError):
    """401: no key, a malformed, revoked or expired key."""


class PermissionError(PayloomError):  # noqa: A001 — Stripe's name; also PermissionDeniedError
    """403: the key lacks a scope, or a user's role is too low, or another merchant."""


PermissionDeniedError = PermissionError


class IdempotencyError(PayloomError):
    """409: the Idempotency-Key was used with other parameters (``idempotency_key_reused``),
    or its first request is still running after every retry (``idempotency_key_in_use``)."""


class RateLimitError(PayloomError):
    """429 after the retries (or with a ``Retry-After`` too long to wait for)."""


class APIError(PayloomError):
    """5xx after the retries, or an answer that is not the error envelope."""


class APIConnectionError(PayloomError):
    """The request never got an answer (DNS, refused, reset, timeout) after the retries.
    A mutating call may still have happened: retry it with the same ``idempotency_key``."""

    def __init__(self, message: str = "", *, should_retry: bool = True, **kw: Any):
        super().__init__(message, **kw)
        self.should_retry = should_retry


class SignatureVerificationError(PayloomError):
    """A webhook whose signature, timestamp or headers do not verify."""

    def __init__(self, message: str, *, headers: Optional[Mapping[str, str]] = None):
        super().__init__(message, headers=headers)


BY_ENVELOPE_TYPE = {
    "invalid_request_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionError,
    "idempotency_error": IdempotencyError,
    "rate_limit_error": RateLimitError,
    "api_error": APIError,
}
ENVELOPE_TYPE_OF = {cls: name for name, cls in BY_ENVELOPE_TYPE.items()}

_BY_STATUS = {401: AuthenticationError, 403: PermissionError, 429: RateLimitError}


def from_response(status: int, body: Any, headers: Mapping[str, str], *,
                  idempotency_key: Optional[str] = None) -> PayloomError:
    """The typed error of a non-2xx answer."""
    request_id = headers.get("Request-Id") or headers.get("request-id")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        cls = BY_ENVELOPE_TYPE.get(error["type"]) or _fallback(status)
        return cls(str(error.get("message") or ""), http_status=status, code=error.get("code"),
                   param=error.get("param"), request_id=request_id, json_body=body,
                   headers=headers, idempotency_key=idempotency_key)
    cls = _fallback(status)
    return cls(f"Unexpected answer (HTTP {status}) without an error envelope.", http_status=status,
               request_id=request_id, json_body=body, headers=headers,
               idempotency_key=idempotency_key)


def _fallback(status: int) -> type:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return InvalidRequestError if 400 <= status < 500 else APIError


__all__ = ["PayloomError", "InvalidRequestError", "AuthenticationError", "PermissionError",
           "PermissionDeniedError", "IdempotencyError", "RateLimitError", "APIError",
           "APIConnectionError", "SignatureVerificationError", "from_response"]
