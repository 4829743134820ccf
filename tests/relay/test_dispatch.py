"""Dispatch on the emulators with a frozen clock: assignment, the FCM push (to the FCM simulator
through firebase-admin), the phone's fetch and reports through the real ``relay`` function, step
deadlines, reassignment, dead letters, expiry, cancel, push failures and the sweeper's catch-up.
Timers are run by calling their handlers at the time the test chooses (the Cloud Tasks path is
covered end to end in ``test_relay_e2e``)."""
from __future__ import annotations

import pytest

from shared.adapters.fcm import PushUnavailable
from shared.relay import availability, deadlines, dispatch, providers
from tests.relay.dispatch_kit import env, events_of, job_doc  # noqa: F401
from tests.relay.supply_kit import fresh_phone


def sim_doc(env, sim_id):
    return availability.availability_ref(env.deps.db, sim_id).get().to_dict()


def test_happy_path_assign_push_fetch_sent_delivered(env):
    phone = env.handset(("metfone",))
    m = env.send(to=fresh_phone("metfone"))
    assert env.assign(m["id"]) == "assigned"
    [job_id] = phone.new_jobs()
    push = env.fcm.inbox(phone.push_token)[-1]["message"]
    assert push["data"] == {"job_id": job_id}                    # only the job id travels
    assert push["android"]["priority"] == "high"
    doc = env.msg(m["id"])
    assert doc["status"] == "assigned" and doc["job"] == job_id and doc["due"] == "ack"
    assert job_doc(env.deps, job_id)["push"]["status"] == "sent"
    assert env.assign(m["id"]) == "already_assigned"              # a duplicate task

    r = phone.fetch(job_id)
    assert r.status_code == 200, r.get_data(as_text=True)
    job = r.get_json()
    assert (job["message"], job["to"], job["text"], job["status"]) == (m["id"], m["to"], m["text"], "sending")
    assert job["token"].startswith("jt_") and job["send_before"] > job["assigned"]
    assert job["status_km"]
    assert env.msg(m["id"])["status"] == "sending"
    env.advance(5)
    r = phone.report(job_id, "sent", job["token"])
    assert r.status_code == 200 and r.get_json()["status"] == "sent"
    assert sim_doc(env, phone.phone.sims[0])["in_flight_jobs"] == {}      # slot freed at sent
    env.advance(4)
    r = phone.report(job_id, "delivered", job["token"])
    assert r.status_code == 200 and r.get_json()["duplicate"] is False
    got = env.get(m["id"])
    assert got["status"] == "delivered" and got["sent_at"] and got["delivered_at"]
    assert [h["status"] for h in got["status_history"]] == ["queued", "assigned", "sending", "sent", "delivered"]
    assert events_of(env.deps, m["id"]) == ["message.queued", "message.assigned", "message.sending",
                                            "message.sent", "message.delivered"]
    assert env.msg(m["id"])["active"] is False
    listed = env.relay.get("/v1/relay/jobs", headers=phone.phone.headers()).get_json()["data"]
    assert [(j["id"], j["status"]) for j in listed] == [(job_id, "delivered")]
    assert "text" not in listed[0]
    h = phone.phone.headers()
    assert [j["id"] for j in env.relay.get("/v1/relay/jobs?status=delivered", headers=h).get_json()["data"]] == [job_id]
    assert env.relay.get("/v1/relay/jobs?status=sending", headers=h).get_json()["data"] == []
    assert env.relay.get("/v1/relay/jobs?status=lost", headers=h).status_code == 400
    other = env.handset(("cellcard",))
    assert env.relay.get("/v1/relay/jobs", headers=other.phone.headers()).get_json()["data"] == []


def test_a_job_fetched_twice_is_the_same_job_and_both_tokens_work(env):
    phone = env.handset()
    m = env.send()
    env.assign(m["id"])
    [job_id] = phone.new_jobs()
    first, second = phone.fetch(job_id).get_json(), phone.fetch(job_id).get_json()
    assert first["id"] == second["id"] and first["text"] == second["text"]
    assert first["token"] != second["token"] and second["status"] == "sending"
    assert events_of(env.deps, m["id"]).count("message.sending") == 1
    assert phone.report(job_id, "sent", first["token"]).status_code == 200
    assert phone.report(job_id, "delivered", second["token"]).status_code == 200
    again = phone.fetch(job_id).get_json()           # after the reports: no new token
    assert again["status"] == "delivered" and again["token"] is None


def test_ack_timeout_reassigns_to_another_provider_whose_phone_delivers(env):
    silent, honest = env.handset(), env.handset()
    m = env.send()
    env.assign(m["id"])
    first = env.msg(m["id"])["job"]
    owner = silent if first in silent.new_jobs() else honest
    other = honest if owner is silent else silent
    assert env.deadline(m["id"], "ack") == "not_due"
    env.advance(61)
    assert env.deadline(m["id"], "ack") == "requeued"
    doc = env.msg(m["id"])
    assert doc["status"] == "queued" and doc["job"] is None and doc["failures"] == 1
    assert job_doc(env.deps, first)["status"] == "timeout"
    r = owner.fetch(first)                                   # too late: the text is not given
    assert r.status_code == 410 and r.get_json()["error"]["code"] == "job_gone"
    assert env.assign(m["id"]) == "not_due"                  # back-off first
    env.advance(6)
    assert env.assign(m["id"]) == "assigned"
    [second] = other.new_jobs()
    assert job_doc(env.deps, second)["provider_id"] == other.phone.provider_id
    other.deliver(second)
    got = env.get(m["id"])
    assert got["status"] == "delivered" and got["attempts"] == 2
    assert [h["status"] for h in got["status_history"]] == [
        "queued", "assigned", "queued", "assigned", "sending", "sent", "delivered"]


def fetched_then_reassigned(env):
    """Two phones; the first fetches the message and goes quiet past its send deadline; the
    message is reassigned to the second. Returns (message, first, old job, its token, second,
    new job)."""
    a, b = env.handset(), env.handset()
    m = env.send()
    env.assign(m["id"])
    old = env.msg(m["id"])["job"]
    first, second = (a, b) if old in a.new_jobs() else (b, a)
    token = first.fetch(old).get_json()["token"]
    env.advance(121)
    assert env.deadline(m["id"], "send") == "requeued"
    env.advance(6)
    assert env.assign(m["id"]) == "assigned"
    new = env.msg(m["id"])["job"]
    assert new != old and job_doc(env.deps, new)["provider_id"] == second.phone.provider_id
    return m, first, old, token, second, new


def test_send_timeout_then_a_late_sent_from_the_old_phone_wins_and_revokes_the_new_job(env):
    m, first, old, token, second, new = fetched_then_reassigned(env)
    r = first.report(old, "sent", token)                     # it DID send, late
    assert r.status_code == 200 and r.get_json()["status"] == "sent"
    doc = env.msg(m["id"])
    assert doc["status"] == "sent" and doc["sent_by_job"] == old and doc["job"] == old
    assert doc["history"][-1]["reason"] == "late_report"
    assert job_doc(env.deps, new)["status"] == "revoked"
    assert second.fetch(new).status_code == 410              # the new phone never gets the text
    assert job_doc(env.deps, old)["late"] is True
    # its delivery report comes too: the phone that delivered earns, once, the revoked job never
    from shared.relay import earnings
    assert earnings.earning_ref(env.deps.db, old).get().exists is False
    env.advance(3)
    for _ in range(2):
        r = first.report(old, "delivered", token)
        assert r.status_code == 200 and r.get_json()["status"] == "delivered"
    assert env.msg(m["id"])["status"] == "delivered"
    earned = earnings.earning_ref(env.deps.db, old).get().to_dict()
    assert earned["provider_id"] == first.phone.provider_id and earned["amount"] == 500_000
    assert earnings.earning_ref(env.deps.db, new).get().exists is False
    mine = first.client.get("/v1/relay/earnings", headers=first.phone.headers()).get_json()["data"]
    assert [e["job"] for e in mine] == [old]


def test_two_phones_sending_one_message_is_recorded_as_a_duplicate(env):
    m, first, old, old_token, second, new = fetched_then_reassigned(env)
    new_token = second.fetch(new).get_json()["token"]        # the new phone has the text too
    assert first.report(old, "sent", old_token).status_code == 200
    assert job_doc(env.deps, new)["status"] == "revoked"
    r = second.report(new, "sent", new_token)                # it sent before it knew
    assert r.status_code == 200
    doc = env.msg(m["id"])
    assert doc["status"] == "sent" and doc["sent_by_job"] == old and doc["duplicate_sends"] == 1
    assert events_of(env.deps, m["id"]).count("message.sent") == 1


def test_attempts_run_out_into_the_dead_letter(env):
    env.handset(), env.handset(), env.handset()
    m = env.send()                                   # normal priority: 3 attempts
    for n in range(3):
        env.advance(60)
        assert env.assign(m["id"]) == "assigned", n
        env.advance(61)
        env.deadline(m["id"], "ack")
    doc = env.msg(m["id"])
    assert doc["status"] == "failed" and doc["failure_code"] == "attempts_exhausted"
    assert "ack_timeout" in doc["failure_message"] and doc["active"] is False
    assert len(set(doc["excluded_sims"])) == 3
    assert events_of(env.deps, m["id"])[-1] == "message.failed"
    assert env.assign(m["id"]) == "already_failed"


def test_no_sim_free_keeps_the_message_queued_until_it_expires(env):
    m = env.send(to=fresh_phone("cellcard"), expires_at=int(env.clock.now().timestamp()) + 120)
    assert env.assign(m["id"]) == "no_sim"
    doc = env.msg(m["id"])
    assert doc["status"] == "queued" and doc["dispatch_tries"] == 1
    assert doc["due_at"] > env.clock.now()
    assert deadlines.on_deadline(env.deps, m["id"], "expiry") == "not_due"
    env.advance(121)
    assert deadlines.on_deadline(env.deps, m["id"], "expiry") == "expired"
    got = env.get(m["id"])
    assert got["status"] == "expired" and got["failure_code"] == "expired"
    assert env.assign(m["id"]) == "already_expired"
    assert events_of(env.deps, m["id"]) == ["message.queued", "message.expired"]


def test_expiry_of_an_assigned_job_releases_the_sim_and_revokes_the_job(env):
    phone = env.handset()
    m = env.send(expires_at=int(env.clock.now().timestamp()) + 70)
    env.assign(m["id"])
    [job_id] = phone.new_jobs()
    env.advance(71)
    assert deadlines.on_deadline(env.deps, m["id"], "expiry") == "expired"
    assert job_doc(env.deps, job_id)["status"] == "revoked"
    assert sim_doc(env, phone.phone.sims[0])["in_flight_jobs"] == {}
    assert phone.fetch(job_id).status_code == 410


def test_a_sending_message_past_expiry_expires_at_its_send_deadline(env):
    phone = env.handset()
    m = env.send(expires_at=int(env.clock.now().timestamp()) + 100)
    env.assign(m["id"])
    [job_id] = phone.new_jobs()
    phone.fetch(job_id)
    env.advance(101)
    assert deadlines.on_deadline(env.deps, m["id"], "expiry") == "already_sending"
    env.advance(30)
    assert env.deadline(m["id"], "send") == "expired"
    assert env.msg(m["id"])["status"] == "expired"


def test_report_deadline_leaves_sent_final_and_a_late_delivery_still_counts(env):
    phone = env.handset()
    m = env.send()
    env.assign(m["id"])
    [job_id] = phone.new_jobs()
    token = phone.fetch(job_id).get_json()["token"]
    env.advance(3)
    phone.report(job_id, "sent", token)
    env.advance(601)
    assert env.deadline(m["id"], "report") == "sent_unconfirmed"
    doc = env.msg(m["id"])
    assert doc["status"] == "sent" and doc["active"] is False and doc["due"] is None
    assert env.assign(m["id"]) == "already_sent"          # never sent again
    assert phone.report(job_id, "delivered", token).status_code == 200
    assert env.msg(m["id"])["status"] == "delivered"


def test_cancel_an_assigned_message_releases_its_sim(env):
    phone = env.handset()
    m = env.send()
    env.assign(m["id"])
    [job_id] = phone.new_jobs()
    r = env.messages.post(f"/v1/messages/{m['id']}/cancel", headers=env.client.headers())
    assert r.status_code == 200 and r.get_json()["status"] == "canceled"
    assert job_doc(env.deps, job_id)["status"] == "canceled"
    assert sim_doc(env, phone.phone.sims[0])["in_flight_jobs"] == {}
    assert phone.fetch(job_id).status_code == 410
    token_fetched = env.send()
    env.assign(token_fetched["id"])
    [job2] = phone.new_jobs()
    phone.fetch(job2)
    r = env.messages.post(f"/v1/messages/{token_fetched['id']}/cancel", headers=env.client.headers())
    assert r.status_code == 409                           # the phone has the text


def test_a_dead_push_token_is_dropped_and_the_message_goes_to_another_phone_free_of_charge(env):
    dead = env.handset()
    providers.device_ref(env.deps.db, dead.phone.device_id).update({"push_token": "unregistered-x"})
    m = env.send()
    assert env.assign(m["id"]) == "assigned"          # to the only SIM; its push bounces
    doc = env.msg(m["id"])
    assert doc["status"] == "queued" and doc["failures"] == 0 and doc["due_at"] == env.clock.now()
    assert job_doc(env.deps, doc["jobs"][0])["status"] == "revoked"
    device = providers.device_ref(env.deps.db, dead.phone.device_id).get().to_dict()
    assert device["push_token_status"] == "dropped" and device["push_token"] is None
    assert sim_doc(env, dead.phone.sims[0])["eligible"] is False
    alive = env.handset()
    assert env.assign(m["id"]) == "assigned"
    doc = env.msg(m["id"])
    assert doc["status"] == "assigned" and alive.new_jobs() == [doc["job"]]
    assert job_doc(env.deps, doc["job"])["provider_id"] == alive.phone.provider_id


class FlakyPush:
    """FCM answering UNAVAILABLE (after firebase-admin's own retries) ``failures`` times."""
    def __init__(self, inner, failures):
        self.inner, self.failures, self.calls = inner, failures, 0

    def send(self, token, data, **kw):
        self.calls += 1
        if self.calls <= self.failures:
            raise PushUnavailable("FCM unavailable", token=token)
        return self.inner.send(token, data, **kw)


def test_an_unavailable_fcm_is_retried_and_the_ack_deadline_catches_the_rest(env):
    phone = env.handset()
    flaky = FlakyPush(env.deps.extras["notify.push"], failures=1)
    env.deps.extras["notify.push"] = flaky
    m = env.send()
    env.assign(m["id"])
    job_id = env.msg(m["id"])["job"]
    assert job_doc(env.deps, job_id)["push"]["status"] == "retrying"
    assert phone.new_jobs() == []
    assert dispatch.retry_push(env.deps, job_id, 3) == "stale"     # not the next attempt
    assert dispatch.retry_push(env.deps, job_id, 2) == "pushed"
    assert phone.new_jobs() == [job_id]
    assert dispatch.retry_push(env.deps, job_id, 2) == "stale"     # a duplicate task
    flaky.failures, flaky.calls = 10, 0
    m2 = env.send()
    env.assign(m2["id"])
    j2 = env.msg(m2["id"])["job"]
    for n in (2, 3, 4):                               # push_retry_seconds has 3 entries
        assert dispatch.retry_push(env.deps, j2, n) == ("push_retry" if n < 4 else "push_failed")
    assert job_doc(env.deps, j2)["push"]["status"] == "failed"
    env.advance(61)
    assert env.deadline(m2["id"], "ack") == "requeued"


def test_scheduled_messages_wait_for_send_at(env):
    env.handset()
    at = int(env.clock.now().timestamp()) + 300
    m = env.send(send_at=at)
    assert m["send_at"] == at and m["expires_at"] == at + 86400
    assert env.assign(m["id"]) == "not_due"
    env.advance(300)
    assert env.assign(m["id"]) == "assigned"


def test_the_sweeper_advances_messages_whose_timer_was_lost(env):
    from tests.relay.dispatch_kit import use_settings
    use_settings(env.deps, sweep_grace_seconds=0)
    phone = env.handset()
    m = env.send()
    assert deadlines.sweep(env.deps) == {"assigned": 1}           # its dispatch task "was lost"
    [job_id] = phone.new_jobs()
    env.advance(90)
    assert deadlines.sweep(env.deps) == {"requeued": 1}           # the lost ack deadline
    assert job_doc(env.deps, job_id)["status"] == "timeout"
    env.advance(10)
    assert deadlines.sweep(env.deps) == {"no_sim": 1}             # its only SIM is excluded
    assert deadlines.sweep(env.deps) == {}                         # nothing overdue now
    assert env.msg(m["id"])["status"] == "queued"


def test_a_freed_slot_wakes_the_waiting_message_of_the_highest_priority(env):
    phone = env.handset()                                 # one SIM, two in-flight slots
    busy = [env.send() for _ in range(2)]
    for m in busy:
        assert env.assign(m["id"]) == "assigned"
    bulk = env.send(priority="bulk")
    env.advance(1)
    high = env.send(priority="high")
    assert env.assign(bulk["id"]) == env.assign(high["id"]) == "no_sim"
    assert env.msg(high["id"])["waiting"] is True and env.msg(high["id"])["due_at"] > env.clock.now()
    job_id = env.msg(busy[0]["id"])["job"]
    token = phone.fetch(job_id).get_json()["token"]
    env.advance(2)
    assert phone.report(job_id, "sent", token).status_code == 200      # frees a slot
    assert env.msg(high["id"]).get("woken_at") == env.clock.now()       # high first, though later
    assert env.msg(bulk["id"]).get("woken_at") is None
    assert env.assign(high["id"]) == "not_due"                          # not without the wake
    assert dispatch.assign(env.deps, high["id"], woken=True) == "assigned"
    assert env.msg(high["id"])["waiting"] is False
    env.advance(3)
    r = env.messages.post(f"/v1/messages/{bulk['id']}/cancel", headers=env.client.headers())
    assert r.get_json()["status"] == "canceled" and env.msg(bulk["id"])["waiting"] is False


def test_the_scheduled_sweeper_runs_the_dispatch_pass(env, sweeper_client, service_headers):
    from tests.relay.dispatch_kit import use_settings
    use_settings(env.deps, sweep_grace_seconds=0)
    env.handset()
    m = env.send()
    r = sweeper_client.post("/", headers=service_headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["hooks"]["shared.relay.dispatch_routes.overdue_messages"] == 1
    assert env.msg(m["id"])["status"] == "assigned"
