"""The checkout pages (``/pay/...``), on ``shared.web.pages.Pages``."""
from __future__ import annotations

from pathlib import Path

from shared.web.pages import Pages

pages = Pages("checkout", web_root="pay", package_dir=Path(__file__).resolve().parent)
