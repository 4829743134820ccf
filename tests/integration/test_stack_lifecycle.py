"""Stopping the stack leaves no orphan (the Firestore emulator forks a Java child)."""
import os

import pytest

from infra.local.stack import Ports, Stack


def test_stop_kills_whole_process_groups_and_restores_the_environment():
    before = os.environ.get("FIRESTORE_EMULATOR_HOST")
    stack = Stack(Ports.free(), project_id="demo-lifecycle", components=("firestore",)).start()
    assert os.environ["FIRESTORE_EMULATOR_HOST"] == f"127.0.0.1:{stack.ports.firestore}"
    groups = [p.popen.pid for p in stack.procs]
    java_children = os.popen(f"pgrep -g {groups[0]}").read().split()
    assert len(java_children) >= 2  # the launcher script and its Java child
    stack.stop()
    assert os.environ.get("FIRESTORE_EMULATOR_HOST") == before
    for pgid in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
