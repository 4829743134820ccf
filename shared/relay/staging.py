"""One read and one write per document per unit of work, however many rules touch it.

A phone's report can make dispatch release a SIM's slot, the fraud detectors penalise the same
SIM and its provider, and the earnings count the provider: several rules, one document. Each
rule ``load``s the document (read once per unit, cached here) and ``stage``s it: the first
stage buffers ONE write (guarded by the version read, ``shared.platform.uow``) holding the
very dict later rules keep mutating, which the commit serialises. So a unit never writes a
document twice and every change lands in the same atomic commit.
"""
from __future__ import annotations

from typing import Any

_ATTR = "_relay_staging"


def _state(uow) -> dict[str, Any]:
    state = getattr(uow, _ATTR, None)
    if state is None:
        state = {"docs": {}, "staged": set()}
        setattr(uow, _ATTR, state)
    return state


def load(uow, ref) -> dict[str, Any] | None:
    docs = _state(uow)["docs"]
    if ref.path not in docs:
        snap = uow.get(ref)
        docs[ref.path] = snap.to_dict() if snap.exists else None
    return docs[ref.path]


def load_many(uow, refs) -> list[dict[str, Any] | None]:
    """The documents (or None) in the order of ``refs``, reading what this unit has not read
    yet in one batch."""
    refs = list(refs)
    docs = _state(uow)["docs"]
    wanted = [r for r in refs if r.path not in docs]
    if wanted:
        for path, snap in uow.get_all(wanted).items():
            docs[path] = snap.to_dict() if snap.exists else None
    return [docs[r.path] for r in refs]


def remember(uow, snap) -> None:
    """A document read by a query in this unit: later loads use this version."""
    _state(uow)["docs"].setdefault(snap.reference.path, snap.to_dict())


def stage(uow, ref, doc: dict[str, Any]) -> None:
    """Write ``doc`` at commit; a document that did not exist is created (must not exist)."""
    state = _state(uow)
    state["docs"][ref.path] = doc
    if ref.path in state["staged"]:
        return
    state["staged"].add(ref.path)
    if uow.was_read(ref):
        snap = uow.get(ref)
        (uow.set if snap.exists else uow.create)(ref, doc)
    else:
        uow.create(ref, doc)
