"""Stopping the stack leaves no orphan (the Firestore emulator forks a Java child)."""
import os

import pytest

from infra.local.stack import Ports, Stack


def test_stop_kills_whole_process_groups():
    stack = Stack(Ports.free(), project_id="demo-lifecycle", components=("firestore",)).start()
    groups = [p.popen.pid for p in stack.procs]
    java_children = os.popen(f"pgrep -g {groups[0]}").read().split()
    assert len(java_children) >= 2  # the launcher script and its Java child
    stack.stop()
    for pgid in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
