"""Regressions found by driving the relay from outside like a hostile client suite: each test
is one bug seen on ``make run`` (each failed before its fix)."""
from __future__ import annotations

import pytest
from google.cloud.firestore_v1 import FieldFilter

from shared.relay import availability
from tests.relay.dispatch_kit import env, job_doc  # noqa: F401


def suspicious_kinds(env, sim_id):
    return sorted(s.get("kind") for s in env.deps.db.collection("relay_suspicious")
                  .where(filter=FieldFilter("sim_id", "==", sim_id)).stream())


def sim_state(env, sim_id):
    return availability.availability_ref(env.deps.db, sim_id).get().to_dict()


def fetched(env, phone):
    m = env.send()
    assert env.assign(m["id"]) == "assigned"
    [job_id] = phone.new_jobs()
    return m, job_id, phone.fetch(job_id).get_json()["token"]


def test_a_phone_retrying_one_delivery_report_is_not_flagged_as_a_script(env):
    """A phone on a bad connection re-sends its report until it hears back: the answer says
    ``duplicate: true`` and the retries must not teach the detectors anything."""
    phone = env.handset()
    _, job_id, token = fetched(env, phone)
    sim = phone.phone.sims[0]
    env.advance(3)
    assert phone.report(job_id, "sent", token).get_json()["duplicate"] is False
    env.advance(4)                                              # a carrier-like 4 s
    assert phone.report(job_id, "delivered", token).get_json()["duplicate"] is False
    before = sim_state(env, sim)
    for _ in range(12):                                         # lost answers, retried
        r = phone.report(job_id, "delivered", token)
        assert r.status_code == 200 and r.get_json()["duplicate"] is True
    after = sim_state(env, sim)
    assert suspicious_kinds(env, sim) == []
    assert after.get("penalty", 0) == before.get("penalty", 0)
    assert len(after.get("latencies_ms") or []) == len(before.get("latencies_ms") or [])


def test_retrying_a_fast_report_is_penalised_once(env):
    phone = env.handset()
    _, job_id, token = fetched(env, phone)
    sim = phone.phone.sims[0]
    env.advance(3)
    phone.report(job_id, "sent", token)
    env.advance(0.5)                                            # too fast: flagged once, fine
    phone.report(job_id, "delivered", token)
    once = sim_state(env, sim)["penalty"]
    for _ in range(3):
        assert phone.report(job_id, "delivered", token).get_json()["duplicate"] is True
    assert suspicious_kinds(env, sim) == ["delivery_too_fast"]
    assert sim_state(env, sim)["penalty"] == once
    assert job_doc(env.deps, job_id)["status"] == "delivered"


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u2060", "\u00ad", "\ufeff", "\u200e \u200f",
                                  "\u2066\u2069", "\u3164"])
def test_an_invisible_text_is_empty(env, text):
    from tests.relay.supply_kit import fresh_phone
    r = env.messages.post("/v1/messages", headers=env.client.headers(),
                          json={"to": fresh_phone("smart"), "text": text})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "text_empty", r.get_json()


@pytest.mark.parametrize("text", ["Your parcel is held, pay the fee at \u202e321cba/yl.tib",
                                  "Your parcel is held, pay the fee at b\u2066it.ly/abc123",
                                  "Your parcel is held, pay the fee at bit\u3002ly/abc123"])
def test_a_shortener_link_cannot_hide_behind_unicode(env, text):
    from tests.relay.supply_kit import fresh_phone
    r = env.messages.post("/v1/messages", headers=env.client.headers(),
                          json={"to": fresh_phone("smart"), "text": text})
    assert r.status_code in (400, 422), r.get_json()
    assert r.get_json()["error"]["code"] in ("text_invalid", "content_url_shortener")


def test_khmer_with_zero_width_spaces_is_still_accepted(env):
    """The invisible-text rule must not refuse Khmer, whose words are split by U+200B."""
    from tests.relay.supply_kit import fresh_phone
    r = env.messages.post("/v1/messages", headers=env.client.headers(),
                          json={"to": fresh_phone("smart"), "text": "សួស្ដី\u200bពិភពលោក"})
    assert r.status_code == 202, r.get_json()
