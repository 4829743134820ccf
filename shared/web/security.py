"""Browser-facing defences for every page: CSP with a nonce, security headers, CSRF.

Content-Security-Policy (strict): nothing loads unless it is ours. Scripts and styles need
``'self'`` or the response's nonce (no ``unsafe-inline``, no ``unsafe-eval``), images may be
data: URIs (QR codes), forms post only to ourselves (plus the origins a page names, e.g. the
card processor's hosted step), and no one may frame us (``frame-ancestors 'none'``) unless the
page opts in for an embeddable button.

CSRF: the signed double-submit cookie of OWASP's cheat sheet. The browser holds a random cookie
(``__Host-payloom_csrf`` in production: Secure, path /, no Domain, SameSite=Lax, HttpOnly);
each form carries ``HMAC(key, cookie)``; a POST is accepted only when the field (or the
``X-CSRF-Token`` header) matches the cookie it came with, compared in constant time, and when
the browser does not call it cross-site (``Sec-Fetch-Site``/``Origin``). An attacker's page can
neither read our cookie nor forge the HMAC without the key.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import flask

from shared.platform.errors import PayloomError
from shared.web import messages

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class CsrfRejected(PayloomError):
    status, type, code = 403, "invalid_request_error", "csrf_failed"


def new_nonce() -> str:
    return base64.b64encode(secrets.token_bytes(18)).decode()


def content_security_policy(nonce: str, *, form_action: Iterable[str] = (),
                            connect_src: Iterable[str] = (), img_src: Iterable[str] = (),
                            frame_ancestors: Iterable[str] = ()) -> str:
    ancestors = " ".join(frame_ancestors) or "'none'"
    directives = [
        "default-src 'none'",
        f"script-src 'self' 'nonce-{nonce}'",
        f"style-src 'self' 'nonce-{nonce}'",
        " ".join(["img-src 'self' data:", *img_src]),
        "font-src 'self'",
        " ".join(["connect-src 'self'", *connect_src]),
        " ".join(["form-action 'self'", *form_action]),
        f"frame-ancestors {ancestors}",
        "base-uri 'none'",
        "object-src 'none'",
    ]
    return "; ".join(directives)


def security_headers(nonce: str, *, cache: str = "no-store", **csp) -> dict[str, str]:
    """Headers for an HTML response. ``cache`` is ``no-store`` for anything personal."""
    return {
        "Content-Security-Policy": content_security_policy(nonce, **csp),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        "Cache-Control": cache,
    } | ({} if csp.get("frame_ancestors") else {"X-Frame-Options": "DENY"})


def csrf_cookie_name(secure: bool) -> str:
    return "__Host-payloom_csrf" if secure else "payloom_csrf"


def csrf_token(key: bytes, cookie_value: str) -> str:
    mac = hmac.new(key, b"csrf:" + cookie_value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


class Csrf:
    """Issue and check CSRF tokens for one request."""

    def __init__(self, request: flask.Request, key: bytes, *, secure: bool):
        self.request, self.key, self.secure = request, key, secure
        self.cookie_name = csrf_cookie_name(secure)
        existing = request.cookies.get(self.cookie_name, "")
        self._fresh = not (16 <= len(existing) <= 128)
        self.cookie_value = secrets.token_urlsafe(24) if self._fresh else existing

    @property
    def token(self) -> str:
        return csrf_token(self.key, self.cookie_value)

    def verify(self, form: Mapping[str, str]) -> None:
        """Raise ``CsrfRejected`` (403) unless this POST came from our own page."""
        site = self.request.headers.get("Sec-Fetch-Site", "")
        if site and site not in ("same-origin", "none"):
            raise CsrfRejected(messages.CSRF_CROSS_SITE)
        origin = self.request.headers.get("Origin", "")
        if origin and origin != "null" and urlsplit(origin).netloc != self.request.host:
            raise CsrfRejected(messages.CSRF_CROSS_ORIGIN)
        sent = form.get(CSRF_FIELD) or self.request.headers.get(CSRF_HEADER) or ""
        if self._fresh or not hmac.compare_digest(sent.encode(), self.token.encode()):
            raise CsrfRejected(messages.CSRF_EXPIRED)

    def set_cookie(self, response: flask.Response) -> None:
        if self._fresh:
            response.set_cookie(self.cookie_name, self.cookie_value, httponly=True,
                                secure=self.secure, samesite="Lax", path="/")
