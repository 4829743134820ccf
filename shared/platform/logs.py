"""Structured JSON logs in the shape Cloud Logging parses from stdout.

``severity``, ``message``, ``logging.googleapis.com/trace`` (from ``X-Cloud-Trace-Context``),
``request_id`` and ``function`` ride along on every record through context variables.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from typing import Any

_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("function", default=None)

_SEVERITY = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING",
             logging.ERROR: "ERROR", logging.CRITICAL: "CRITICAL"}
_SECRET_KEYS = {"password", "secret", "token", "authorization", "api_key", "code", "otp",
                "refresh_token", "access_token", "private_key", "seed"}


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    """Blank any field whose name says it carries a secret; logs never hold one."""
    out = {}
    for k, v in fields.items():
        if any(s in k.lower() for s in _SECRET_KEYS):
            out[k] = "[redacted]"
        elif isinstance(v, dict):
            out[k] = redact(v)
        else:
            out[k] = v
    return out


class CloudLoggingFormatter(logging.Formatter):
    def __init__(self, project_id: str = ""):
        super().__init__()
        self.project_id = project_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(),
            "logger": record.name,
        }
        trace = _trace.get()
        if trace:
            entry["logging.googleapis.com/trace"] = (
                f"projects/{self.project_id}/traces/{trace}" if self.project_id else trace)
        if _request_id.get():
            entry["request_id"] = _request_id.get()
        if _function.get():
            entry["function"] = _function.get()
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(redact(extra))
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(project_id: str = "", level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, CloudLoggingFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter(project_id))
    root.addHandler(handler)
    root.setLevel(level)


def bind(*, trace_header: str | None = None, request_id: str | None = None,
         function: str | None = None) -> None:
    """Attach request context; trace comes from ``X-Cloud-Trace-Context: TRACE/SPAN;o=1``."""
    if trace_header is not None:
        _trace.set(trace_header.split("/", 1)[0] or None)
    if request_id is not None:
        _request_id.set(request_id)
    if function is not None:
        _function.set(function)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def log(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    logger.log(level, message, extra={"fields": fields})
