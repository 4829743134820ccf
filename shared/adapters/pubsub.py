"""Pub/Sub publisher adapter (emulator-aware through ``PUBSUB_EMULATOR_HOST``)."""
from __future__ import annotations

import os

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1


class PubSubPublisher:
    """Implements ``shared.platform.outbox.Publisher``."""

    def __init__(self, project_id: str, timeout: float = 10.0):
        self.project_id = project_id
        self.timeout = timeout
        kwargs = {}
        if os.environ.get("PUBSUB_EMULATOR_HOST"):
            kwargs["credentials"] = AnonymousCredentials()
        # One message per publish call: latency matters more than batching here.
        self._client = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=1), **kwargs)

    def topic_path(self, topic: str) -> str:
        return self._client.topic_path(self.project_id, topic)

    def publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        future = self._client.publish(self.topic_path(topic), data, **attributes)
        return future.result(timeout=self.timeout)

    def ensure_topic(self, topic: str) -> None:
        """Local/test provisioning only; Terraform owns topics in production."""
        try:
            self._client.create_topic(name=self.topic_path(topic))
        except gexc.AlreadyExists:
            pass
