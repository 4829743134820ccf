"""Firestore client factory, emulator-aware.

With ``FIRESTORE_EMULATOR_HOST`` set (local stack, tests) the client library talks to the
emulator with anonymous credentials; otherwise it uses the function's service account.
"""
from __future__ import annotations

import functools
import os

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore


@functools.lru_cache(maxsize=64)
def firestore_client(project_id: str) -> firestore.Client:
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        return firestore.Client(project=project_id, credentials=AnonymousCredentials())
    return firestore.Client(project=project_id)
