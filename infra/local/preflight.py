"""Checks the machine has what the local stack needs and says exactly how to get what is missing."""
from __future__ import annotations

import shutil
import sys

from infra.local.stack import MissingDependency, firestore_binary, pubsub_binary


def main() -> int:
    problems = []
    if not shutil.which("java"):
        problems.append("Java 17+ is missing (the Google emulators need it): apt-get install openjdk-17-jre-headless")
    for check in (firestore_binary, pubsub_binary):
        try:
            check()
        except MissingDependency as exc:
            problems.append(str(exc))
    if not shutil.which("npm"):
        problems.append("Node.js/npm are missing (anvil comes from npm): apt-get install nodejs npm")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
