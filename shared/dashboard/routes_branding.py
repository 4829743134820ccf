"""Branding: how the merchant's hosted payment page looks (display name, logo, colour, support
contacts) and where it sends payers afterwards (default success and cancel URLs), through
``shared.merchants.branding`` as ``/v1/merchants/{mch}/branding`` does; admin and up
(``manage_settings``), as the API.

Saving goes through a preview: the form posts to ``/branding``, which checks every field (the
service's own rules, nothing written) and shows the payment page's header and button as they
would look, with a "Save" form re-posting the same fields with ``confirm=yes``, the confirmation
step of the dashboard's other changes. An uploaded logo travels on as the checked (and, for
SVG, sanitised) data URI in a hidden field, and is checked again when saved.
"""
from __future__ import annotations

from typing import Any

from shared.dashboard import forms, guard
from shared.dashboard.members import Member
from shared.merchants import branding
from shared.merchants.branding_images import MAX_LOGO_BYTES, check_logo, decode_input
from shared.merchants.branding_rules import check_brand_color, text_on
from shared.platform.errors import InvalidRequest, PayloomError
from shared.platform.uow import run_unit
from shared.web.pages import Page

TEXT = {"display_name": branding.MAX_NAME, "brand_color": 20, "success_url": 2000,
        "cancel_url": 2000, "support_email": 254, "support_url": 2000}
LOGO_ACTIONS = ("keep", "remove", "new")
MAX_LOGO_FIELD = 4 * MAX_LOGO_BYTES // 3 + 200


def _mch(member: Member) -> str:
    return member.principal.tenant_id


def _edit(ctx, member: Member, *, form: dict[str, str] | None = None, error: str | None = None,
          status: int = 200) -> Page:
    current = branding.get_branding(ctx.deps, _mch(member))
    shown = form if form is not None else {k: getattr(current, k) or "" for k in TEXT}
    return Page("dashboard/branding.html", {
        "current": current, "form": shown, "error": error, "max_kib": MAX_LOGO_BYTES // 1024,
        "preview": _preview(member, current.model_dump(), current.logo),
        "done": ctx.request.args.get("done")}, status=status)


def _preview(member: Member, values: dict[str, Any], logo: str | None) -> dict[str, Any]:
    """What the preview shows: the page header and pay button with these values."""
    name = values.get("display_name") or (member.merchant.business_name if member.merchant else "")
    color = values.get("brand_color") or None
    return {"name": name, "initial": name[:1].upper(), "logo": logo, "color": color,
            "text_color": text_on(color) if color else None,
            "success_url": values.get("success_url") or "", "cancel_url": values.get("cancel_url") or "",
            "support_email": values.get("support_email") or "",
            "support_url": values.get("support_url") or ""}


@guard.member_page("GET", "/branding", need="manage_settings", section="branding")
def show(ctx, member: Member):
    return _edit(ctx, member)


def _read(ctx) -> tuple[dict[str, str], str, str | None]:
    """The typed fields, what to do with the logo, and a new logo's checked data URI."""
    typed = {name: forms.text(ctx.form, name, limit) for name, limit in TEXT.items()}
    action = ctx.form.get("logo_action", "keep")
    upload = ctx.request.files.get("logo_file")
    data = upload.read(MAX_LOGO_BYTES + 1) if upload is not None else b""
    if data:                             # a file chosen now wins over the step before's
        return typed, "new", check_logo(data).data_uri
    if action == "new":
        carried = forms.text(ctx.form, "logo_data", MAX_LOGO_FIELD)
        if not carried:
            raise InvalidRequest("Choose a logo file.", param="logo", code="parameter_missing")
        return typed, "new", check_logo(decode_input(carried)).data_uri
    if action not in LOGO_ACTIONS:
        raise InvalidRequest("Choose what to do with the logo.", param="logo_action",
                             code="parameter_invalid")
    return typed, action, None


def _body(typed: dict[str, str], action: str, logo: str | None) -> branding.UpdateBranding:
    values: dict[str, Any] = {name: value or None for name, value in typed.items()}
    if action != "keep":
        values["logo"] = logo if action == "new" else None
    body = forms.validate(branding.UpdateBranding, values)
    branding.changes(body)               # every rule of the service, nothing written
    return body


@guard.member_page("POST", "/branding", need="manage_settings", section="branding")
def save(ctx, member: Member):
    typed = {name: (ctx.form.get(name) or "")[:limit] for name, limit in TEXT.items()}
    try:
        typed, action, logo = _read(ctx)
        body = _body(typed, action, logo)
    except PayloomError as exc:
        if exc.status >= 500 or exc.status == 403:
            raise
        return _edit(ctx, member, form=typed, error=exc.message, status=exc.status)
    if not forms.confirmed(ctx.form):
        current = branding.get_branding(ctx.deps, _mch(member))
        shown_logo = logo if action == "new" else None if action == "remove" else current.logo
        color = check_brand_color(typed["brand_color"] or None)
        return Page("dashboard/branding_preview.html", {
            "preview": _preview(member, {**typed, "brand_color": color}, shown_logo),
            "fields": {**typed, "logo_action": action, **({"logo_data": logo} if logo else {})},
            "logo_action": action})
    run_unit(ctx.deps, lambda uow: branding.update_branding(uow, _mch(member), body))
    return guard.redirect(ctx, "/branding", done="branding_saved")
