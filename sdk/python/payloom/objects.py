"""API objects: dicts with attribute access (``intent.amount`` and ``intent["amount"]``).

An answer's JSON is turned into objects recursively; a dict whose ``object`` names a known
resource becomes that resource's class (so ``event.data.object`` is a ``PaymentIntent`` with
its own methods). The client that fetched an object stays attached to it, so its instance
methods (``intent.cancel()``) and a list's next pages use the same key, merchant and mode.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional

if TYPE_CHECKING:
    from payloom.client import Client, RequestOptions, Response

OBJECT_CLASSES: Dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: answers whose ``object`` is ``cls.OBJECT_NAME`` become ``cls``."""
    OBJECT_CLASSES[cls.OBJECT_NAME] = cls
    return cls


class PayloomObject(Dict[str, Any]):
    OBJECT_NAME = ""

    def __init__(self, values: Optional[Mapping[str, Any]] = None, *,
                 client: Optional["Client"] = None, options: Optional["RequestOptions"] = None,
                 last_response: Optional["Response"] = None):
        super().__init__()
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "last_response", last_response)
        if values:
            self.refresh_from(values)

    # attribute access ---------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name == "last_response":
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    # contents -------------------------------------------------------------------------------
    def refresh_from(self, values: Mapping[str, Any], *, last_response: Optional["Response"] = None) -> None:
        """Replace the contents with ``values`` (converted), keeping the attached client."""
        self.clear()
        for key, value in values.items():
            dict.__setitem__(self, key, convert(value, self._client, self._options))
        if last_response is not None:
            object.__setattr__(self, "last_response", last_response)

    def to_dict(self) -> Dict[str, Any]:
        """Plain dicts and lists all the way down (for JSON, logging, comparisons)."""
        return {k: _plain(v) for k, v in self.items()}

    def __repr__(self) -> str:
        ident = f" id={self.get('id')}" if isinstance(self.get("id"), str) else ""
        return f"<{type(self).__name__}{ident} at {hex(id(self))}> JSON: {self}"

    def __str__(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    def __reduce__(self):  # pickling keeps the data, not the client
        return (getattr(type(self), "_unbound", type(self)), (self.to_dict(),))


def _plain(value: Any) -> Any:
    if isinstance(value, PayloomObject):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def convert(value: Any, client: Optional["Client"] = None,
            options: Optional["RequestOptions"] = None) -> Any:
    """JSON → objects: dicts become ``PayloomObject`` (or the class their ``object`` names)."""
    if isinstance(value, PayloomObject):
        return value
    if isinstance(value, dict):
        cls = OBJECT_CLASSES.get(value.get("object")) if isinstance(value.get("object"), str) else None
        if cls is None:
            cls = PayloomObject
        elif client is not None:
            cls = client.bound(cls)
        return cls(value, client=client, options=options)
    if isinstance(value, list):
        return [convert(v, client, options) for v in value]
    return value


@register
class ListObject(PayloomObject):
    """A page of a list: ``data``, ``has_more``, ``url``. Iterating it yields this page;
    ``auto_paging_iter()`` yields every item of every page, fetching the next page (Stripe's
    ``starting_after`` cursor: the last id of the page) only when it is reached."""

    OBJECT_NAME = "list"
    data: List[Any]
    has_more: bool
    url: str

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        object.__setattr__(self, "_params", {})

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return iter(self.get("data") or [])

    def __len__(self) -> int:
        return len(self.get("data") or [])

    def __bool__(self) -> bool:
        return True

    @property
    def is_empty(self) -> bool:
        return not self.get("data")

    def next_page(self) -> "ListObject":
        """The page after this one (an empty list when there is none)."""
        data = self.get("data") or []
        if not self.get("has_more") or not data:
            empty = ListObject({"object": "list", "data": [], "has_more": False,
                                "url": self.get("url")}, client=self._client, options=self._options)
            return empty
        last = data[-1]
        cursor = last.get("id") if isinstance(last, dict) else None
        if not isinstance(cursor, str):
            raise ValueError("this list's items have no id: it cannot be paged")
        params = dict(self._params)
        params["starting_after"] = cursor
        return self._client.request_list(self["url"], params, options=self._options)

    def auto_paging_iter(self) -> Iterator[Any]:
        page: ListObject = self
        while True:
            yield from page
            if not page.get("has_more") or page.is_empty:
                return
            page = page.next_page()
