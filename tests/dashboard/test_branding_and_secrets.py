"""The Branding page (admin and up: a preview, then a confirmed save; a logo upload checked by
its bytes, an SVG sanitised; refusals re-render the form) and a new key's secret shown once
after POST-redirect-GET (a reload shows nothing; only its member, in its mode, ever sees it;
two tabs racing get it once; the database never holds it readable)."""
from __future__ import annotations

import base64
import datetime as dt
import html as htmllib
import io
import re
import threading

from shared.dashboard import reveal
from shared.merchants import branding, keys, projects
from shared.merchants.models import CreateProject, CreateProjectKey, KeyListQuery
from shared.platform.uow import run_unit
from tests.dashboard.conftest import ROOT, owner_principal, text
from tests.merchants.test_branding_rules import HOSTILE_SVG, png

FIELDS = {"display_name": "Angkor Coffee", "brand_color": "#0b6e4f",
          "success_url": "https://shop.example/thanks", "cancel_url": "http://localhost:3000/cart",
          "support_email": "help@shop.example", "support_url": "https://shop.example/help"}


def _hidden(html: str) -> dict[str, str]:
    return {htmllib.unescape(n): htmllib.unescape(v)
            for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)
            if n != "csrf_token"}


def _stored(deps, shop):
    return branding.get_branding(deps, shop.id)


# --- branding -----------------------------------------------------------------------------------------
def test_preview_then_save_with_an_uploaded_logo(wiring, member, shop):
    admin = member("admin")
    page = text(admin.get("/branding"))
    assert 'enctype="multipart/form-data"' in page and f'href="{ROOT}/branding" aria-current="page"' in page
    logo = png(8, 8)
    r = admin.post("/branding", {**FIELDS, "logo_action": "keep",
                                 "logo_file": (io.BytesIO(logo), "logo.png")},
                   content_type="multipart/form-data")
    assert r.status_code == 200, text(r)[:600]
    preview = text(r)
    assert "Nothing is saved yet" in preview and "Angkor Coffee" in preview
    uri = "data:image/png;base64," + base64.b64encode(logo).decode()
    assert f'src="{uri}"' in preview
    nonce = re.search(r"'nonce-([^']+)'", r.headers["Content-Security-Policy"]).group(1)
    assert f'<style nonce="{nonce}">.pv{{--brand:#0b6e4f;--on-brand:#ffffff}}</style>' in preview
    assert _stored(wiring, shop).updated is None                       # nothing written yet
    fields = _hidden(preview)
    assert fields["logo_action"] == "new" and fields["logo_data"] == uri and fields["confirm"] == "yes"
    done = admin.post("/branding", fields)
    assert done.status_code == 303 and done.headers["Location"] == f"{ROOT}/branding?done=branding_saved"
    saved = _stored(wiring, shop)
    assert saved.logo == uri and saved.brand_color == "#0b6e4f" and saved.brand_text_color == "#ffffff"
    assert {k: getattr(saved, k) for k in FIELDS} == FIELDS
    after = text(admin.get("/branding?done=branding_saved"))
    assert "Branding saved" in after and 'value="help@shop.example"' in after
    # keep the logo, clear the colour; then remove the logo
    fields = _hidden(text(admin.post("/branding", {**FIELDS, "brand_color": "", "logo_action": "keep"})))
    admin.post("/branding", fields)
    assert _stored(wiring, shop).logo == uri and _stored(wiring, shop).brand_color is None
    preview = text(admin.post("/branding", {**FIELDS, "logo_action": "remove"}))
    assert "The logo will be removed." in preview
    admin.post("/branding", _hidden(preview))
    assert _stored(wiring, shop).logo is None


def test_an_svg_upload_is_shown_and_saved_sanitised(wiring, member, shop):
    admin = member("owner")
    r = admin.post("/branding", {"logo_action": "keep", "logo_file": (io.BytesIO(HOSTILE_SVG), "x.svg")},
                   content_type="multipart/form-data")
    assert r.status_code == 200
    carried = _hidden(text(r))["logo_data"]
    svg = base64.b64decode(carried.split(",", 1)[1]).decode().lower()
    assert "<rect" in svg and "script" not in svg and "onload" not in svg
    # a forged hidden field is checked again when saved
    forged = {**_hidden(text(r)), "logo_data": "data:image/svg+xml;base64,"
              + base64.b64encode(b"<svg onload='alert(1)'/>").decode()}
    bad = admin.post("/branding", forged)
    assert bad.status_code == 400 and 'role="alert"' in text(bad)
    admin.post("/branding", _hidden(text(r)))
    assert "script" not in base64.b64decode(_stored(wiring, shop).logo.split(",", 1)[1]).decode()


def test_refusals_rerender_the_form_with_what_was_typed(wiring, member, shop):
    admin = member("admin")
    for form, needle in (({**FIELDS, "brand_color": "#fdfdfd"}, "too light"),
                         ({**FIELDS, "success_url": "http://shop.example/ok"}, "success_url"),
                         ({**FIELDS, "support_email": "nope"}, "support_email"),
                         ({**FIELDS, "logo_action": "new"}, "Choose a logo file."),
                         ({**FIELDS, "logo_action": "explode"}, "Choose what to do with the logo."),
                         ({**FIELDS, "display_name": "x" * 150}, "display_name")):
        r = admin.post("/branding", {"logo_action": "keep", **form})
        assert r.status_code == 400, form
        page = text(r)
        assert 'role="alert"' in page and needle in page, (needle, page[:300])
        assert 'value="help@shop.example"' in page or form["support_email"] == "nope"
    r = admin.post("/branding", {"logo_action": "keep",
                                 "logo_file": (io.BytesIO(b"GIF89a" + b"\0" * 30), "a.gif")},
                   content_type="multipart/form-data")
    assert r.status_code == 400 and "PNG, WebP or SVG" in text(r)
    assert _stored(wiring, shop).updated is None


def test_only_admins_and_owners_see_and_change_branding(wiring, member, shop, make_merchant):
    for role in ("viewer", "support", "developer"):
        b = member(role)
        assert f'href="{ROOT}/branding"' not in text(b.get("/payments"))
        assert b.get("/branding").status_code == 403
        assert b.post("/branding", {**FIELDS, "logo_action": "keep", "confirm": "yes"}).status_code == 403
    assert _stored(wiring, shop).updated is None
    admin = member("admin")
    assert admin.post("/branding", {**FIELDS, "logo_action": "keep"}, csrf=False).status_code == 403
    other = make_merchant(("owner",))
    outsider = member("owner", merchant=other)
    r = outsider.post("/branding", {"display_name": "Theirs", "logo_action": "keep", "confirm": "yes"})
    assert r.status_code == 303
    assert _stored(wiring, other).display_name == "Theirs" and _stored(wiring, shop).updated is None


def test_hostile_branding_forms_are_4xx(member):
    admin = member("owner")
    for form in ({"logo_action": "new", "logo_data": "%%%"}, {"logo_action": "new", "logo_data": "A" * 40000},
                 {"brand_color": "#1f3a93\"><script>", "logo_action": "keep"},
                 {"success_url": "https://x/" + "a" * 3000}, {"confirm": "yes", "logo_action": "keep"},
                 {"display_name": "\x00", "logo_action": "remove", "confirm": "yes"}):
        r = admin.post("/branding", form)
        assert r.status_code < 500 and "Traceback" not in text(r), form
        assert "<script>" not in text(r)


# --- a key's secret, once -------------------------------------------------------------------------
def _project(wiring, shop):
    return run_unit(wiring, lambda uow: projects.create_project(
        uow, owner_principal(shop), shop.id, CreateProject(name="Web")))


def test_a_reload_neither_makes_a_key_nor_shows_the_secret(wiring, member, shop):
    prj = _project(wiring, shop)
    dev = member("developer")
    made = dev.post("/keys", {"project": prj.id, "name": "once", "scopes": ["payments:read"]})
    assert made.status_code == 303
    stored = [d.to_dict() for d in wiring.db.collection(reveal.COLLECTION).stream()]
    assert len(stored) == 1 and b"sk_test_" not in bytes(stored[0]["sealed"])
    assert "sk_test" not in repr({k: v for k, v in stored[0].items() if k != "sealed"})
    assert stored[0]["expires_at"] > wiring.clock.now()                      # TTL field
    # another member of the same merchant holding the cookie sees nothing, and burns nothing
    held = dev.cookie(reveal.COOKIE).value
    admin = member("admin")
    admin.client.set_cookie(reveal.COOKIE, held, path=ROOT)
    assert "Secret already shown" in text(admin.get("/keys/secret"))
    shown = dev.get("/keys/secret")
    assert shown.status_code == 200 and re.search(r'id="secret">sk_test_', text(shown))
    assert dev.cookie(reveal.COOKIE) is None                             # cleared
    for _ in range(2):
        again = dev.get("/keys/secret")
        assert again.status_code == 200 and "Secret already shown" in text(again)
        assert 'id="secret"' not in text(again)
    listed = keys.list_keys(wiring, owner_principal(shop), shop.id, KeyListQuery(limit=100))
    assert [k.name for k in listed.data] == ["once"]                     # one key, however often reloaded
    assert list(wiring.db.collection(reveal.COLLECTION).stream()) == []


def test_the_secret_stays_in_its_mode(wiring, member, shop):
    prj = _project(wiring, shop)
    dev = member("developer")
    dev.post("/keys", {"project": prj.id, "scopes": ["payments:read"]})
    dev.post("/mode", {"mode": "live"})
    assert "Secret already shown" in text(dev.get("/keys/secret"))


def test_two_tabs_racing_get_the_secret_once(wiring, shop):
    prj = _project(wiring, shop)
    who = owner_principal(shop)

    def unit(uow):
        made = keys.create_key(uow, who, shop.id, prj.id, CreateProjectKey(scopes=["payments:read"]))
        return made, reveal.keep(uow, who, made, rolled=False)
    made, held = run_unit(wiring, unit)
    results = []
    threads = [threading.Thread(target=lambda: results.append(reveal.take(wiring, who, held)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shown = [r for r in results if r is not None]
    assert len(shown) == 1 and shown[0].secret == made.secret and shown[0].key_id == made.id
    # a cookie whose key was changed opens nothing
    made2, held2 = run_unit(wiring, unit)
    rid, key = held2.split(".")
    tampered = f"{rid}.{'A' * len(key)}"
    assert reveal.take(wiring, who, tampered) is None
    for bad in ("", "rvl_x.y", "../../etc", held2 + "x"):
        assert reveal.take(wiring, who, bad) is None


def test_an_expired_reveal_shows_nothing(wiring, shop):
    prj = _project(wiring, shop)
    who = owner_principal(shop)
    past = wiring.clock.now() - reveal.TTL - dt.timedelta(seconds=1)
    held = run_unit(wiring, lambda uow: reveal.keep(uow, who, keys.create_key(
        uow, who, shop.id, prj.id, CreateProjectKey(scopes=["payments:read"])), rolled=False), now=past)
    assert reveal.take(wiring, who, held) is None
