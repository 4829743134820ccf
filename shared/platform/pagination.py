"""Cursor pagination in Stripe's shape: ``limit`` + ``starting_after``, newest first.

The cursor is a resource id; the page after it is found by Firestore's ``start_after`` on the
cursor document, so pages stay stable while new items arrive.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from google.cloud import firestore
from pydantic import BaseModel, Field

from shared.platform.errors import InvalidRequest
from shared.platform.models import DocId, RequestModel

T = TypeVar("T")


class ListQuery(RequestModel):
    limit: int = Field(10, ge=1, le=100, description="How many objects to return, 1 to 100.")
    starting_after: DocId | None = Field(None, max_length=100,
                                         description="Cursor: the id of the last object on the previous page.")


class ListResponse(BaseModel, Generic[T]):
    object: str = "list"
    data: list[T]
    has_more: bool
    url: str


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
