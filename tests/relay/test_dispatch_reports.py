"""The phone's reports through the real ``relay`` function: tokens, wrong providers, duplicates
and out-of-order reports, failures with the carrier's error, STOP replies, Khmer errors, and
the fraud detectors (R1's) fed by every report, so a lying phone stops being matched."""
from __future__ import annotations

from shared.relay import availability, providers
from tests.relay.dispatch_kit import env, events_of, job_doc  # noqa: F401
from tests.relay.supply_kit import fresh_phone


def penalty(env, provider_id):
    return providers.provider_ref(env.deps.db, provider_id).get().to_dict().get("penalty") or 0


def fetched(env, phone, **send):
    m = env.send(**send)
    assert env.assign(m["id"]) == "assigned"
    [job_id] = phone.new_jobs()
    job = phone.fetch(job_id).get_json()
    return m, job_id, job["token"]


def test_a_forged_token_is_refused_and_counted_against_the_reporter(env):
    phone = env.handset()
    m, job_id, token = fetched(env, phone)
    before = penalty(env, phone.phone.provider_id)
    r = phone.report(job_id, "delivered", "jt_" + "A" * 32)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "job_token_invalid"
    assert penalty(env, phone.phone.provider_id) > before
    assert env.msg(m["id"])["status"] == "sending" and job_doc(env.deps, job_id)["status"] == "sending"
    assert phone.report(job_id, "sent", token).status_code == 200     # the real token still works


def test_another_provider_cannot_fetch_or_report_a_job_and_is_penalised_not_the_owner(env):
    owner, intruder = env.handset(), env.handset(("metfone",))
    m, job_id, token = fetched(env, owner, to=fresh_phone("smart"))
    owner_sim_before = availability.availability_ref(env.deps.db, owner.phone.sims[0]).get().to_dict()
    r = intruder.fetch(job_id)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "job_not_found"
    r = intruder.report(job_id, "sent", token)                   # even with a stolen token
    assert r.status_code == 404
    assert penalty(env, intruder.phone.provider_id) > 0
    assert penalty(env, owner.phone.provider_id) == 0
    owner_sim = availability.availability_ref(env.deps.db, owner.phone.sims[0]).get().to_dict()
    assert owner_sim["penalty"] == owner_sim_before["penalty"]
    assert env.msg(m["id"])["status"] == "sending"
    for bad in ("job_doesnotexist", "job_" + "x" * 24 + "9", "msg_" + "a" * 24, "a" * 200):
        assert intruder.fetch(bad).status_code == 404, bad
        assert intruder.report(bad, "sent", token).status_code == 404, bad


def test_callers_who_are_not_providers_or_send_garbage_get_4xx(env, relay_client):
    phone = env.handset()
    m, job_id, token = fetched(env, phone)
    outsider_id, outsider = env.kit.user()
    r = relay_client.get(f"/v1/relay/jobs/{job_id}", headers=outsider)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "not_a_provider"
    r = relay_client.post(f"/v1/relay/jobs/{job_id}/sent", json={"token": token},
                          headers=env.client.headers())            # an API key is not a phone
    assert r.status_code == 403
    for body in ({}, {"token": "short"}, {"token": token, "carrier_error": "x" * 500},
                 {"token": token, "extra": 1}, {"token": token, "at": "now"}):
        r = relay_client.post(f"/v1/relay/jobs/{job_id}/failed", json=body, headers=phone.phone.headers())
        assert r.status_code == 400, body
    r = relay_client.post(f"/v1/relay/jobs/{job_id}/lost", json={"token": token},
                          headers=phone.phone.headers())
    assert r.status_code in (404, 405)
    assert env.msg(m["id"])["status"] == "sending"


def test_errors_speak_khmer_to_a_khmer_phone(env):
    phone = env.handset()
    r = phone.fetch("job_" + "b" * 24 + "1", **{"Accept-Language": "km"})
    body = r.get_json()["error"]
    assert r.status_code == 404 and body["message_km"] and body["message"]
    assert "message_km" not in phone.fetch("job_" + "b" * 24 + "1").get_json()["error"]


def test_duplicate_and_out_of_order_reports_are_harmless(env):
    phone = env.handset()
    m, job_id, token = fetched(env, phone)
    env.advance(3)
    assert phone.report(job_id, "sent", token).get_json()["duplicate"] is False
    assert phone.report(job_id, "sent", token).get_json()["duplicate"] is True
    env.advance(5)
    assert phone.report(job_id, "delivered", token).get_json()["status"] == "delivered"
    for kind in ("sent", "delivered", "failed"):                 # all after the last word
        r = phone.report(job_id, kind, token)
        assert r.status_code == 200 and r.get_json()["duplicate"] is True, kind
    got = env.get(m["id"])
    assert got["status"] == "delivered"
    assert [h["status"] for h in got["status_history"]] == ["queued", "assigned", "sending", "sent", "delivered"]
    assert events_of(env.deps, m["id"]).count("message.delivered") == 1


def test_delivered_before_sent_completes_the_message(env):
    phone = env.handset()
    m, job_id, token = fetched(env, phone)
    env.advance(4)
    assert phone.report(job_id, "delivered", token).status_code == 200
    got = env.get(m["id"])
    assert got["status"] == "delivered" and got["sent_at"] is not None
    assert phone.report(job_id, "sent", token).get_json()["duplicate"] is True
    assert env.get(m["id"])["status"] == "delivered"


def test_a_send_failure_goes_to_another_sim_with_the_carriers_error(env):
    first = env.handset()
    m, job_id, token = fetched(env, first)
    second = env.handset()
    r = first.report(job_id, "failed", token, carrier_error="RESULT_ERROR_NO_SERVICE")
    assert r.status_code == 200 and r.get_json()["status"] == "failed"
    doc = env.msg(m["id"])
    assert doc["status"] == "queued" and doc["carrier_error"] == "RESULT_ERROR_NO_SERVICE"
    assert first.phone.sims[0] in doc["excluded_sims"] and doc["failures"] == 1
    env.advance(6)
    assert env.assign(m["id"]) == "assigned"
    assert second.new_jobs() == [env.msg(m["id"])["job"]]


def test_a_permanent_carrier_error_fails_the_message_at_once(env):
    phone = env.handset()
    m, job_id, token = fetched(env, phone)
    phone.report(job_id, "failed", token, carrier_error="invalid_destination")
    got = env.get(m["id"])
    assert got["status"] == "failed" and got["failure_code"] == "recipient_unreachable"
    assert got["carrier_error"] == "invalid_destination"


def test_a_failed_delivery_report_after_sent_is_final_and_never_resent(env):
    phone = env.handset()
    m, job_id, token = fetched(env, phone)
    env.advance(3)
    phone.report(job_id, "sent", token)
    env.advance(20)
    r = phone.report(job_id, "failed", token, carrier_error="DLR_UNDELIVERABLE")
    assert r.status_code == 200
    got = env.get(m["id"])
    assert got["status"] == "failed" and got["failure_code"] == "delivery_failed"
    assert env.assign(m["id"]) == "already_failed"


def test_a_stop_reply_opts_the_recipient_out_of_that_client(env):
    phone = env.handset()
    to = fresh_phone("smart")
    m, job_id, token = fetched(env, phone, to=to)
    r = env.relay.post(f"/v1/relay/jobs/{job_id}/reply", json={"token": token, "text": "STOP"},
                       headers=phone.phone.headers())
    assert r.status_code == 409                                   # not sent yet
    env.advance(3)
    phone.report(job_id, "sent", token)
    r = env.relay.post(f"/v1/relay/jobs/{job_id}/reply", json={"token": token, "text": "STOP"},
                       headers=phone.phone.headers())
    assert r.status_code == 200, r.get_data(as_text=True)
    r = env.messages.post("/v1/messages", json={"to": to, "text": "hello again"},
                          headers=env.client.headers())
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "recipient_opted_out"
    listed = env.messages.get("/v1/messages/opt_outs", headers=env.client.headers()).get_json()
    assert listed["data"][0]["source"] == "stop_reply"


def test_a_fake_report_pattern_lowers_reputation_and_stops_matching_to_that_sim(env):
    liar = env.handset()
    sim = liar.phone.sims[0]
    for n in range(12):     # sent the instant it was assigned, delivered the same instant
        m, job_id, token = fetched(env, liar)
        liar.report(job_id, "sent", token)
        liar.report(job_id, "delivered", token)
        if not availability.availability_ref(env.deps.db, sim).get().get("eligible"):
            break
        env.advance(1)
    doc = availability.availability_ref(env.deps.db, sim).get().to_dict()
    assert doc["eligible"] is False and doc["block"] == "low_reputation", doc.get("block")
    assert n < 11
    honest = env.handset()
    for _ in range(3):
        m = env.send()
        assert env.assign(m["id"]) == "assigned"
        job_id = env.msg(m["id"])["job"]
        assert job_doc(env.deps, job_id)["sim_id"] == honest.phone.sims[0]
        env.advance(2)
        honest.deliver(job_id)        # frees its in-flight slot for the next one
    flagged = [s.to_dict() for s in env.deps.db.collection("relay_suspicious").stream()]
    assert {f.get("kind") or f.get("flag") for f in flagged} & {"delivery_too_fast", "send_too_fast"}
