"""Projects: a merchant's integrations (an app, a shop), each with its own API keys.

``projects/{prj_…}``: merchant_id, name, description, livemode, created_at, updated_at,
last_key_created_at. A project is mode-scoped like every object: it is created in the caller's
mode (a user's ``Payloom-Mode``, a key's own mode) and does not exist for the other mode (404),
so a test key can never see or use a live project, nor the reverse. Its keys have its mode.

Deleting a project revokes its keys in the same commit. Creating a key rewrites the project
document (``last_key_created_at``), so a key created while the project is being deleted
conflicts at commit instead of surviving it.
"""
from __future__ import annotations

from typing import Any

from google.cloud import firestore

from shared.identity.apikeys import service as apikeys
from shared.merchants.config import merchants_config
from shared.merchants.events import emit_in_mode
from shared.merchants.models import (
    PROJECT_CREATED,
    PROJECT_DELETED,
    PROJECT_UPDATED,
    CreateProject,
    DeletedProject,
    Project,
    UpdateProject,
)
from shared.platform.auth import Principal
from shared.platform.clock import rfc3339
from shared.platform.errors import Conflict, NotFound
from shared.platform.ids import new_id
from shared.platform.pagination import ListQuery, ListResponse, paginate

COLLECTION = "projects"


def ref(db, project_id: str):
    return db.collection(COLLECTION).document(project_id)


def to_resource(doc: dict[str, Any]) -> Project:
    return Project(id=doc["id"], merchant=doc["merchant_id"], name=doc["name"],
                   description=doc.get("description"), livemode=bool(doc.get("livemode")),
                   created=rfc3339(doc["created_at"]),
                   updated=rfc3339(doc["updated_at"]) if doc.get("updated_at") else None)


def _not_found(project_id: str) -> NotFound:
    return NotFound(f"No such project: '{project_id[:64]}'", param="project_id")


def owned(snap, acting: Principal, merchant_id: str, project_id: str) -> dict[str, Any]:
    """The project if it is this merchant's and in the caller's mode; 404 otherwise (the same
    answer as a missing id: nothing about other merchants or the other mode leaks)."""
    if not snap.exists:
        raise _not_found(project_id)
    doc = snap.to_dict()
    if doc.get("merchant_id") != merchant_id or bool(doc.get("livemode")) != bool(acting.livemode):
        raise _not_found(project_id)
    return doc


def create_project(uow, acting: Principal, merchant_id: str, body: CreateProject) -> Project:
    cfg, livemode = merchants_config(uow.deps), bool(acting.livemode)
    existing = uow.query(uow.db.collection(COLLECTION)
                         .where(filter=firestore.FieldFilter("merchant_id", "==", merchant_id))
                         .where(filter=firestore.FieldFilter("livemode", "==", livemode))
                         .limit(cfg.max_projects))
    if len(existing) >= cfg.max_projects:
        raise Conflict(f"A merchant has at most {cfg.max_projects} projects per mode.",
                       code="project_limit")
    doc = {"id": new_id("prj"), "merchant_id": merchant_id, "name": body.name,
           "description": body.description, "livemode": livemode, "created_at": uow.now,
           "updated_at": None, "last_key_created_at": None}
    uow.create(ref(uow.db, doc["id"]), doc)
    resource = to_resource(doc)
    emit_in_mode(uow, PROJECT_CREATED.name, merchant_id, resource, livemode)
    return resource


def get_project(deps, acting: Principal, merchant_id: str, project_id: str) -> Project:
    return to_resource(owned(ref(deps.db, project_id).get(), acting, merchant_id, project_id))


def list_projects(deps, acting: Principal, merchant_id: str, params: ListQuery) -> ListResponse[Project]:
    """This mode's projects, newest first (index: merchant_id, livemode, created_at desc)."""
    col, livemode = deps.db.collection(COLLECTION), bool(acting.livemode)
    query = (col.where(filter=firestore.FieldFilter("merchant_id", "==", merchant_id))
             .where(filter=firestore.FieldFilter("livemode", "==", livemode)))
    page = paginate(query, col, params, url=f"/v1/merchants/{merchant_id}/projects",
                    to_resource=to_resource,
                    belongs=lambda d: d.get("merchant_id") == merchant_id
                    and bool(d.get("livemode")) == livemode)
    return ListResponse[Project](data=page.data, has_more=page.has_more, url=page.url)


def update_project(uow, acting: Principal, merchant_id: str, project_id: str,
                   body: UpdateProject) -> Project:
    pref = ref(uow.db, project_id)
    doc = owned(uow.get(pref), acting, merchant_id, project_id)
    change = {k: getattr(body, k) for k in body.model_fields_set
              if k in ("name", "description") and getattr(body, k) != doc.get(k)}
    if change.get("name", "") is None:
        del change["name"]  # a name cannot be removed
    if not change:
        return to_resource(doc)
    change["updated_at"] = uow.now
    doc = {**doc, **change}
    uow.update(pref, change)
    resource = to_resource(doc)
    emit_in_mode(uow, PROJECT_UPDATED.name, merchant_id, resource, bool(doc.get("livemode")))
    return resource


def delete_project(uow, acting: Principal, merchant_id: str, project_id: str) -> DeletedProject:
    """Delete the project and revoke its active keys in the same commit (query on owner_id +
    project_id: equality filters, single-field indexes)."""
    pref = ref(uow.db, project_id)
    doc = owned(uow.get(pref), acting, merchant_id, project_id)
    limit = merchants_config(uow.deps).project_key_revoke_batch
    keys = uow.query(uow.db.collection(apikeys.COLLECTION)
                     .where(filter=firestore.FieldFilter("owner_id", "==", merchant_id))
                     .where(filter=firestore.FieldFilter("project_id", "==", project_id))
                     .limit(limit))
    if len(keys) >= limit:
        raise Conflict(f"This project has {limit} or more keys: revoke some first.",
                       code="too_many_keys")
    revoked = 0
    for snap in keys:
        if snap.get("status") != "revoked":
            apikeys.revoke_api_key(uow, owner_id=merchant_id, key_id=snap.id)
            revoked += 1
    uow.delete(pref)
    emit_in_mode(uow, PROJECT_DELETED.name, merchant_id, to_resource(doc), bool(doc.get("livemode")))
    return DeletedProject(id=project_id, revoked_api_keys=revoked)
