"""Cursor pagination in Stripe's shape: ``limit`` + ``starting_after``, newest first.

The cursor is a resource id; the page after it is found by Firestore's ``start_after`` on the
cursor document, so pages stay stable while new items arrive.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from shared.platform.errors import InvalidRequest
from shared.platform.models import DocId, RequestModel

T = TypeVar("T")


class ListQuery(RequestModel):
    limit: int = Field(10, ge=1, le=100, description="How many objects to return, 1 to 100.")
    starting_after: DocId | None = Field(None, max_length=100,
                                         description="Cursor: the id of the last object on the previous page.")


class CreatedRangeQuery(ListQuery):
    """A list that also filters on creation time, as Stripe's ``created[gte]``/``created[lte]``
    (Unix seconds; query strings give digits, which are accepted as integers)."""
    created_gte: StrictInt | None = Field(None, ge=0, le=10**11, alias="created[gte]",
                                          description="Unix seconds.")
    created_lte: StrictInt | None = Field(None, ge=0, le=10**11, alias="created[lte]",
                                          description="Unix seconds.")
    model_config = ConfigDict(populate_by_name=True, extra="forbid", str_strip_whitespace=True)

    @field_validator("created_gte", "created_lte", mode="before")
    @classmethod
    def _int(cls, value):
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 13:
            return int(value.strip())
        return value

    def filter_created(self, query: firestore.Query, field: str = "created_at") -> firestore.Query:
        """``query`` narrowed to the requested creation window (an inequality on ``field``)."""
        if self.created_gte is not None:
            query = query.where(filter=firestore.FieldFilter(
                field, ">=", dt.datetime.fromtimestamp(self.created_gte, dt.UTC)))
        if self.created_lte is not None:
            query = query.where(filter=firestore.FieldFilter(
                field, "<=", dt.datetime.fromtimestamp(self.created_lte, dt.UTC)))
        return query


class ListResponse(BaseModel, Generic[T]):
    object: str = "list"
    data: list[T]
    has_more: bool
    url: str


def tenant_mode_query(collection: firestore.CollectionReference, principal: Any
                      ) -> tuple[firestore.Query, Callable[[dict[str, Any]], bool]]:
    """The caller's own documents in its mode (``tenant``, ``livemode``): the start of a merchant
    list's query, and the ``belongs`` check a ``starting_after`` document must pass (another
    tenant's or mode's id is an invalid cursor, never a way to page through its data)."""
    tenant, livemode = principal.tenant_id, principal.livemode
    q = (collection.where(filter=firestore.FieldFilter("tenant", "==", tenant))
         .where(filter=firestore.FieldFilter("livemode", "==", livemode)))
    return q, lambda d: d.get("tenant") == tenant and d.get("livemode") == livemode


def paginate(query: firestore.Query, collection: firestore.CollectionReference, params: ListQuery,
             *, url: str, to_resource: Callable[[dict[str, Any]], Any],
             order_field: str = "created_at",
             belongs: Callable[[dict[str, Any]], bool] = lambda _: True) -> ListResponse[Any]:
    """Run ``query`` (already filtered to the caller's tenant) newest first, one page."""
    q = query.order_by(order_field, direction=firestore.Query.DESCENDING)
    if params.starting_after:
        cursor = collection.document(params.starting_after).get()
        if not cursor.exists or not belongs(cursor.to_dict()):
            raise InvalidRequest("starting_after does not name an object in this list.",
                                 param="starting_after", code="invalid_cursor")
        q = q.start_after(cursor)
    docs = [d.to_dict() for d in q.limit(params.limit + 1).stream()]
    return ListResponse[Any](data=[to_resource(d) for d in docs[:params.limit]],
                             has_more=len(docs) > params.limit, url=url)
