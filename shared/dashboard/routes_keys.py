"""API keys of the merchant's projects in this mode: list, create, roll, revoke (developer and
up: ``manage_keys``, as the API); projects to put them in (admin and up: ``manage_projects``).

A new or rolled key's secret is shown once, on the GET the POST redirects to (``reveal``: a
reload neither makes another key nor shows the secret again; ``no-store``). Rolling and
revoking are destructive: each asks for a confirmation first."""
from __future__ import annotations

from shared.dashboard import cookies, forms, guard, reveal
from shared.dashboard.members import Member
from shared.merchants import keys, projects
from shared.merchants.models import (
    CreateProject,
    CreateProjectKey,
    KeyListQuery,
    RollKey,
)
from shared.platform.errors import PayloomError
from shared.platform.pagination import ListQuery
from shared.platform.uow import run_unit
from shared.web.pages import Page

# What a merchant key may be given (shared.identity.apikeys.scopes has the full list).
SCOPES = ("payments:read", "payments:write", "webhooks:read", "webhooks:write", "events:read",
          "account:read", "api_keys:read")
DEFAULT_SCOPES = ("payments:read", "payments:write")
GRACES = (0, 3600, 86400, 7 * 86400)   # how long a rolled key's old secret keeps working


def _mch(member: Member) -> str:
    return member.principal.tenant_id


def listing(ctx, member: Member, *, status: int = 200, **extra) -> Page:
    found = keys.list_keys(ctx.deps, member.principal, _mch(member), KeyListQuery(limit=100))
    mine = projects.list_projects(ctx.deps, member.principal, _mch(member), ListQuery(limit=100))
    names = {p.id: p.name for p in mine.data}
    values = {"keys": found.data, "projects": mine.data, "project_names": names,
              "scopes": SCOPES, "default_scopes": DEFAULT_SCOPES, "graces": GRACES,
              "error": None, "done": ctx.request.args.get("done")}
    return Page("dashboard/keys.html", {**values, **extra}, status=status)


@guard.member_page("GET", "/keys", need="manage_keys", section="keys")
def key_list(ctx, member: Member):
    return listing(ctx, member)


@guard.member_page("POST", "/keys", need="manage_keys", section="keys")
def create_key(ctx, member: Member):
    try:
        project_id = forms.text(ctx.form, "project", 100)
        chosen = [s for s in ctx.form.getlist("scopes") if s in SCOPES]
        body = forms.validate(CreateProjectKey, {"name": forms.text(ctx.form, "name", 100) or None,
                                                 "scopes": chosen})

        def unit(uow):
            made = keys.create_key(uow, member.principal, _mch(member), project_id, body)
            return reveal.keep(uow, member.principal, made, rolled=False)
        held = run_unit(ctx.deps, unit)
    except PayloomError as exc:
        if exc.status >= 500 or exc.status == 403:
            raise
        return listing(ctx, member, status=exc.status, error=exc.message)
    return _to_secret(ctx, held)


def _to_secret(ctx, held: str):
    """POST-redirect-GET: the secret waits for one GET of /keys/secret (``reveal``)."""
    ctx.jar.set(reveal.COOKIE, held, int(reveal.TTL.total_seconds()))
    return guard.redirect(ctx, "/keys/secret")


@guard.member_page("GET", "/keys/secret", need="manage_keys", section="keys")
def show_secret(ctx, member: Member):
    """The secret of the key just created or rolled, once; afterwards a page saying so."""
    held = cookies.read(ctx.deps, ctx.request, reveal.COOKIE)
    shown = reveal.take(ctx.deps, member.principal, held) if held else None
    if held:
        ctx.jar.clear(reveal.COOKIE)
    if shown is None:
        # a normal answer, not an error: a reload of the secret page lands here
        return Page("dashboard/key_secret.html", {"key": None, "rolled": False})
    return Page("dashboard/key_secret.html", {"key": shown, "rolled": shown.rolled})


@guard.member_page("POST", "/keys/{key_id}/roll", need="manage_keys", section="keys")
def roll_key(ctx, member: Member):
    key_id = ctx.params["key_id"]
    key = keys.get_key(ctx.deps, member.principal, _mch(member), key_id)   # 404 unless ours
    grace = forms.integer(ctx.form, "grace", 0, low=0, high=max(GRACES))
    if not forms.confirmed(ctx.form):
        return Page("dashboard/confirm.html", {
            "action": f"/keys/{key.id}/roll", "fields": {"grace": str(grace)}, "danger": False,
            "question": ctx._("Roll the key %(name)s?", name=key.name or key.prefix),
            "detail": ctx._("A new secret replaces it. The old secret stops working after the "
                            "grace period you chose."),
            "confirm_label": ctx._("Roll key"), "cancel": "/keys"})

    def unit(uow):
        made = keys.roll_key(uow, member.principal, _mch(member), key_id,
                             RollKey(expires_in_seconds=grace))
        return reveal.keep(uow, member.principal, made, rolled=True)
    return _to_secret(ctx, run_unit(ctx.deps, unit))


@guard.member_page("POST", "/keys/{key_id}/revoke", need="manage_keys", section="keys")
def revoke_key(ctx, member: Member):
    key_id = ctx.params["key_id"]
    key = keys.get_key(ctx.deps, member.principal, _mch(member), key_id)
    if not forms.confirmed(ctx.form):
        return Page("dashboard/confirm.html", {
            "action": f"/keys/{key.id}/revoke", "fields": {}, "danger": True,
            "question": ctx._("Revoke the key %(name)s?", name=key.name or key.prefix),
            "detail": ctx._("Every request made with it is refused from now on. This cannot "
                            "be undone."),
            "confirm_label": ctx._("Revoke key"), "cancel": "/keys"})
    run_unit(ctx.deps, lambda uow: keys.revoke_key(uow, member.principal, _mch(member), key_id))
    return guard.redirect(ctx, "/keys", done="revoked")


@guard.member_page("POST", "/projects", need="manage_projects", section="keys")
def create_project(ctx, member: Member):
    try:
        body = forms.validate(CreateProject, {"name": forms.text(ctx.form, "name", 100)})
        run_unit(ctx.deps, lambda uow: projects.create_project(uow, member.principal,
                                                               _mch(member), body))
    except PayloomError as exc:
        if exc.status >= 500 or exc.status == 403:
            raise
        return listing(ctx, member, status=exc.status, error=exc.message)
    return guard.redirect(ctx, "/keys", done="project_created")
