"""Reads ``functions/manifest.yaml``, the single list of functions."""
from __future__ import annotations

import functools
import pathlib
from typing import Any

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFEST_PATH = REPO_ROOT / "functions" / "manifest.yaml"
TRIGGERS = {"http", "pubsub", "task", "schedule"}


@functools.lru_cache(maxsize=4)
def load_manifest(path: str | None = None) -> dict[str, Any]:
    data = yaml.safe_load(pathlib.Path(path or MANIFEST_PATH).read_text())
    names = set()
    for fn in data.get("functions", []):
        if fn["trigger"] not in TRIGGERS:
            raise ValueError(f"function {fn['name']}: unknown trigger {fn['trigger']!r}")
        if fn["name"] in names:
            raise ValueError(f"function {fn['name']} listed twice")
        names.add(fn["name"])
        if fn["trigger"] == "http" and not fn.get("path"):
            raise ValueError(f"function {fn['name']}: http functions need a path")
        if fn["trigger"] == "pubsub" and fn.get("topic") not in data.get("topics", {}):
            raise ValueError(f"function {fn['name']}: unknown topic {fn.get('topic')!r}")
        if fn["trigger"] == "task" and fn.get("queue") not in data.get("queues", {}):
            raise ValueError(f"function {fn['name']}: unknown queue {fn.get('queue')!r}")
        if fn["trigger"] == "schedule" and not fn.get("cron"):
            raise ValueError(f"function {fn['name']}: schedule functions need a cron")
    return data


def functions(trigger: str | None = None) -> list[dict[str, Any]]:
    fns = load_manifest()["functions"]
    return [f for f in fns if trigger is None or f["trigger"] == trigger]


def function(name: str) -> dict[str, Any]:
    for fn in functions():
        if fn["name"] == name:
            return fn
    raise KeyError(name)


def check_task_target(queue: str, function_name: str) -> None:
    """A timer must target a task function of the manifest through the queue it declares
    (checked in tests, so the manifest's queues are the ones the code uses)."""
    queues = load_manifest().get("queues", {})
    if queue not in queues:
        raise ValueError(f"queue {queue!r} is not declared in the manifest")
    try:
        fn = function(function_name)
    except KeyError:
        raise ValueError(f"task target {function_name!r} is not a manifest function") from None
    if fn["trigger"] != "task" or fn.get("queue") != queue:
        raise ValueError(f"{function_name!r} is not a task function of queue {queue!r}")
