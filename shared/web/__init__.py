"""Server-rendered pages (the hosted payment page, the dashboard, the docs), written once.

``pages.Pages`` routes a function's HTML pages outside ``/v1`` (the manifest's ``web_root``);
``security`` sets a strict Content-Security-Policy with a per-response nonce and checks CSRF on
every form; ``i18n`` picks English or Khmer and loads gettext catalogues (``.po`` files, compiled
in memory); ``render`` holds the Jinja2 environments; ``assets`` serves the capability's own
static files and the few npm files we vendor (Chart.js, Swagger UI), never from a CDN.
"""
