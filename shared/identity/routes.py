"""Imports every ``shared/identity/http_*.py`` route module so they register on the routers.

Function entry points import this module; a new ``http_<thing>.py`` is picked up without
touching any ``main.py``.
"""
from __future__ import annotations

import importlib
import pkgutil

import shared.identity as _package

MODULES = sorted(m.name for m in pkgutil.iter_modules(_package.__path__)
                 if m.name.startswith("http_") and not m.ispkg)
for _name in MODULES:
    importlib.import_module(f"{_package.__name__}.{_name}")
