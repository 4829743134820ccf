"""Process start-up shared by every function's ``main.py``."""
from __future__ import annotations

import json
from typing import Iterable

import flask
from werkzeug.exceptions import HTTPException

from shared.platform import logs
from shared.platform.auth import Authenticator, Resolver, register_authenticator, register_resolvers
from shared.platform.config import get_settings
from shared.platform.errors import INTERNAL_ERROR, http_error_envelope

# functions-framework marks crashes with this header so Cloud Functions logs them as crashes.
_CRASH_HEADER = ("X-Google-Status", "crash")


def boot(function_name: str, *, authenticators: Iterable[Authenticator] = (),
         resolvers: Iterable[Resolver] = ()) -> None:
    """Configure JSON logging once and register the credentials this function accepts.

    ``authenticators`` are named by the entry point (``boot("wallet",
    authenticators=[identity_authenticator])``): what a function accepts is visible in its
    ``main.py``, not a side effect of some import. ``resolvers`` refine the authenticated
    principal on this function's routes only (``merchant_context``: a user acting for a merchant).

    functions-framework runs ``main.py`` inside its Flask app's context: the app's own answers
    (a URL its catch-all rule cannot match, e.g. a newline in the path) get the error envelope
    too, instead of Flask's HTML pages."""
    logs.configure(get_settings().project_id)
    for authenticator in authenticators:
        register_authenticator(authenticator)
    register_resolvers(function_name, resolvers)
    if flask.has_app_context():
        install_error_envelopes(flask.current_app)


def install_error_envelopes(app: flask.Flask) -> None:
    """Every status Flask or werkzeug produces by itself is rendered as the JSON envelope."""
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(500, _crash)  # replaces functions-framework's str(exc) body


def _http_exception(exc: HTTPException):
    status = exc.code or 500
    if status >= 500:
        return _crash(exc)
    headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else {}
    message = None
    if status == 404:
        message = f"Unrecognized request URL ({flask.request.method}: {flask.request.path[:200]!r})."
    return _json(status, http_error_envelope(status, exc.name, message), headers)


def _crash(_exc):
    return _json(500, INTERNAL_ERROR, dict([_CRASH_HEADER]))


def _json(status: int, payload: dict, headers: dict[str, str]) -> flask.Response:
    return flask.Response(json.dumps(payload, separators=(",", ":")), status=status,
                          headers=headers, content_type="application/json")
