"""Production service auth: Google OIDC tokens verified against Google's certs (served locally)."""
import datetime as dt
import json
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.platform.auth import authenticate_service
from shared.platform.config import Settings
from shared.platform.errors import AuthenticationError, PermissionDenied

INVOKER = "tasks-invoker@payloom-prod.iam.gserviceaccount.com"


def _key_and_cert():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "google-test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


KEY, CERT = _key_and_cert()


class CertsTransport:
    """A google.auth transport Request that answers the certs URL with our test cert."""

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kw):
        class Resp:
            status = 200
            headers = {}
            data = json.dumps({"k1": CERT}).encode()
        return Resp()


SETTINGS = Settings(env="prod", function_name="platform_tasks", tasks_invoker_email=INVOKER,
                    functions_base_url="https://europe-west1-payloom-prod.cloudfunctions.net")


def token(**overrides):
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": SETTINGS.function_url("platform_tasks"),
              "email": INVOKER, "email_verified": True, "iat": now, "exp": now + 600, "sub": "1"}
    claims.update(overrides)
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})


def call(tok):
    return authenticate_service({"Authorization": f"Bearer {tok}"}, SETTINGS, http_request=CertsTransport())


def test_valid_invoker_token_is_a_service_principal():
    p = call(token())
    assert p.kind == "service" and p.id == INVOKER


def test_other_service_account_is_forbidden():
    with pytest.raises(PermissionDenied):
        call(token(email="someone@else.iam.gserviceaccount.com"))


@pytest.mark.parametrize("claims", [{"aud": "https://evil.example/fn"}, {"exp": int(time.time()) - 3600},
                                    {"iss": "https://evil.example"}])
def test_wrong_audience_expired_or_issuer_rejected(claims):
    with pytest.raises(AuthenticationError):
        call(token(**claims))


def test_local_secret_is_never_accepted_in_production():
    prod = Settings(env="prod", task_auth_secret="s3cret", tasks_invoker_email=INVOKER)
    with pytest.raises(AuthenticationError):
        authenticate_service({"Authorization": "Bearer s3cret"}, prod, http_request=CertsTransport())


def test_local_secret_required_and_checked_in_development():
    dev = Settings(env="local", task_auth_secret="s3cret")
    assert authenticate_service({"Authorization": "Bearer s3cret"}, dev).kind == "service"
    with pytest.raises(AuthenticationError):
        authenticate_service({"Authorization": "Bearer s3cre"}, dev)
    with pytest.raises(AuthenticationError):  # no secret configured: nothing is accepted
        authenticate_service({"Authorization": "Bearer "}, Settings(env="local", task_auth_secret=""))
