"""The loopback email API speaks the SendGrid v3 shape the production adapter sends."""
from __future__ import annotations

import pytest
import requests

from shared.identity.users.email import HttpEmailSender
from shared.identity.ports import EmailDeliveryError, EmailMessage


def test_adapter_delivers_to_the_inbox(email_server):
    sender = HttpEmailSender(email_server.base_url, "k", from_email="no-reply@payloom.dev",
                             from_name="Payloom")
    msg_id = sender.send(EmailMessage(to="Zed@Example.com", subject="Hi", text="hello",
                                      html="<p>hello</p>", category="test", metadata={"a": "1"}))
    assert msg_id
    [got] = requests.get(f"{email_server.base_url}/_inbox", params={"to": "zed@example.com"}).json()
    assert (got["subject"], got["text"], got["html"], got["from"]) == \
        ("Hi", "hello", "<p>hello</p>", "no-reply@payloom.dev")
    assert got["categories"] == ["test"] and got["custom_args"] == {"a": "1"}


def test_protocol_errors(email_server):
    url = f"{email_server.base_url}/v3/mail/send"
    good = HttpEmailSender(email_server.base_url, "k", from_email="a@b.co").payload(
        EmailMessage(to="x@example.com", subject="s", text="t"))
    assert requests.post(url, json=good).status_code == 401
    auth = {"Authorization": "Bearer k"}
    for broken in ({}, {**good, "personalizations": []}, {**good, "subject": ""},
                   {**good, "content": []}, {**good, "from": {"email": "nope"}}):
        r = requests.post(url, json=broken, headers=auth)
        assert r.status_code == 400 and r.json()["errors"][0]["message"]
    assert requests.post(url, data=b"{", headers=auth).status_code == 400
    r = requests.post(url, json=good, headers=auth)
    assert r.status_code == 202 and r.headers["X-Message-Id"] and r.content == b""


def test_bounce_and_transient_failures(email_server):
    sender = HttpEmailSender(email_server.base_url, "k", from_email="a@b.co")
    with pytest.raises(EmailDeliveryError):
        sender.send(EmailMessage(to="bounce@example.com", subject="s", text="t"))
    with pytest.raises(EmailDeliveryError):
        sender.send(EmailMessage(to="unavailable@example.com", subject="s", text="t"))
    assert sender.send(EmailMessage(to="unavailable@example.com", subject="s", text="t"))
    with pytest.raises(EmailDeliveryError):
        HttpEmailSender("http://127.0.0.1:9", "k", from_email="a@b.co", timeout=1).send(
            EmailMessage(to="x@example.com", subject="s", text="t"))


def test_without_an_email_api_production_refuses_and_local_keeps_in_memory():
    from shared.identity.config import IdentitySettings
    from shared.identity.users.email import MemoryEmailSender, build_email_sender
    with pytest.raises(EmailDeliveryError):
        build_email_sender(IdentitySettings(email_api_url=""), production=True).send(
            EmailMessage(to="x@example.com", subject="s", text="t"))
    local = build_email_sender(IdentitySettings(email_api_url=""), production=False)
    assert isinstance(local, MemoryEmailSender)
    local.send(EmailMessage(to="x@example.com", subject="s", text="t"))
    assert local.messages[0].to == "x@example.com"
