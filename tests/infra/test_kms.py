"""Secrets at rest in Terraform (ADR 0004): one KMS key per environment, used only by the functions
whose manifest entry asks for it, through a binding on that key (never the project), and
those functions are told the key's name.

The role split and the bindings are evaluated twice: by a Python twin that reads the filter out
of the HCL, and, when a terraform binary is on PATH, by Terraform itself on the real expressions
(no provider is needed to evaluate locals, so this runs offline).
"""
from __future__ import annotations

import base64
import functools
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from croniter import croniter

from tests.infra.test_terraform import (FUNCTIONS, MANIFEST, MODULES, ROOT, ROOT_MODULE, TF, first, load_dir,
                                        root_call, text, unquote)

KMS_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
KEY_ROLES = {KMS_ROLE, "roles/cloudkms.cryptoKeyEncrypter", "roles/cloudkms.cryptoKeyDecrypter",
             "roles/cloudkms.viewer"}
KMS_MODULE = load_dir(MODULES / "kms_key")


def kms_prefix() -> str:
    """The prefix modules/payloom uses to split key roles off project roles, read from the HCL."""
    functions = text(ROOT_MODULE["locals"]["functions"])
    project = re.search(r'roles = \[for r in try\(tolist\(f\.roles\), \[\]\) : r if !startswith\(r, "([^"]+)"\)\]',
                        functions)
    key = re.search(r'kms_roles = \[for r in try\(tolist\(f\.roles\), \[\]\) : r if startswith\(r, "([^"]+)"\)\]',
                    functions)
    assert project and key, "local.functions must split roles into roles and kms_roles"
    assert project.group(1) == key.group(1), "the two filters must be complements"
    return key.group(1)


def twin() -> dict[str, dict[str, list[str]]]:
    """Per function: the project roles and key roles Terraform derives from the manifest."""
    prefix = kms_prefix()
    return {f["name"]: {"roles": [r for r in f.get("roles", []) if not r.startswith(prefix)],
                        "kms_roles": [r for r in f.get("roles", []) if r.startswith(prefix)]}
            for f in FUNCTIONS}


def asks_for_kms(f) -> bool:
    return any(r.startswith("roles/cloudkms.") for r in f.get("roles", []))


# --- the key -------------------------------------------------------------------------------

def test_the_key_is_symmetric_rotated_within_90_days_and_cannot_be_destroyed():
    res = KMS_MODULE["resource"]
    ring, key = res[("google_kms_key_ring", "this")], res[("google_kms_crypto_key", "this")]
    assert ring["location"] == "${var.location}"
    assert key["key_ring"] == "${google_kms_key_ring.this.id}"
    assert unquote(key["purpose"]) == "ENCRYPT_DECRYPT"
    assert unquote(first(key["version_template"])["algorithm"]) == "GOOGLE_SYMMETRIC_ENCRYPTION"
    assert first(key["lifecycle"])["prevent_destroy"] is True
    assert key["rotation_period"] == "${var.rotation_period}"
    period = unquote(KMS_MODULE["variable"]["rotation_period"]["default"])
    assert re.fullmatch(r"\d+s", period) and 86400 <= int(period[:-1]) <= 90 * 86400
    assert "<= 7776000" in first(KMS_MODULE["variable"]["rotation_period"]["validation"])["condition"]
    # one key per environment: both environments call the root module, which calls kms_key once
    call = root_call("kms_key")
    assert unquote(call["source"]) == "../kms_key" and "for_each" not in call and "count" not in call
    assert call["location"] == "${local.region}"
    assert '"cloudkms.googleapis.com"' in text(ROOT_MODULE["locals"]["apis"])


def test_the_key_name_is_what_the_cloud_kms_adapter_accepts():
    from shared.adapters.kms import CloudKms

    outputs = (MODULES / "kms_key" / "outputs.tf").read_text()
    assert re.search(r'output "id" \{[^}]*value\s*=\s*google_kms_crypto_key\.this\.id', outputs)
    ring = unquote(KMS_MODULE["variable"]["key_ring_name"]["default"])
    name = unquote(KMS_MODULE["variable"]["key_name"]["default"])
    # google_kms_crypto_key.id is projects/P/locations/L/keyRings/R/cryptoKeys/K
    key_id = f"projects/{MANIFEST['project']}-prod/locations/{MANIFEST['region']}/keyRings/{ring}/cryptoKeys/{name}"
    assert CloudKms(key_id, client=object()).key_name == key_id


# --- who may use it, and how ---------------------------------------------------------------

def test_key_roles_are_bound_on_the_key_only():
    binding = KMS_MODULE["resource"][("google_kms_crypto_key_iam_member", "this")]
    assert binding["crypto_key_id"] == "${google_kms_crypto_key.this.id}"
    assert binding["for_each"] == "${var.bindings}"
    allowed = first(KMS_MODULE["variable"]["bindings"]["validation"])["condition"]
    assert all(f'"{role}"' in allowed for role in KEY_ROLES) and "admin" not in allowed.lower()

    bindings = text(root_call("kms_key")["bindings"])
    assert "for name, f in local.functions" in bindings and "for role in f.kms_roles" in bindings
    assert '"${name}/${role}" =>' in bindings, "keys must be known at plan time (names, not emails)"
    assert "member = module.function_sa[name].member" in bindings
    # nothing else grants KMS: no ring- or project-level KMS binding anywhere
    for path in TF.rglob("*.tf"):
        body = path.read_text()
        assert not re.search(r'resource "google_kms_key_ring_iam_', body), path
        assert not re.search(r'role\s*=\s*"roles/cloudkms\.', body), f"{path}: a literal KMS role binding"
    assert ("google_kms_crypto_key_iam_policy", "this") not in KMS_MODULE["resource"]


def test_no_function_gets_a_project_level_kms_role():
    assert root_call("function_sa")["project_roles"] == "${each.value.roles}"
    assert kms_prefix() == "roles/cloudkms."
    for name, roles in twin().items():
        assert not [r for r in roles["roles"] if "cloudkms" in r], f"{name} would get KMS on the project"
    # and the service account module refuses one outright, should the split ever be removed
    validation = first(load_dir(MODULES / "service_account")["variable"]["project_roles"]["validation"])["condition"]
    assert '!startswith(role, "roles/cloudkms.")' in validation


def test_every_function_that_asks_for_kms_gets_the_binding_and_the_env_var():
    kms_functions = {f["name"] for f in FUNCTIONS if asks_for_kms(f)}
    assert {"auth", "accounts", "notify_events", "notify_tasks", "secrets_rewrap"} <= kms_functions
    for f in FUNCTIONS:
        for role in twin()[f["name"]]["kms_roles"]:
            assert role in KEY_ROLES, f"{f['name']}: {role} cannot be granted on the key"
    expected = {f"{n}/{r}" for n, t in twin().items() for r in t["kms_roles"]}
    assert {k.split("/", 1)[0] for k in expected} == kms_functions

    assert 'length(f.kms_roles) > 0' in text(ROOT_MODULE["locals"]["kms_functions"])
    env = text(root_call("function")["env"])
    assert re.search(r"contains\(keys\(local\.kms_functions\), each\.key\) \? "
                     r"\{PAYLOOM_KMS_KEY_NAME = module\.kms_key\.id\} : \{\}", env), env
    assert "module.kms_key" in text(root_call("function")["depends_on"]), \
        "a function must not start before it may use the key"


def _terraform_eval(tmp_path) -> dict:
    """Evaluate the real HCL expressions with Terraform (locals need no provider)."""
    loc = ROOT_MODULE["locals"]

    def expr(value: str) -> str:
        return value[2:-1] if value.startswith("${") and value.endswith("}") else value

    functions = expr(loc["functions"]).replace("var.manifest", "local.manifest") \
        .replace("var.default_max_instances", "10")
    bindings = expr(root_call("kms_key")["bindings"]) \
        .replace("module.function_sa[name].member", '"serviceAccount:fn-${name}"')
    env = expr(root_call("function")["env"]).replace("local.common_env", "{}") \
        .replace("each.value", "f").replace("each.key", "name").replace("module.kms_key.id", '"KEY"')
    manifest = (ROOT / "functions" / "manifest.yaml").as_posix()
    (tmp_path / "main.tf").write_text(f"""
locals {{
  manifest      = yamldecode(file("{manifest}"))
  functions     = {functions}
  kms_functions = {expr(loc["kms_functions"])}
  bindings      = {bindings}
  env           = {{ for name, f in local.functions : name => {env} }}
}}
output "roles" {{ value = {{ for n, f in local.functions : n => f.roles }} }}
output "bindings" {{ value = local.bindings }}
output "env" {{ value = local.env }}
""")
    run = lambda *args: subprocess.run(["terraform", *args], cwd=tmp_path, capture_output=True, text=True,  # noqa: E731
                                       timeout=120, env={"PATH": "/usr/local/bin:/usr/bin:/bin",
                                                         "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
                                                         "HOME": str(tmp_path)})
    init = run("init", "-backend=false", "-input=false", "-no-color")
    assert init.returncode == 0, init.stderr
    applied = run("apply", "-auto-approve", "-input=false", "-no-color")
    assert applied.returncode == 0, applied.stderr
    out = run("output", "-json")
    return {k: v["value"] for k, v in json.loads(out.stdout).items()}


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary on PATH")
def test_terraform_itself_derives_the_bindings_env_and_project_roles(tmp_path):
    out = _terraform_eval(tmp_path)
    t = twin()
    assert out["roles"] == {n: r["roles"] for n, r in t.items()}
    assert not [r for roles in out["roles"].values() for r in roles if r.startswith("roles/cloudkms.")]
    assert out["bindings"] == {f"{n}/{r}": {"role": r, "member": f"serviceAccount:fn-{n}"}
                               for n, v in t.items() for r in v["kms_roles"]}
    for f in FUNCTIONS:
        has_key = out["env"][f["name"]].get("PAYLOOM_KMS_KEY_NAME") == "KEY"
        assert has_key == asks_for_kms(f), f["name"]
        assert out["env"][f["name"]]["PAYLOOM_FUNCTION_NAME"] == f["name"]


# --- the code agrees with the manifest ----------------------------------------------------

FCM_ROLE = "roles/firebasecloudmessaging.admin"
PROBED = ("shared.platform.secrets_at_rest",   # seals or opens secrets: the KMS key
          "shared.notify.senders", "shared.relay.dispatch")   # send push messages: FCM
PUSH_SENDERS = PROBED[1:]
# Functions that load relay dispatch but only ever enqueue its Cloud Tasks (never call FCM):
NEVER_PUSH = {"messages": "a new or canceled message schedules relay_tasks' dispatch",
              "relay": "a phone's report wakes a queued message through relay_tasks"}


@functools.cache
def loaded_modules() -> dict[str, frozenset[str]]:
    """Per function: which of ``PROBED`` its ``main.py`` loads (one subprocess each, once)."""
    probe = ("import runpy, sys; runpy.run_path(sys.argv[1]); "
             f"print(','.join(m for m in {PROBED!r} if m in sys.modules))")

    def run(name: str) -> frozenset[str]:
        r = subprocess.run([sys.executable, "-c", probe, str(ROOT / "functions" / name / "main.py")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PAYLOOM_ENV": "test"})
        assert r.returncode == 0, r.stderr[-2000:]
        return frozenset(filter(None, r.stdout.strip().splitlines()[-1:][0].split(",")
                                if r.stdout.strip() else []))

    names = [f["name"] for f in FUNCTIONS]
    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(zip(names, pool.map(run, names)))


def test_functions_that_load_the_envelope_ask_for_the_key_and_no_others():
    """Least privilege both ways: sealing without the role fails in production; the role without
    sealing is a grant nobody needs."""
    loaded = loaded_modules()
    for f in FUNCTIONS:
        seals = "shared.platform.secrets_at_rest" in loaded[f["name"]]
        has_role = KMS_ROLE in f.get("roles", [])
        assert has_role == seals, (
            f"{f['name']}: loads secrets_at_rest={seals} but asks for {KMS_ROLE}={has_role}")


def test_functions_that_send_push_messages_may_call_fcm_and_no_others():
    """FCM v1 answers 403 to a service account without the messaging role: a function that can
    send a push (notify's senders, relay dispatch) must ask for it, and nothing else gets it."""
    loaded = loaded_modules()
    senders = {name for name, mods in loaded.items() if mods & set(PUSH_SENDERS)} - NEVER_PUSH.keys()
    assert {"notify_events", "notify_tasks", "relay_tasks", "relay_sweeper"} <= senders
    assert NEVER_PUSH.keys() <= loaded.keys()
    for f in FUNCTIONS:
        has_role = FCM_ROLE in f.get("roles", [])
        assert has_role == (f["name"] in senders), (
            f"{f['name']}: sends push={f['name'] in senders} but asks for {FCM_ROLE}={has_role}")


def test_the_rewrap_job_is_scheduled_and_may_read_the_primary_version():
    [job] = [f for f in FUNCTIONS if f["name"] == "secrets_rewrap"]
    assert job["trigger"] == "schedule" and croniter.is_valid(job["cron"])
    it = croniter(job["cron"], datetime(2025, 1, 1, tzinfo=timezone.utc))
    runs = [it.get_next(datetime) for _ in range(3)]
    assert all((b - a).days <= 7 for a, b in zip(runs, runs[1:])), "at least weekly"
    assert (runs[1] - runs[0]).total_seconds() >= 86400, "not more often than daily (it scans every record)"
    assert job["timeout"] <= 1800, "Cloud Scheduler's attempt deadline is at most 30 minutes"
    # CloudKms.primary_version() calls GetCryptoKey: cloudkms.cryptoKeys.get is in viewer, not in
    # the encrypter/decrypter role; the binding is on the key like the other.
    assert {KMS_ROLE, "roles/cloudkms.viewer"} <= set(job["roles"])
    assert [f["name"] for f in FUNCTIONS if "roles/cloudkms.viewer" in f.get("roles", [])] == ["secrets_rewrap"]
    assert "shared.platform.rewrap_job import api" in (ROOT / "functions" / "secrets_rewrap" / "main.py").read_text()


def test_cloud_scheduler_sends_the_body_the_job_routes_accept():
    """The routes take no body or a strict one; the local scheduler posts b"{}" and so must the
    real one (a {"job": ...} body was a 400 on every scheduled function)."""
    job = load_dir(MODULES / "scheduler_job")["resource"][("google_cloud_scheduler_job", "this")]
    body = first(job["http_target"])["body"]
    assert body == '${base64encode("{}")}'
    assert base64.b64decode(base64.b64encode(b"{}")) == b"{}"
    assert 'data=b"{}"' in (ROOT / "infra" / "local" / "scheduler.py").read_text()
