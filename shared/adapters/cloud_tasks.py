"""Cloud Tasks adapter: HTTP tasks that call one of our functions.

Production attaches an OIDC token for the invoker service account. Locally the emulator sends
no token, so the task carries the local shared secret as its bearer instead.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Callable

import grpc
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import timestamp_pb2



@dataclasses.dataclass(frozen=True)
class TasksConfig:
    """What the adapter needs, passed in (adapters read no settings)."""
    project_id: str
    region: str
    function_url: Callable[[str], str]   # function name -> the URL its tasks call
    invoker_email: str = ""              # production: OIDC token for this service account
    local_bearer: str = ""               # local/test: the emulator sends no token; this instead
    emulator_host: str = ""


class CloudTasksQueue:
    """Implements ``shared.platform.tasks.TaskQueue``."""

    def __init__(self, config: TasksConfig, client: tasks_v2.CloudTasksClient | None = None):
        if not (config.invoker_email or config.local_bearer):
            raise ValueError("Cloud Tasks need an invoker service account (production) or a "
                             "local bearer secret (emulator): neither is configured")
        self.config = config
        if client is None:
            if config.emulator_host:
                channel = grpc.insecure_channel(config.emulator_host)
                client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
            else:
                client = tasks_v2.CloudTasksClient()
        self._client = client

    def queue_path(self, queue: str) -> str:
        return self._client.queue_path(self.config.project_id, self.config.region, queue)

    def enqueue(self, *, queue: str, function: str, path: str, body: dict,
                schedule_time: dt.datetime | None = None, name: str | None = None) -> str:
        url = self.config.function_url(function) + path
        http_request: dict = {
            "http_method": tasks_v2.HttpMethod.POST,
            "url": url,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body, separators=(",", ":")).encode(),
        }
        if self.config.invoker_email:
            http_request["oidc_token"] = {"service_account_email": self.config.invoker_email,
                                          "audience": self.config.function_url(function)}
        else:
            http_request["headers"]["Authorization"] = f"Bearer {self.config.local_bearer}"
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
        parent = f"projects/{self.config.project_id}/locations/{self.config.region}"
        try:
            self._client.create_queue(parent=parent, queue={"name": self.queue_path(queue)})
        except gexc.AlreadyExists:
            pass

    def delete_queue(self, queue: str) -> None:
        """Local/test only: the emulator polls every queue it knows with a thread of its own,
        so a test run that leaves one queue per test behind ends with thousands of pollers."""
        try:
            self._client.delete_queue(name=self.queue_path(queue))
        except gexc.NotFound:
            pass
