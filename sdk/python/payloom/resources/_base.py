"""What every resource class shares: its client, its paths and the standard operations.

Stripe's style: class methods take the id (``PaymentIntent.cancel("pi_…")``) and the same
name on an object acts on that object and refreshes it in place (``intent.cancel()``).
Keyword arguments are the API's parameters, except the request options ``api_key``,
``merchant``, ``mode``, ``idempotency_key`` and ``headers`` (see ``payloom.client``).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, ClassVar, Optional

from payloom.client import Client, RequestOptions, quote_id, split_options
from payloom.objects import ListObject, PayloomObject


def default_client() -> Client:
    import payloom
    return payloom.default_client()


class APIResource(PayloomObject):
    """A resource with a collection path (``/v1/payment_intents``)."""

    OBJECT_NAME: ClassVar[str] = ""
    PATH: ClassVar[str] = ""
    _bound_client: ClassVar[Optional[Client]] = None

    @classmethod
    def _client_for(cls) -> Client:
        return cls._bound_client or default_client()

    @classmethod
    def _call(cls, method: str, path: str, params: Optional[dict] = None,
              options: Optional[RequestOptions] = None) -> Any:
        return cls._client_for().request(method, path, params, options=options)

    @classmethod
    def _list(cls, path: str, params: dict, options: RequestOptions) -> ListObject:
        return cls._client_for().request_list(path, params, options=options)

    @classmethod
    def instance_path(cls, id: str) -> str:
        return f"{cls.PATH}/{quote_id(id)}"

    def _self_client(self) -> Client:
        return self._client or type(self)._client_for()

    def _act(self, method: str, path: str, params: dict, options: RequestOptions,
             refresh: bool = True) -> Any:
        merged = (self._options or RequestOptions()).overridden_by(options)
        result = self._self_client().request(method, path, params, options=merged)
        if refresh and isinstance(result, PayloomObject) and result.get("object") == self.get("object") \
                and result.get("id") == self.get("id"):
            self.refresh_from(result, last_response=result.last_response)
            return self
        return result

    def refresh(self, **params: Any) -> "APIResource":
        """Fetch this object again."""
        params, options = split_options(params)
        return self._act("GET", type(self).instance_path(self["id"]), params, options)


class hybrid:
    """A method usable on the class with an id first, or on an object (its own id).

    ``fn(cls, id, params, options)`` returns what the API answered; on an object, an answer
    that is the same object refreshes it in place (``refresh=True``)."""

    def __init__(self, fn: Callable[..., Any], refresh: bool = True):
        self.fn = fn
        self.refresh = refresh
        functools.update_wrapper(self, fn)

    def __set_name__(self, owner: type, name: str) -> None:
        self.fn.__name__ = name
        self.fn.__qualname__ = f"{owner.__name__}.{name}"

    def __get__(self, obj: Any, cls: type) -> Callable[..., Any]:
        fn = self.fn
        if obj is None:
            @functools.wraps(fn)
            def on_class(id: str, **params: Any) -> Any:
                params, options = split_options(params)
                method, path, body = fn(cls, id, params)
                if method == "LIST":
                    return cls._list(path, body, options)
                return cls._call(method, path, body, options)
            return on_class

        @functools.wraps(fn)
        def on_object(**params: Any) -> Any:
            params, options = split_options(params)
            method, path, body = fn(type(obj), obj["id"], params)
            if method == "LIST":
                merged = (obj._options or RequestOptions()).overridden_by(options)
                return obj._self_client().request_list(path, body, options=merged)
            return obj._act(method, path, body, options, refresh=self.refresh)
        return on_object


def action(method: str, suffix: str, *, refresh: bool = True, doc: str = "") -> hybrid:
    """``POST {instance}/suffix`` (or GET) with the call's parameters."""
    def fn(cls: type, id: str, params: dict):
        return method, f"{cls.instance_path(id)}{suffix}", params
    fn.__doc__ = doc
    return hybrid(fn, refresh=refresh)


def sub_list(suffix: str, *, doc: str = "") -> hybrid:
    """``GET {instance}/suffix`` answering a list (auto-pageable)."""
    def fn(cls: type, id: str, params: dict):
        return "LIST", f"{cls.instance_path(id)}{suffix}", params
    fn.__doc__ = doc
    return hybrid(fn, refresh=False)


class Createable(APIResource):
    @classmethod
    def create(cls, **params: Any) -> Any:
        """Create one (an Idempotency-Key is generated unless ``idempotency_key=`` is given)."""
        params, options = split_options(params)
        return cls._call("POST", cls.PATH, params, options)


class Retrievable(APIResource):
    @classmethod
    def retrieve(cls, id: str, **params: Any) -> Any:
        params, options = split_options(params)
        return cls._call("GET", cls.instance_path(id), params, options)


class Listable(APIResource):
    @classmethod
    def list(cls, **params: Any) -> ListObject:
        """One page, newest first (``limit``, ``starting_after``, filters);
        ``.auto_paging_iter()`` on it walks every page."""
        params, options = split_options(params)
        return cls._list(cls.PATH, params, options)


class Updateable(APIResource):
    modify = action("POST", "", doc="Change the object (``POST {path}/{id}``).")


class Deletable(APIResource):
    delete = action("DELETE", "", refresh=False, doc="Delete the object.")
