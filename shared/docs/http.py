"""The docs pages (``/docs/...``), on ``shared.web.pages.Pages``."""
from __future__ import annotations

from pathlib import Path

from shared.web.pages import Pages

pages = Pages("docs", web_root="docs", package_dir=Path(__file__).resolve().parent)
