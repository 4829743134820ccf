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


def error_envelope(type_: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": type_, "code": code, "message": message, "param": param}}


INTERNAL_ERROR = error_envelope("api_error", "internal_error",
                                "An internal error occurred. It has been logged; retry later.")
