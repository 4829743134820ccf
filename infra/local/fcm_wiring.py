"""The one place that points firebase-admin's FCM client at the loopback FCM endpoint.

firebase-admin 7.7 builds its send URL once per app, when the app's messaging service is first
created, from the class attribute
``firebase_admin.messaging._MessagingService.FCM_URL``
(``'https://fcm.googleapis.com/v1/projects/{0}/messages:send'``, ``{0}`` = project id).
``send``, ``send_each`` and ``send_each_async`` all use that URL. The requests session mounts its
retry adapter (500/503 up to 4 times) on ``http://`` too, so retries behave as in production.

``install_fcm_loopback`` rewrites that attribute to the loopback endpoint and initialises a
firebase app whose credential returns ``firebase_admin._utils.EmulatorAdminCredentials()``
(a fixed ``Bearer owner`` token, never refreshed, no network). Production code
(shared/adapters/fcm.py) only ever uses the default app, or the app it is handed, and never knows
about any of this. Never import this module from functions/ or shared/.

Not covered by the loopback: topic (un)subscription, which uses iid.googleapis.com and a
hard-coded ``https://fcm.googleapis.com/.../registrations`` URL.
"""

from __future__ import annotations

import threading

import firebase_admin
from firebase_admin import _utils, credentials, messaging

_lock = threading.Lock()
_ORIGINAL_FCM_URL = messaging._MessagingService.FCM_URL


class LoopbackCredential(credentials.Base):
    """A firebase credential for the loopback endpoint: no key, no token refresh."""

    def __init__(self) -> None:
        super().__init__()
        self._g_credential = _utils.EmulatorAdminCredentials()

    def get_credential(self):  # type: ignore[no-untyped-def]
        return self._g_credential


def loopback_fcm_url(base_url: str) -> str:
    """The FCM_URL template (``{0}`` = project id) for a loopback base URL."""
    return base_url.rstrip("/") + "/v1/projects/{0}/messages:send"


def install_fcm_loopback(
    base_url: str,
    project_id: str,
    *,
    app_name: str = firebase_admin._DEFAULT_APP_NAME,
    http_timeout: float = 10.0,
) -> firebase_admin.App:
    """Route firebase-admin FCM sends to ``base_url`` and return the (default) firebase app.

    Idempotent: calling it again with the same arguments returns the same app. Called with a
    different base URL or project (e.g. a fresh simulator in another test module), it deletes the
    app it created before and creates a new one, because the send URL is fixed per app at first
    use. It refuses to take over an app it did not create.
    """
    url = loopback_fcm_url(base_url)
    with _lock:
        messaging._MessagingService.FCM_URL = url
        try:
            app = firebase_admin.get_app(app_name)
        except ValueError:
            app = None
        if app is not None:
            if not isinstance(app.credential, LoopbackCredential):
                raise RuntimeError(
                    f"firebase app {app_name!r} already exists with real credentials; "
                    "install_fcm_loopback must run before anything initialises firebase"
                )
            if app.project_id == project_id and getattr(app, "_payloom_fcm_url", None) == url:
                return app
            firebase_admin.delete_app(app)
        app = firebase_admin.initialize_app(
            LoopbackCredential(),
            options={"projectId": project_id, "httpTimeout": http_timeout},
            name=app_name,
        )
        app._payloom_fcm_url = url  # type: ignore[attr-defined]
        return app


def uninstall_fcm_loopback(
    *, app_name: str = firebase_admin._DEFAULT_APP_NAME, restore_url: str | None = None
) -> None:
    """Delete the loopback app (if ours) and put back ``restore_url`` (default: the production
    URL) as ``FCM_URL``. For test teardown."""
    with _lock:
        try:
            app = firebase_admin.get_app(app_name)
        except ValueError:
            app = None
        if app is not None and isinstance(app.credential, LoopbackCredential):
            firebase_admin.delete_app(app)
        messaging._MessagingService.FCM_URL = restore_url or _ORIGINAL_FCM_URL
