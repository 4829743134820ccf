"""``member_page``: how every signed-in page runs.

1. the session (``session.current``: the access token, else a transparent refresh);
   no session → the sign-in page (``?next=`` the page asked for);
2. the merchant and mode (``members.resolve``), then the role the page needs
   (``roles.require``, exactly as the API: a 403 page otherwise);
3. the handler, with the ``Member``; a ``Page`` it returns is rendered with the layout's values;
4. the cookies the request changed (rotated tokens, a switch) are set on WHATEVER response
   ends it, the error pages included: a rotated refresh token that did not reach the browser
   would look like a stolen one at the next refresh and revoke the session.
"""
from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import flask

from shared.dashboard import cookies, fmt, members, session
from shared.dashboard.site import pages
from shared.merchants import roles
from shared.platform import logs
from shared.platform.errors import PayloomError
from shared.web import security
from shared.web.pages import Page

_log = logs.get_logger(__name__)
Handler = Callable[[Any, members.Member], Page | flask.Response]


def html(ctx, template: str, values: Mapping[str, Any], status: int = 200,
         headers: Mapping[str, str] | None = None) -> flask.Response:
    """A page rendered with the strict CSP and ``no-store`` (everything here is personal)."""
    body = pages.render(ctx, template, {"fmt": fmt, **values})
    response = flask.Response(body, status=status, content_type="text/html; charset=utf-8")
    for k, v in security.security_headers(ctx.nonce, **pages.csp).items():
        response.headers[k] = v
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def layout(member: members.Member | None, section: str) -> dict[str, Any]:
    return {"member": member, "section": section,
            "can": member.can if member else (lambda _action: False)}


def error_page(ctx, status: int, message: str, member: members.Member | None = None,
               headers: Mapping[str, str] | None = None) -> flask.Response:
    return html(ctx, "dashboard/error.html",
                {**layout(member, ""), "status": status, "message": message}, status, headers)


def redirect(ctx, path: str, **query: str) -> flask.Response:
    """303 to a dashboard path (``path`` is ours, never user input)."""
    qs = urllib.parse.urlencode({k: v for k, v in query.items() if v})
    return flask.redirect(f"{ctx.root}{path}" + (f"?{qs}" if qs else ""), code=303)


def to_signin(ctx) -> flask.Response:
    wanted = ctx.request.full_path.rstrip("?") if ctx.request.method == "GET" else ""
    return redirect(ctx, "/signin", next=fmt.safe_next(wanted, ctx.root))


def run(ctx, handler: Handler, need: str | None, section: str) -> flask.Response:
    jar = cookies.Jar(ctx.deps)
    member = None
    try:
        who = session.current(ctx, jar)
        if who is None:
            return jar.apply(to_signin(ctx))
        member = members.resolve(ctx, who)
        if member.principal is None:
            result = Page("dashboard/no_merchant.html")
        else:
            if need:
                roles.require(member.principal, need)
            ctx.jar = jar
            result = handler(ctx, member)
        response = result if isinstance(result, flask.Response) else html(
            ctx, result.template, {**layout(member, section), **result.context}, result.status,
            result.headers)
    except PayloomError as exc:
        if exc.status >= 500:
            logs.log(_log, logging.ERROR, "dashboard service error", code=exc.code)
        response = error_page(ctx, exc.status, exc.message, member, exc.headers)
    except Exception:  # noqa: BLE001 — never show internals; still keep the rotated cookies
        _log.exception("unhandled error in dashboard page %s %s", ctx.request.method,
                       ctx.request.path)
        response = error_page(ctx, 500, ctx._("Something went wrong on our side. Please try again."),
                              member)
    return jar.apply(response)


def member_page(method: str, path: str, *, need: str | None = "read", section: str = ""):
    """Register a page a signed-in member opens; ``need`` is a role or a roles.MATRIX action
    (checked before the handler runs, like the API's ``require``)."""
    def register(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def handler(ctx):
            return run(ctx, fn, need, section)
        pages.route(method, path)(handler)
        return fn
    return register
