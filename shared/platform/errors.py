"""Domain errors and the one error envelope every function answers with.

``{"error": {"type", "code", "message", "param"}}``; ``type`` follows Stripe's families.
Services raise these; the router turns them into responses. Anything else is a 500 whose
details stay in the logs.
"""
from __future__ import annotations

from typing import Any


class PayloomError(Exception):
    status: int = 400
    type: str = "invalid_request_error"
    code: str = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return error_envelope(self.type, self.code, self.message, self.param)


class InvalidRequest(PayloomError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class AuthenticationError(PayloomError):
    status, type, code = 401, "authentication_error", "unauthenticated"


class PermissionDenied(PayloomError):
    status, type, code = 403, "permission_error", "forbidden"


class NotFound(PayloomError):
    status, type, code = 404, "invalid_request_error", "resource_missing"


class MethodNotAllowed(PayloomError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class Conflict(PayloomError):
    status, type, code = 409, "invalid_request_error", "conflict"


class IdempotencyError(PayloomError):
    status, type, code = 409, "idempotency_error", "idempotency_key_reused"


class PayloadTooLarge(PayloomError):
    status, type, code = 413, "invalid_request_error", "payload_too_large"


class UnsupportedMediaType(PayloomError):
    status, type, code = 415, "invalid_request_error", "unsupported_media_type"


class Unprocessable(PayloomError):
    """The request was well formed but the domain refused it (insufficient funds, wrong state)."""
    status, type, code = 422, "invalid_request_error", "unprocessable"


class RateLimited(PayloomError):
    status, type, code = 429, "rate_limit_error", "rate_limited"


class ServiceUnavailable(PayloomError):
    status, type, code = 503, "api_error", "service_unavailable"


REALM = "payloom"


def www_authenticate(token_rejected: bool) -> str:
    """RFC 6750 section 3: every 401 names the Bearer scheme; a token that was presented and
    refused adds ``error="invalid_token"`` (no token at all gets no error code)."""
    value = f'Bearer realm="{REALM}"'
    return value + ', error="invalid_token"' if token_rejected else value


def error_envelope(type_: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": type_, "code": code, "message": message, "param": param}}


# Statuses the HTTP layers (werkzeug, the local gateway's server) produce before any router runs.
_HTTP_CODES = {400: "invalid_request", 404: "unknown_route", 405: "method_not_allowed",
               408: "request_timeout", 411: "length_required", 413: "payload_too_large",
               414: "uri_too_long", 415: "unsupported_media_type", 431: "header_fields_too_large"}


def http_error_envelope(status: int, reason: str, message: str | None = None) -> dict[str, Any]:
    """The envelope for a bare HTTP status (no router involved), e.g. 414 URI Too Long."""
    if status >= 500:
        return INTERNAL_ERROR
    code = _HTTP_CODES.get(status) or reason.lower().replace(" ", "_").replace("'", "")
    return error_envelope("invalid_request_error", code, message or f"{reason} ({status}).")


INTERNAL_ERROR = error_envelope("api_error", "internal_error",
                                "An internal error occurred. It has been logged; retry later.")
