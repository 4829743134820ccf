"""The docs pages (``/docs/...``), on ``shared.web.pages.Pages``.

- ``/docs``: the API reference, Swagger UI (npm ``swagger-ui-dist``, served from our own
  files) rendering ``/docs/openapi.json``; "Try it out" calls ``/v1/...`` on this origin with
  the test-mode key the reader enters (never stored: ``persistAuthorization`` is off);
- ``/docs/openapi.json``: the document (``shared.docs.spec``), cached by content hash;
- ``/docs/quickstart``: the first calls with curl and with the Python SDK;
- ``/docs/events``: the event catalogue (the document's ``webhooks``) and how to verify them;
- ``/docs/errors``: the error envelope and every code the API answers, per status.
"""
from __future__ import annotations

import json
from pathlib import Path

import flask

from shared.docs import guide, spec
from shared.web.pages import Page, PageContext, Pages

pages = Pages("docs", web_root="docs", package_dir=Path(__file__).resolve().parent)


def _base_url(ctx: PageContext) -> str:
    return ctx.request.host_url.rstrip("/")


@pages.get("/")
def reference(ctx: PageContext) -> Page:
    doc = spec.current()
    return Page("docs/reference.html", {
        "spec_url": f"{ctx.root}/openapi.json?v={doc.digest}", "section": "reference",
        "operations": sum(len(ops) for ops in doc.spec["paths"].values()),
        "events": len(doc.spec.get("webhooks", {}))})


@pages.get("/openapi.json")
def document(ctx: PageContext) -> flask.Response:
    doc = spec.current()
    cache = ("public, max-age=31536000, immutable" if ctx.request.args.get("v") == doc.digest
             else "no-cache")
    headers = {"ETag": doc.etag, "Cache-Control": cache, "Access-Control-Allow-Origin": "*",
               "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}
    if doc.etag in ctx.request.headers.get("If-None-Match", ""):
        return flask.Response(status=304, headers=headers)
    return flask.Response(doc.body, status=200, content_type="application/json", headers=headers)


@pages.get("/quickstart")
def quickstart(ctx: PageContext) -> Page:
    return Page("docs/quickstart.html", {
        "section": "quickstart", "base": _base_url(ctx),
        "curl_create": guide.curl_create(_base_url(ctx)),
        "curl_retrieve": guide.curl_retrieve(_base_url(ctx)),
        "sdk": guide.sdk_example(_base_url(ctx)), "webhook": guide.WEBHOOK_EXAMPLE,
        "error_example": json.dumps(guide.ERROR_EXAMPLE, indent=2)})


@pages.get("/events")
def events(ctx: PageContext) -> Page:
    hooks = spec.current().spec.get("webhooks", {})
    families = guide.event_families(hooks, f"{ctx.root}/")
    sample = guide.sample_event(hooks)
    return Page("docs/events.html", {
        "section": "events", "families": families, "count": len(hooks),
        "sample": json.dumps(sample, indent=2) if sample else "",
        "schedule": guide.schedule_text(ctx.lang)})


@pages.get("/errors")
def errors(ctx: PageContext) -> Page:
    return Page("docs/errors.html", {"section": "errors", "statuses": guide.error_table(spec.current().spec),
                                     "envelope": json.dumps(guide.ERROR_EXAMPLE, indent=2)})
