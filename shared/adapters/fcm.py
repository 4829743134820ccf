"""Push notifications through Firebase Cloud Messaging (firebase-admin, FCM HTTP v1).

``FcmPushSender`` sends data-only messages with an Android config (priority, TTL, collapse key)
and turns firebase-admin's errors into two outcomes callers can act on:

* ``PushTokenInvalid``: the token will never work again (unregistered, wrong sender, malformed).
  Delete it.
* ``PushUnavailable``: FCM failed transiently *after* the SDK's own retries (firebase-admin retries
  500/503 up to 4 times with backoff). Retry later, e.g. from a task.

Anything else (bad payload, auth/config problems) raises ``PushRejected``. Errors keep the
firebase-admin exception as ``__cause__``.

The adapter uses the firebase app it is given, or the default app; how that app is configured
(credentials, endpoint) is the composition root's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping, Protocol, Sequence

from firebase_admin import App, exceptions, messaging

__all__ = [
    "FcmPushSender",
    "PushError",
    "PushRejected",
    "PushResult",
    "PushSender",
    "PushTokenInvalid",
    "PushUnavailable",
]

PRIORITIES = ("high", "normal")
MAX_BATCH = 500  # firebase-admin's send_each limit


class PushError(Exception):
    """Base class of push-sending failures."""

    def __init__(self, message: str, *, token: str | None = None) -> None:
        super().__init__(message)
        self.token = token


class PushTokenInvalid(PushError):
    """The registration token is permanently unusable: remove it from storage."""


class PushUnavailable(PushError):
    """FCM is unavailable or throttling, after the SDK's retries: try again later."""


class PushRejected(PushError):
    """FCM rejected the request for a reason other than the token (payload, auth, config)."""


@dataclass(frozen=True)
class PushResult:
    """Outcome of one message in ``send_many``: exactly one of message_id / error is set."""

    token: str
    message_id: str | None = None
    error: PushError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class PushSender(Protocol):
    """Port: send a data-only push to one device token; returns the provider's message id."""

    def send(
        self,
        token: str,
        data: dict[str, str],
        *,
        priority: str = "high",
        ttl_seconds: int | None = None,
        collapse_key: str | None = None,
    ) -> str: ...


_TRANSIENT = (
    exceptions.UnavailableError,
    exceptions.InternalError,
    exceptions.ResourceExhaustedError,  # includes messaging.QuotaExceededError
    exceptions.DeadlineExceededError,
    exceptions.UnknownError,  # connection failures without an HTTP response
    exceptions.AbortedError,
)


def _is_token_argument_error(error: exceptions.FirebaseError) -> bool:
    """Whether an INVALID_ARGUMENT answer is about the registration token itself."""
    text = str(error).lower()
    if "registration token" in text:
        return True
    response = getattr(error, "http_response", None)
    if response is None:
        return False
    try:
        body = json.loads(response.content.decode() or "{}")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False
    details = (body.get("error") or {}).get("details") or []
    for detail in details:
        for violation in detail.get("fieldViolations") or []:
            if violation.get("field") == "message.token":
                return True
    return False


def _translate(error: exceptions.FirebaseError, token: str) -> PushError:
    if isinstance(error, (messaging.UnregisteredError, messaging.SenderIdMismatchError)):
        return PushTokenInvalid(f"FCM token rejected: {error}", token=token)
    if isinstance(error, exceptions.InvalidArgumentError) and _is_token_argument_error(error):
        return PushTokenInvalid(f"FCM token invalid: {error}", token=token)
    if isinstance(error, _TRANSIENT):
        return PushUnavailable(f"FCM unavailable: {error}", token=token)
    return PushRejected(f"FCM rejected the message: {error}", token=token)


def _check_data(data: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(data, Mapping):
        raise TypeError("data must be a mapping of str to str")
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"data must map str to str, got {key!r}: {type(value).__name__}")
    return dict(data)


class FcmPushSender:
    """``PushSender`` on firebase-admin. Thread-safe (firebase-admin's client is)."""

    def __init__(self, app: App | None = None, *, dry_run: bool = False) -> None:
        self._app = app
        self._dry_run = dry_run

    def _message(
        self,
        token: str,
        data: Mapping[str, str],
        priority: str,
        ttl_seconds: int | None,
        collapse_key: str | None,
    ) -> messaging.Message:
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}, got {priority!r}")
        if ttl_seconds is not None and (not isinstance(ttl_seconds, int) or ttl_seconds < 0):
            raise ValueError("ttl_seconds must be a non-negative int")
        if not isinstance(token, str) or not token.strip():
            raise PushTokenInvalid("empty FCM registration token", token=token)
        return messaging.Message(
            token=token,
            data=_check_data(data),
            android=messaging.AndroidConfig(
                priority=priority,
                ttl=timedelta(seconds=ttl_seconds) if ttl_seconds is not None else None,
                collapse_key=collapse_key,
            ),
        )

    def send(
        self,
        token: str,
        data: dict[str, str],
        *,
        priority: str = "high",
        ttl_seconds: int | None = None,
        collapse_key: str | None = None,
    ) -> str:
        """Send one data-only message; returns FCM's message name ``projects/P/messages/ID``."""
        message = self._message(token, data, priority, ttl_seconds, collapse_key)
        try:
            return messaging.send(message, dry_run=self._dry_run, app=self._app)
        except exceptions.FirebaseError as error:
            raise _translate(error, token) from error

    def send_many(
        self,
        tokens: Sequence[str],
        data: dict[str, str],
        *,
        priority: str = "high",
        ttl_seconds: int | None = None,
        collapse_key: str | None = None,
        batch_size: int = 100,
    ) -> list[PushResult]:
        """Send the same data message to each token (``messaging.send_each``), in batches.

        Never raises for per-token failures: each ``PushResult`` carries a message id or a
        ``PushError`` (check ``isinstance(result.error, PushTokenInvalid)`` to prune tokens).
        Results are in the order of ``tokens``. firebase-admin uses one thread per message in a
        batch, hence the modest default ``batch_size``.
        """
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be within 1..{MAX_BATCH}")
        data = _check_data(data)
        results: list[PushResult] = []
        pending: list[tuple[str, messaging.Message]] = []

        def flush() -> None:
            if not pending:
                return
            batch = list(pending)
            pending.clear()
            try:
                response = messaging.send_each(
                    [m for _, m in batch], dry_run=self._dry_run, app=self._app
                )
            except exceptions.FirebaseError as error:
                for token, _ in batch:
                    results.append(PushResult(token, error=_translate(error, token)))
                return
            for (token, _), item in zip(batch, response.responses):
                if item.success:
                    results.append(PushResult(token, message_id=item.message_id))
                else:
                    exc = item.exception
                    err = (
                        _translate(exc, token)
                        if isinstance(exc, exceptions.FirebaseError)
                        else PushUnavailable(f"FCM send failed: {exc}", token=token)
                    )
                    err.__cause__ = exc
                    results.append(PushResult(token, error=err))

        for token in tokens:
            try:
                message = self._message(token, data, priority, ttl_seconds, collapse_key)
            except PushTokenInvalid as error:
                flush()  # keep results in input order
                results.append(PushResult(token, error=error))
                continue
            pending.append((token, message))
            if len(pending) >= batch_size:
                flush()
        flush()
        return results
