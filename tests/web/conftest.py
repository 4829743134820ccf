"""A tiny page capability built on ``shared.web`` (templates, a Khmer catalogue, static files),
served by a Flask app the way functions-framework serves a function."""
from __future__ import annotations

import textwrap

import flask
import pytest

from shared.platform.errors import Conflict
from shared.web.pages import Page, Pages

KM_PO = textwrap.dedent('''\
    msgid ""
    msgstr ""
    "Content-Type: text/plain; charset=UTF-8\\n"
    "Language: km\\n"

    msgid "Hello, %(name)s"
    msgstr "សួស្តី, %(name)s"

    msgid "Pay now"
    msgstr "បង់ឥឡូវនេះ"
    ''')


@pytest.fixture
def sample_pages(tmp_path):
    (tmp_path / "templates" / "sample").mkdir(parents=True)
    (tmp_path / "templates" / "sample" / "hello.html").write_text(textwrap.dedent('''\
        {% extends "web/base.html" %}
        {% block head %}<style nonce="{{ nonce }}">h1{color:#123}</style>
        <script src="{{ static('app.js') }}" nonce="{{ nonce }}" defer></script>{% endblock %}
        {% block body %}<main><h1>{{ _("Hello, %(name)s", name=name) }}</h1>
        <form method="post" action="{{ root }}/things/{{ thing }}">
          <input type="hidden" name="{{ csrf_field }}" value="{{ csrf_token }}">
          <label for="note">Note</label><input id="note" name="note">
          <button type="submit">{{ _("Pay now") }}</button></form></main>{% endblock %}
        '''))
    (tmp_path / "locale" / "km" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "locale" / "km" / "LC_MESSAGES" / "messages.po").write_text(KM_PO)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "app.js").write_text("document.documentElement.dataset.ready = '1';\n")
    (tmp_path / "secret.txt").write_text("not public")

    pages = Pages("sample", web_root="sample", package_dir=tmp_path)

    @pages.get("/things/{thing}")
    def show(ctx):
        return Page("sample/hello.html", {"name": ctx.request.args.get("name", "<b>you</b>"),
                                          "thing": ctx.params["thing"]})

    @pages.post("/things/{thing}")
    def submit(ctx):
        return flask.redirect(f"{ctx.root}/things/{ctx.params['thing']}?done=1", code=303)

    @pages.get("/conflict")
    def conflict(ctx):
        raise Conflict("That thing is already paid.", code="already_paid")

    @pages.get("/boom")
    def boom(ctx):
        raise RuntimeError("secret internals /srv/app.py")

    return pages


@pytest.fixture
def page_app(sample_pages, deps):
    app = flask.Flask("sample-pages")

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "HEAD", "PUT"])
    @app.route("/<path:path>", methods=["GET", "POST", "HEAD", "PUT"])
    def serve(path):
        return sample_pages(flask.request)
    return app
