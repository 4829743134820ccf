"""LocalScheduler with a fake clock, and http_invoker against a tiny HTTP server."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.local.scheduler import LocalScheduler, http_invoker, load_manifest_functions

UTC = timezone.utc
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


def fn(name: str, cron: str) -> dict:
    return {"name": name, "trigger": "schedule", "cron": cron, "entry_point": "handle"}


def test_every_minute_fires_once_per_minute():
    clock = FakeClock(datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC))  # a Wednesday
    calls: list[str] = []
    s = LocalScheduler([fn("sweeper", "* * * * *")], lambda n: calls.append(n) or 200, clock)
    assert s.run_pending() == []  # 12:00:30, next is 12:01:00
    fired = []
    for _ in range(10 * 60 // 5):  # ten minutes in 5 s steps
        clock.advance(seconds=5)
        fired += s.run_pending()
    assert fired == ["sweeper"] * 10
    assert calls == ["sweeper"] * 10
    assert s.jobs[0].next_fire == datetime(2026, 11, 18, 12, 11, tzinfo=UTC)


def test_due_job_fires_exactly_at_its_minute_not_before():
    clock = FakeClock(datetime(2026, 11, 18, 12, 0, 0, tzinfo=UTC))
    s = LocalScheduler([fn("sweeper", "* * * * *")], lambda n: 200, clock)
    assert s.run_pending(datetime(2026, 11, 18, 12, 0, 59, 999999, tzinfo=UTC)) == []
    assert s.run_pending(datetime(2026, 11, 18, 12, 1, 0, tzinfo=UTC)) == ["sweeper"]
    assert s.run_pending(datetime(2026, 11, 18, 12, 1, 0, tzinfo=UTC)) == []


def test_monday_0300_utc_weekday_is_right():
    clock = FakeClock(datetime(2026, 11, 18, 12, 0, tzinfo=UTC))  # Wednesday
    seen: list[datetime] = []

    def invoke(name: str, schedule_time: datetime) -> int:
        seen.append(schedule_time)
        return 204

    s = LocalScheduler([fn("weekly", "0 3 * * 1")], invoke, clock)
    first = s.jobs[0].next_fire
    assert first == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    assert first.weekday() == 0  # Monday (APScheduler's from_crontab would pick Tuesday)

    fired_at: list[datetime] = []
    while clock.now < datetime(2026, 12, 8, tzinfo=UTC):  # through three Mondays' windows
        clock.advance(minutes=30)
        if s.run_pending():
            fired_at.append(clock.now)
    assert fired_at == [
        datetime(2026, 11, 23, 3, 0, tzinfo=UTC),
        datetime(2026, 11, 30, 3, 0, tzinfo=UTC),
        datetime(2026, 12, 7, 3, 0, tzinfo=UTC),
    ]
    assert seen == fired_at
    assert all(t.weekday() == 0 and t.hour == 3 and t.minute == 0 for t in seen)


def test_sunday_is_0_and_7():
    start = datetime(2026, 11, 18, tzinfo=UTC)
    s = LocalScheduler([fn("a", "0 0 * * 0"), fn("b", "0 0 * * 7")], lambda n: 200,
                       FakeClock(start))
    assert {j.next_fire for j in s.jobs} == {datetime(2026, 11, 22, tzinfo=UTC)}
    assert datetime(2026, 11, 22).weekday() == 6


def test_failing_invoker_does_not_stop_others(caplog):
    clock = FakeClock(datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC))
    calls: list[str] = []

    def invoke(name: str) -> int:
        calls.append(name)
        if name == "boom":
            raise ConnectionError("gateway down")
        if name == "bad":
            return 500
        return 200

    s = LocalScheduler(
        [fn("boom", "* * * * *"), fn("bad", "* * * * *"), fn("good", "* * * * *")],
        invoke, clock,
    )
    clock.advance(minutes=1)
    assert sorted(s.run_pending()) == ["bad", "boom", "good"]
    clock.advance(minutes=1)
    assert sorted(s.run_pending()) == ["bad", "boom", "good"]
    assert sorted(calls) == sorted(["bad", "boom", "good"] * 2)
    jobs = {j.name: j for j in s.jobs}
    assert jobs["boom"].failure_count == 2 and "gateway down" in jobs["boom"].last_error
    assert jobs["bad"].failure_count == 2 and jobs["bad"].last_status == 500
    assert jobs["good"].failure_count == 0 and jobs["good"].last_status == 200
    assert "gateway down" in caplog.text


def test_missed_fire_times_fire_once():
    clock = FakeClock(datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC))
    seen: list[datetime] = []
    s = LocalScheduler([fn("sweeper", "* * * * *")],
                       lambda n, schedule_time: seen.append(schedule_time) or 200, clock)
    clock.advance(minutes=10)  # "laptop was asleep"
    assert s.run_pending() == ["sweeper"]
    assert seen == [datetime(2026, 11, 18, 12, 10, tzinfo=UTC)]
    assert s.jobs[0].next_fire == datetime(2026, 11, 18, 12, 11, tzinfo=UTC)


def test_only_schedule_functions_and_bad_cron_rejected():
    manifest_fns = load_manifest_functions(REPO_ROOT / "functions" / "manifest.yaml")
    s = LocalScheduler(manifest_fns, lambda n: 200,
                       FakeClock(datetime(2026, 11, 18, tzinfo=UTC)))
    expected = {f["name"] for f in manifest_fns if f.get("trigger") == "schedule"}
    assert {j.name for j in s.jobs} == expected
    with pytest.raises(ValueError):
        LocalScheduler([fn("x", "61 * * * *")], lambda n: 200)
    with pytest.raises(ValueError):
        LocalScheduler([fn("x", "0 * * * * *")], lambda n: 200)  # 6 fields: not unix-cron
    with pytest.raises(ValueError):
        LocalScheduler([fn("x", "* * * * *")], lambda n: 200,
                       lambda: datetime(2026, 1, 1))  # naive clock


def test_run_forever_loops_and_stops():
    clock = FakeClock(datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC))
    stop = threading.Event()
    calls: list[str] = []

    def invoke(name: str) -> int:
        calls.append(name)
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        if len(calls) >= 3:
            stop.set()
        return 200

    def ticking_clock() -> datetime:
        return clock.advance(seconds=20)

    s = LocalScheduler([fn("sweeper", "* * * * *")], invoke, ticking_clock)
    t = threading.Thread(target=s.run_forever, args=(stop,), kwargs={"max_sleep": 0.01})
    t.start()
    t.join(10)
    assert not t.is_alive()
    assert calls == ["sweeper"] * 3


class _Recorder(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).requests.append({"path": self.path, "headers": dict(self.headers),
                                    "body": body})
        status = 503 if self.path.endswith("/failing") else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_http_invoker_sends_cloud_scheduler_headers():
    _Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        clock = FakeClock(datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC))
        s = LocalScheduler([fn("outbox_sweeper", "* * * * *"), fn("failing", "* * * * *")],
                           http_invoker(base, "local-secret", timeout=5), clock)
        clock.advance(seconds=30)
        assert sorted(s.run_pending()) == ["failing", "outbox_sweeper"]
        reqs = {r["path"]: r for r in _Recorder.requests}
        req = reqs["/_fn/outbox_sweeper"]
        h = req["headers"]
        assert h["X-CloudScheduler"] == "true"
        assert h["X-CloudScheduler-JobName"] == "outbox_sweeper"
        assert h["X-CloudScheduler-ScheduleTime"] == "2026-11-18T12:01:00Z"
        assert h["User-Agent"] == "Google-Cloud-Scheduler"
        assert h["Content-Type"] == "application/json"
        assert h["Authorization"] == "Bearer local-secret"
        assert req["body"] == b"{}"
        jobs = {j.name: j for j in s.jobs}
        assert jobs["failing"].last_status == 503 and jobs["failing"].failure_count == 1
        assert jobs["outbox_sweeper"].last_status == 200
    finally:
        server.shutdown()
        server.server_close()

    # gateway gone: connection errors are logged, not raised
    clock.advance(minutes=1)
    assert sorted(s.run_pending()) == ["failing", "outbox_sweeper"]
    assert all(j.last_status is None and j.last_error for j in s.jobs)
