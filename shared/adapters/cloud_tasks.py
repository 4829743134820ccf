"""Cloud Tasks adapter: HTTP tasks that call one of our functions.

Production attaches an OIDC token for the invoker service account. Locally the emulator sends
no token, so the task carries the local shared secret as its bearer instead.
"""
from __future__ import annotations

import datetime as dt
import json

import grpc
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import timestamp_pb2

from shared.platform.config import Settings


class CloudTasksQueue:
    """Implements ``shared.platform.tasks.TaskQueue``."""

    def __init__(self, settings: Settings, client: tasks_v2.CloudTasksClient | None = None):
        self.settings = settings
        if client is None:
            if settings.tasks_emulator_host:
                channel = grpc.insecure_channel(settings.tasks_emulator_host)
                client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
            else:
                client = tasks_v2.CloudTasksClient()
        self._client = client

    def queue_path(self, queue: str) -> str:
        return self._client.queue_path(self.settings.project_id, self.settings.region, queue)

    def enqueue(self, *, queue: str, function: str, path: str, body: dict,
                schedule_time: dt.datetime | None = None, name: str | None = None) -> str:
        url = self.settings.function_url(function) + path
        http_request: dict = {
            "http_method": tasks_v2.HttpMethod.POST,
            "url": url,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body, separators=(",", ":")).encode(),
        }
        if self.settings.is_production:
            http_request["oidc_token"] = {"service_account_email": self.settings.tasks_invoker_email,
                                          "audience": self.settings.function_url(function)}
        else:
            http_request["headers"]["Authorization"] = f"Bearer {self.settings.task_auth_secret}"
        task: dict = {"http_request": http_request}
        if schedule_time is not None:
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(schedule_time.astimezone(dt.timezone.utc).replace(tzinfo=None))
            task["schedule_time"] = ts
        if name:
            task["name"] = f"{self.queue_path(queue)}/tasks/{name}"
        try:
            created = self._client.create_task(parent=self.queue_path(queue), task=task)
        except gexc.AlreadyExists:
            return task["name"]  # Same name already queued: the job is already scheduled.
        return created.name

    def ensure_queue(self, queue: str) -> None:
        """Local/test provisioning only; Terraform owns queues in production."""
        parent = f"projects/{self.settings.project_id}/locations/{self.settings.region}"
        try:
            self._client.create_queue(parent=parent, queue={"name": self.queue_path(queue)})
        except gexc.AlreadyExists:
            pass
