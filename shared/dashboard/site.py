"""The dashboard's page router (``/dashboard/...``); the route modules register on it."""
from __future__ import annotations

from pathlib import Path

from shared.web.pages import Pages

pages = Pages("dashboard", web_root="dashboard", package_dir=Path(__file__).resolve().parent)
