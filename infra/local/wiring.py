"""Local/test wiring: the only place that points production adapters at loopback simulators."""
from __future__ import annotations

import os


def install_local_adapters() -> None:
    fcm_url = os.environ.get("PAYLOOM_FCM_URL")
    if fcm_url:
        from infra.local.fcm_wiring import install_fcm_loopback
        install_fcm_loopback(fcm_url, os.environ.get("PAYLOOM_PROJECT_ID", "demo-payloom"))
