"""Imports every route module of ``shared/identity/http/`` so they register on the routers.

Function entry points import this module; a new ``http/<thing>.py`` is picked up without
touching any ``main.py``.
"""
from __future__ import annotations

import importlib
import pkgutil

import shared.identity.http as _package

NOT_ROUTES = frozenset({"api", "routes"})
MODULES = sorted(m.name for m in pkgutil.iter_modules(_package.__path__)
                 if m.name not in NOT_ROUTES and not m.ispkg)
for _name in MODULES:
    importlib.import_module(f"{_package.__name__}.{_name}")
