"""Waiting for asynchronous effects (webhooks, pushes, tasks) without fixed sleeps."""
import time


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    """Return the first truthy value of ``predicate()``; fail the test after ``timeout`` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
