"""Base pydantic models for request and response bodies.

Requests forbid unknown fields (a typo is a 400, not silently ignored); responses are
Stripe-shaped resources with ``id``, ``object`` and ``created``.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResourceModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
