"""Records what the code really asks of Firestore while the tests run: the shape of every query
and the TTL-looking fields of every write. ``tests/zz_usage`` checks them against the composite
indexes and TTL policies that Terraform deploys, so a new query or expiring collection cannot
ship without its index or policy (the emulator needs neither, production does)."""
from __future__ import annotations

import dataclasses
import json
import re
import threading

from google.cloud.firestore_v1.services.firestore import client as gapic

from shared.platform.manifest import REPO_ROOT

INDEXES = REPO_ROOT / "terraform" / "firestore" / "firestore.indexes.json"
TTL_VARIABLES = REPO_ROOT / "terraform" / "modules" / "payloom" / "variables.tf"
TTL_FIELD_NAMES = ("expires_at", "purge_at")
EQUALITY = {"EQUAL", "ARRAY_CONTAINS"}


@dataclasses.dataclass(frozen=True)
class QueryShape:
    collection: str
    equality: frozenset[str]
    ordered: tuple[tuple[str, str], ...]   # (field, ASCENDING|DESCENDING), inequality first

    def needs_composite(self) -> bool:
        fields = set(self.equality) | {f for f, _ in self.ordered}
        return bool(self.ordered) and len(fields) > 1


queries: set[QueryShape] = set()
ttl_writes: set[tuple[str, str]] = set()   # (collection, field)
_lock = threading.Lock()


def _field_filters(where) -> list[tuple[str, str]]:
    out = []
    if where is None:
        return out
    kind = where._pb.WhichOneof("filter_type")
    if kind == "field_filter":
        f = where.field_filter
        out.append((f.field.field_path, f.op.name))
    elif kind == "composite_filter":
        for sub in where.composite_filter.filters:
            out += _field_filters(sub)
    return out


def _record_query(request) -> None:
    q = request.structured_query if hasattr(request, "structured_query") else None
    if q is None or not q.from_:
        return
    filters = _field_filters(q.where) if q._pb.HasField("where") else []
    equality = frozenset(f for f, op in filters if op in EQUALITY)
    ordered = [(f, "ASCENDING") for f in dict.fromkeys(f for f, op in filters if op not in EQUALITY)]
    for order in q.order_by:
        field = order.field.field_path
        if field != "__name__" and field not in {f for f, _ in ordered}:
            ordered.append((field, order.direction.name))
        elif field in {f for f, _ in ordered}:
            ordered = [(f, order.direction.name if f == field else d) for f, d in ordered]
    shape = QueryShape(q.from_[0].collection_id, equality, tuple(ordered))
    with _lock:
        queries.add(shape)


def _record_commit(request) -> None:
    for write in request.writes if hasattr(request, "writes") else request.get("writes", []):
        pb = getattr(write, "_pb", write)
        if not pb.HasField("update"):
            continue
        name = pb.update.name
        collection = name.split("/documents/", 1)[-1].split("/")[-2]
        for field in TTL_FIELD_NAMES:
            if field in pb.update.fields and pb.update.fields[field].WhichOneof("value_type") == "timestamp_value":
                with _lock:
                    ttl_writes.add((collection, field))


def install() -> None:
    original_query, original_commit = gapic.FirestoreClient.run_query, gapic.FirestoreClient.commit

    def run_query(self, request=None, **kw):
        try:
            _record_query(request if not isinstance(request, dict) else gapic.firestore.RunQueryRequest(request))
        except Exception:  # noqa: BLE001 — recording must never break a test
            pass
        return original_query(self, request=request, **kw)

    def commit(self, request=None, **kw):
        try:
            _record_commit(request if not isinstance(request, dict) else gapic.firestore.CommitRequest(request))
        except Exception:  # noqa: BLE001
            pass
        return original_commit(self, request=request, **kw)

    gapic.FirestoreClient.run_query, gapic.FirestoreClient.commit = run_query, commit


def declared_indexes() -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    data = json.loads(INDEXES.read_text())
    return [(i["collectionGroup"], tuple((f["fieldPath"], f.get("order", "ASCENDING"))
                                         for f in i["fields"])) for i in data["indexes"]]


def covered(shape: QueryShape, indexes) -> bool:
    """An index serves the query if its fields are the equality fields (any order) followed by
    the ordered fields in order and direction (or all reversed)."""
    n_eq = len(shape.equality)
    for collection, fields in indexes:
        if collection != shape.collection or len(fields) != n_eq + len(shape.ordered):
            continue
        if {f for f, _ in fields[:n_eq]} != set(shape.equality):
            continue
        tail = tuple(fields[n_eq:])
        flipped = tuple((f, "DESCENDING" if d == "ASCENDING" else "ASCENDING") for f, d in shape.ordered)
        if tail in (shape.ordered, flipped):
            return True
    return False


def declared_ttl() -> set[tuple[str, str]]:
    text = TTL_VARIABLES.read_text()
    block = text[text.index('variable "ttl_fields"'):]
    block = block[:block.index("\n}\n")]
    return set(re.findall(r'^\s+(\w+)\s*=\s*"(\w+)"', block, re.M))


def product_collections() -> set[str]:
    """Collection names the product code mentions (test-only collections are not deployed)."""
    names = set()
    for path in (REPO_ROOT / "shared").rglob("*.py"):
        names |= set(re.findall(r'"([a-z][a-z0-9_]*)"', path.read_text()))
    return names
