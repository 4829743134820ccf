"""Local Cloud Scheduler: fires the manifest's ``trigger: schedule`` functions on their cron.

There is no Cloud Scheduler emulator. This reads the functions of functions/manifest.yaml, computes
each schedule function's next fire time in UTC with ``croniter`` (unix-cron, like Cloud Scheduler:
5 fields, day-of-week 0 and 7 = Sunday, 1 = Monday; APScheduler's ``from_crontab`` is not used
because it shifts weekday numbers by one) and calls ``invoke(function_name)`` when a job is due.

``http_invoker`` is the default invoker. It POSTs to ``{base_url}/_fn/{name}`` with the headers
Cloud Scheduler sends to an HTTP target, plus ``Authorization: Bearer <auth_token>`` as the local
stand-in for the OIDC token production uses.

Semantics: a job fires at most once per ``run_pending`` call; if the process was asleep through
several fire times, it fires once (with the latest due time missed, logged) and resumes on the
regular schedule. No retries (Cloud Scheduler's default retry_count is 0). A failing or raising
invoker is logged and never stops other jobs or the loop.

CLI: ``python -m infra.local.scheduler --base-url http://127.0.0.1:8000 --auth-token T``.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from croniter import croniter

log = logging.getLogger("payloom.local_scheduler")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MANIFEST = REPO_ROOT / "functions" / "manifest.yaml"
DEFAULT_ATTEMPT_DEADLINE = 180.0  # Cloud Scheduler's default attempt deadline for HTTP targets

Clock = Callable[[], datetime]
Invoker = Callable[..., int]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC "Zulu" text, as in Cloud Scheduler's X-CloudScheduler-ScheduleTime."""
    moment = moment.astimezone(timezone.utc)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: the scheduler needs timezone-aware times")
    return moment.astimezone(timezone.utc)


@dataclass
class ScheduledJob:
    name: str
    cron: str
    next_fire: datetime
    fire_count: int = 0
    failure_count: int = 0
    last_fired: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def next_after(self, moment: datetime) -> datetime:
        return croniter(self.cron, moment).get_next(datetime)


def _accepts_schedule_time(invoke: Invoker) -> bool:
    try:
        params = inspect.signature(invoke).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "schedule_time" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in params
    )


class LocalScheduler:
    """Fires schedule functions from the manifest.

    ``invoke(function_name) -> int`` returns an HTTP-like status (2xx = success). If it also
    accepts a ``schedule_time`` keyword (``http_invoker`` does), it receives the due time.
    ``clock()`` must return timezone-aware datetimes (default: real UTC time).
    """

    def __init__(
        self,
        functions: Iterable[Mapping[str, Any]],
        invoke: Invoker,
        clock: Clock = utc_now,
    ) -> None:
        self._invoke = invoke
        self._pass_schedule_time = _accepts_schedule_time(invoke)
        self._clock = clock
        self._lock = threading.RLock()
        start = _as_utc(clock())
        self._jobs: dict[str, ScheduledJob] = {}
        for fn in functions:
            if fn.get("trigger") != "schedule":
                continue
            name = fn.get("name")
            cron = fn.get("cron")
            if not isinstance(name, str) or not name:
                raise ValueError(f"schedule function without a name: {fn!r}")
            if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
                raise ValueError(f"function {name!r}: invalid 5-field unix-cron {cron!r}")
            if name in self._jobs:
                raise ValueError(f"duplicate schedule function {name!r}")
            job = ScheduledJob(name=name, cron=cron, next_fire=start, extra=dict(fn))
            job.next_fire = job.next_after(start)
            self._jobs[name] = job

    @property
    def jobs(self) -> list[ScheduledJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: (j.next_fire, j.name))

    def next_fire_time(self) -> datetime | None:
        jobs = self.jobs
        return jobs[0].next_fire if jobs else None

    def _fire(self, job: ScheduledJob, schedule_time: datetime, now: datetime) -> None:
        job.fire_count += 1
        job.last_fired = now
        try:
            if self._pass_schedule_time:
                status = self._invoke(job.name, schedule_time=schedule_time)
            else:
                status = self._invoke(job.name)
        except Exception as exc:  # noqa: BLE001 - a job must never take the loop down
            job.failure_count += 1
            job.last_status = None
            job.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("scheduled job %s (%s) raised", job.name, rfc3339(schedule_time))
            return
        job.last_status = status
        if isinstance(status, int) and 200 <= status < 300:
            job.last_error = None
            log.info("scheduled job %s (%s) -> %s", job.name, rfc3339(schedule_time), status)
        else:
            job.failure_count += 1
            job.last_error = f"status {status}"
            log.error("scheduled job %s (%s) failed with status %s",
                      job.name, rfc3339(schedule_time), status)

    def run_pending(self, now: datetime | None = None) -> list[str]:
        """Fire every job due at ``now`` (default: the clock). Returns the fired job names."""
        with self._lock:
            now = _as_utc(now if now is not None else self._clock())
            due = [j for j in self.jobs if j.next_fire <= now]
            fired: list[str] = []
            for job in due:
                schedule_time = job.next_fire
                following = job.next_after(schedule_time)
                if following <= now:
                    # Missed fire times (process asleep/suspended): fire once, for the latest.
                    latest = croniter(job.cron, now).get_prev(datetime)
                    if job.next_after(latest) <= now:  # ``now`` itself is a fire time
                        latest = job.next_after(latest)
                    log.warning("scheduled job %s missed fire times %s..%s; firing once",
                                job.name, rfc3339(schedule_time), rfc3339(latest))
                    schedule_time = latest
                job.next_fire = job.next_after(now)
                self._fire(job, schedule_time, now)
                fired.append(job.name)
            return fired

    def trigger(self, name: str) -> int | None:
        """Run one job now regardless of its schedule (like ``gcloud scheduler jobs run``)."""
        with self._lock:
            job = self._jobs[name]
            now = _as_utc(self._clock())
            self._fire(job, now, now)
            return job.last_status

    def run_forever(self, stop_event: threading.Event, *, max_sleep: float = 1.0) -> None:
        """Loop until ``stop_event`` is set, sleeping until the next fire time (<= max_sleep)."""
        log.info("local scheduler started with jobs: %s",
                 ", ".join(f"{j.name} [{j.cron}]" for j in self.jobs) or "(none)")
        while not stop_event.is_set():
            try:
                self.run_pending()
                upcoming = self.next_fire_time()
                delay = max_sleep
                if upcoming is not None:
                    delay = (upcoming - _as_utc(self._clock())).total_seconds()
            except Exception:  # noqa: BLE001
                log.exception("local scheduler loop error")
                delay = max_sleep
            stop_event.wait(min(max(delay, 0.0), max_sleep))


def http_invoker(
    base_url: str,
    auth_token: str,
    *,
    timeout: float = DEFAULT_ATTEMPT_DEADLINE,
    session: Any | None = None,
) -> Callable[..., int]:
    """An invoker that POSTs to ``{base_url}/_fn/{name}`` the way Cloud Scheduler would.

    Returns ``invoke(name, schedule_time=None) -> status``. Connection errors propagate (the
    scheduler logs them).
    """
    import requests

    http = session or requests.Session()
    root = base_url.rstrip("/")

    def invoke(name: str, schedule_time: datetime | None = None) -> int:
        when = _as_utc(schedule_time) if schedule_time is not None else utc_now()
        headers = {
            "X-CloudScheduler": "true",
            "X-CloudScheduler-JobName": name,
            "X-CloudScheduler-ScheduleTime": rfc3339(when),
            "User-Agent": "Google-Cloud-Scheduler",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {auth_token}",
        }
        response = http.post(f"{root}/_fn/{name}", data=b"{}", headers=headers, timeout=timeout)
        return response.status_code

    return invoke


def load_manifest_functions(path: str | os.PathLike[str] = DEFAULT_MANIFEST) -> list[dict[str, Any]]:
    import yaml

    with open(path, encoding="utf-8") as fh:
        manifest = yaml.safe_load(fh) or {}
    return list(manifest.get("functions") or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Cloud Scheduler for the manifest's jobs")
    parser.add_argument("--manifest", default=str(DEFAULT_MANIFEST))
    parser.add_argument("--base-url", default=os.environ.get("PAYLOOM_PUBLIC_BASE_URL",
                                                            "http://127.0.0.1:8000"),
                        help="gateway root; jobs POST to <base-url>/_fn/<name> "
                             "(env PAYLOOM_PUBLIC_BASE_URL)")
    parser.add_argument("--auth-token", default=os.environ.get("PAYLOOM_TASK_AUTH_SECRET"),
                        help="bearer token for the private functions (env PAYLOOM_TASK_AUTH_SECRET)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.auth_token:
        parser.error("--auth-token (or PAYLOOM_TASK_AUTH_SECRET) is required")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    scheduler = LocalScheduler(
        load_manifest_functions(args.manifest), http_invoker(args.base_url, args.auth_token)
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    scheduler.run_forever(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
