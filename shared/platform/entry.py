"""Process start-up shared by every function's ``main.py``."""
from __future__ import annotations


from shared.platform import logs
from shared.platform.config import get_settings


def boot(function_name: str) -> None:
    """Configure JSON logging once. The function name comes from the manifest entry."""
    logs.configure(get_settings().project_id)
