"""The task-queue port: schedule an HTTP call to one of our functions, possibly later.

Cloud Tasks delivers at least once and the emulator ignores retry settings and task-name
dedup, so every task handler must be idempotent and reload state before acting.
"""
from __future__ import annotations

import datetime as dt
from typing import Protocol


class TaskQueue(Protocol):
    def enqueue(self, *, queue: str, function: str, path: str, body: dict,
                schedule_time: dt.datetime | None = None, name: str | None = None) -> str: ...


def task_name(*parts: str) -> str:
    """A Cloud Tasks-legal name ([A-Za-z0-9_-], ≤500 chars) from stable parts."""
    import hashlib
    return "t-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]
