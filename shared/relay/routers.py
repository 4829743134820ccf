"""The relay routers, created once so the supply and dispatch modules can both register on them.

- ``relay``: ``/v1/relay/...`` — providers and their phones (registration, SIMs, devices,
  heartbeats, jobs fetched and reported by the phone, earnings); its errors carry Khmer for a
  phone asking for it (``khmer.localize_error``), the router's own errors included;
- ``messages``: ``/v1/messages/...`` — clients (API keys with the ``sms`` scope);
- ``tasks``: Cloud Tasks target on queue ``relay`` (dispatch, step deadlines, retries);
- ``sweeper``: the scheduled job (offline providers, scheduled messages that fell due, stuck jobs).
"""
from __future__ import annotations

from shared.platform.router import Router
from shared.relay.khmer import localize_error

relay = Router("relay", public_prefix="relay", tags=["relay"], localize_errors=localize_error)
messages = Router("messages", public_prefix="messages", tags=["messages"])
tasks = Router("relay_tasks")
sweeper = Router("relay_sweeper")
