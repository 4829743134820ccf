"""Identity end to end on the running stack: email, SMS and OIDC simulators wired by the stack."""
import re
import urllib.parse
import uuid

import pytest
import requests

from tests.support.e2e import running_stack
from tests.support.polling import wait_for

pytestmark = pytest.mark.e2e


stack = running_stack("demo-payloom-e2e-id",
                      ("firestore", "pubsub", "tasks", "email", "sms", "oidc", "gateway"))


def url(stack, path):
    return f"http://127.0.0.1:{stack.ports.gateway}{path}"


def test_register_verify_email_login_and_profile(stack):
    name = "u" + uuid.uuid4().hex[:10]
    email = f"{name}@example.com"
    r = requests.post(url(stack, "/v1/auth/register"), json={"email": email, "username": name,
                                                            "password": "correct horse battery"}, timeout=30)
    assert r.status_code == 201, r.text
    inbox = f"http://127.0.0.1:{stack.ports.email}/_inbox"
    mail = wait_for(lambda: requests.get(inbox, params={"to": email}, timeout=5).json())
    token = re.search(r"token=([A-Za-z0-9_\-]+)", mail[-1]["text"] or mail[-1]["html"]).group(1)
    v = requests.post(url(stack, "/v1/auth/email/verify"), json={"token": token}, timeout=30)
    assert v.status_code == 200, v.text
    login = requests.post(url(stack, "/v1/auth/login"), json={"username": name, "password": "correct horse battery"},
                          timeout=30).json()
    me = requests.get(url(stack, "/v1/me"), headers={"Authorization": f"Bearer {login['access_token']}"},
                      timeout=30).json()
    assert me["username"] == name and me["email_verified"] is True
    jwks = requests.get(url(stack, "/.well-known/jwks.json"), timeout=10).json()
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])


def test_phone_otp_sign_in_through_the_sms_simulator(stack):
    phone = "+85512" + str(uuid.uuid4().int)[:6]
    r = requests.post(url(stack, "/v1/auth/phone/start"), json={"phone": phone, "purpose": "signin"}, timeout=30)
    assert r.status_code == 202, r.text
    inbox = f"http://127.0.0.1:{stack.ports.sms}/_inbox"
    sms = wait_for(lambda: requests.get(inbox, params={"to": phone}, timeout=5).json())
    code = re.search(r"\b(\d{6})\b", sms[-1]["body"]).group(1)
    v = requests.post(url(stack, "/v1/auth/phone/verify"), json={"phone": phone, "code": code}, timeout=30)
    assert v.status_code == 201, v.text
    assert v.json()["access_token"]


def test_google_sign_in_through_the_oidc_simulator(stack):
    r = requests.get(url(stack, "/v1/auth/oauth/google/authorize"), timeout=30)
    assert r.status_code == 200, r.text
    authorize = r.json()["url"]
    assert authorize.startswith(f"http://127.0.0.1:{stack.ports.oidc}/google")
    consent = requests.get(authorize, allow_redirects=False, timeout=10)
    assert consent.status_code in (302, 303), consent.text
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(consent.headers["Location"]).query))
    cb = requests.get(url(stack, "/v1/auth/oauth/google/callback"), params={"code": q["code"], "state": q["state"]},
                      timeout=30)
    assert cb.status_code in (200, 201), cb.text
    assert cb.json()["access_token"]
