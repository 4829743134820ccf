"""Static checks of terraform/ (no terraform binary here): every file parses with python-hcl2,
the modules hold the resources Payloom needs, and the wiring covers everything the manifest
lists. Removing a resource, a module call or a for_each makes one of these fail."""

import json
import re
from pathlib import Path

import hcl2
import pytest
import yaml
from croniter import croniter

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
MODULES = TF / "modules"
ENVIRONMENTS = ("staging", "prod")
MANIFEST = yaml.safe_load((ROOT / "functions" / "manifest.yaml").read_text())
FUNCTIONS = MANIFEST["functions"]


def by_trigger(trigger):
    return [f for f in FUNCTIONS if f["trigger"] == trigger]


# --- helpers over python-hcl2's output --------------------------------------------------


def unquote(value):
    """python-hcl2 keeps string literals quoted ('"POST"') and labels quoted; drop that."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse(path: Path) -> dict:
    with path.open() as fh:
        return hcl2.load(fh)


def load_dir(folder: Path) -> dict:
    """Merge every .tf of one module: {'resource': {(type, name): body}, 'module': {...}, ...}."""
    merged = {"resource": {}, "module": {}, "locals": {}, "variable": {}, "data": {}, "terraform": []}
    for path in sorted(folder.glob("*.tf")):
        doc = parse(path)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for rname, body in named.items():
                    merged["resource"][(unquote(rtype), unquote(rname))] = body
        for block in doc.get("data", []):
            for dtype, named in block.items():
                for dname, body in named.items():
                    merged["data"][(unquote(dtype), unquote(dname))] = body
        for block in doc.get("module", []):
            for mname, body in block.items():
                merged["module"][unquote(mname)] = body
        for block in doc.get("variable", []):
            for vname, body in block.items():
                merged["variable"][unquote(vname)] = body
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        merged["terraform"].extend(doc.get("terraform", []))
    return merged


def text(value) -> str:
    """Any parsed value as one searchable string."""
    return value if isinstance(value, str) else json.dumps(value)


def resource_types(folder: Path) -> set[str]:
    return {rtype for rtype, _ in load_dir(folder)["resource"]}


ROOT_MODULE = load_dir(MODULES / "payloom")


def root_call(name: str) -> dict:
    assert name in ROOT_MODULE["module"], f"modules/payloom does not call module {name!r}"
    return ROOT_MODULE["module"][name]


def first(block_list):
    """A nested block (a list of one dict in python-hcl2's output)."""
    assert isinstance(block_list, list) and block_list, f"expected a block, got {block_list!r}"
    return block_list[0]


# --- everything parses --------------------------------------------------------------------

TF_FILES = sorted(TF.rglob("*.tf"))


def test_there_is_terraform():
    assert len(TF_FILES) >= 20


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TF)))
def test_every_tf_file_parses(path):
    assert isinstance(parse(path), dict)


# --- modules hold the expected resources --------------------------------------------------

EXPECTED_RESOURCES = {
    "function": {"google_cloudfunctions2_function", "google_cloud_run_v2_service_iam_member"},
    "service_account": {"google_service_account", "google_project_iam_member", "google_service_account_iam_member"},
    "queue": {"google_cloud_tasks_queue"},
    "topic": {"google_pubsub_topic", "google_pubsub_subscription", "google_pubsub_topic_iam_member"},
    "scheduler_job": {"google_cloud_scheduler_job"},
    "secret": {"google_secret_manager_secret", "google_secret_manager_secret_iam_member"},
    "kms_key": {"google_kms_key_ring", "google_kms_crypto_key", "google_kms_crypto_key_iam_member"},
    "api_gateway": {"google_api_gateway_api", "google_api_gateway_api_config", "google_api_gateway_gateway"},
    "firestore": {
        "google_firestore_database",
        "google_firestore_index",
        "google_firestore_field",
        "google_firebaserules_ruleset",
        "google_firebaserules_release",
    },
}


@pytest.mark.parametrize("module", sorted(EXPECTED_RESOURCES))
def test_module_has_its_resources(module):
    missing = EXPECTED_RESOURCES[module] - resource_types(MODULES / module)
    assert not missing, f"modules/{module} lacks {sorted(missing)}"


# --- the root module iterates the manifest ------------------------------------------------


def test_root_locals_come_from_the_manifest():
    loc = {k: text(v) for k, v in ROOT_MODULE["locals"].items()}
    assert "for f in var.manifest.functions : f.name =>" in loc["functions"]
    for trigger in ("http", "pubsub", "task", "schedule"):
        assert f'f.trigger == "{trigger}"' in loc[f"{trigger}_functions"]
    for section in ("topics", "queues", "secrets"):
        assert f"var.manifest.{section}" in loc[section]


@pytest.mark.parametrize(
    "call, source, for_each",
    [
        ("function", "function", "local.functions"),
        ("function_sa", "service_account", "local.functions"),
        ("topic", "topic", "local.topics"),
        ("queue", "queue", "local.queues"),
        ("secret", "secret", "local.secrets"),
        ("scheduler_job", "scheduler_job", "local.schedule_functions"),
    ],
)
def test_root_module_for_each_over_manifest(call, source, for_each):
    body = root_call(call)
    assert unquote(body["source"]) == f"../{source}"
    assert body["for_each"] == "${" + for_each + "}"


def test_every_function_has_a_source_zip():
    obj = ROOT_MODULE["resource"][("google_storage_bucket_object", "source")]
    assert obj["for_each"] == "${local.functions}"
    assert "${var.build_dir}/${each.key}.zip" in text(obj["source"])
    assert "filemd5" in text(obj["name"]), "object name must change when the zip changes"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_reads_the_manifest_and_calls_the_root_module(env):
    folder = TF / "environments" / env
    for name in ("main.tf", "variables.tf", "backend.tf", "providers.tf"):
        assert (folder / name).is_file(), f"environments/{env}/{name} missing"
    tf = load_dir(folder)
    assert 'yamldecode(file("${path.module}/../../../functions/manifest.yaml"))' in tf["locals"]["manifest"]
    call = tf["module"]["payloom"]
    assert unquote(call["source"]) == "../../modules/payloom"
    assert call["manifest"] == "${local.manifest}"
    assert unquote(call["environment"]) == env

    blocks = tf["terraform"]
    backends = [b["backend"] for b in blocks if "backend" in b]
    assert backends and "gcs" in {unquote(k) for k in backends[0][0]}
    providers = {}
    for b in blocks:
        for req in b.get("required_providers", []):
            providers.update(req)
    for name in ("google", "google-beta"):
        assert unquote(providers[name]["source"]) == f"hashicorp/{name}"
        assert re.match(r"^(~>|=)?\s*\d+\.\d+", unquote(providers[name]["version"])), f"{name} is not pinned"


# --- per-kind wiring ----------------------------------------------------------------------


def test_every_function_gets_its_own_service_account():
    call = root_call("function_sa")
    assert unquote(call["account_id"]) == "fn-${each.value.id}"
    assert call["project_roles"] == "${each.value.roles}"
    assert root_call("function")["service_account_email"] == "${module.function_sa[each.key].email}"

    ids = ["fn-" + f["name"].replace("_", "-") for f in FUNCTIONS]
    assert len(set(ids)) == len(ids), "two functions would share a service account"
    for account_id in ids:
        assert re.match(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", account_id), f"invalid account id {account_id}"
    basic = {"roles/owner", "roles/editor", "roles/viewer"}
    for f in FUNCTIONS:
        assert not basic & set(f.get("roles", [])), f"{f['name']} asks for a basic role"


def test_function_module_shape():
    fn = load_dir(MODULES / "function")["resource"][("google_cloudfunctions2_function", "this")]
    build = first(fn["build_config"])
    assert unquote(build["runtime"]) == "python311"
    storage = first(first(build["source"])["storage_source"])
    assert storage["bucket"] == "${var.source_bucket}" and storage["object"] == "${var.source_object}"
    service = first(fn["service_config"])
    assert service["service_account_email"] == "${var.service_account_email}"
    assert service["ingress_settings"] == "${local.ingress}"
    assert service["max_instance_count"] == "${var.max_instances}"
    assert service["max_instance_request_concurrency"] == "${var.concurrency}"
    assert service["environment_variables"] == "${var.env}"
    assert "secret_environment_variables" in text(service)
    ingress = load_dir(MODULES / "function")["locals"]["ingress"]
    assert '"ALLOW_INTERNAL_ONLY"' in ingress and 'var.trigger == "http"' in ingress

    invoker = load_dir(MODULES / "function")["resource"][("google_cloud_run_v2_service_iam_member", "invoker")]
    assert unquote(invoker["role"]) == "roles/run.invoker"


def test_each_caller_kind_has_an_invoker_that_can_call_only_its_functions():
    invoker_of = {k: unquote(v) for k, v in ROOT_MODULE["locals"]["invoker_of"].items()}
    assert set(invoker_of) >= {f["trigger"] for f in FUNCTIONS}
    assert set(invoker_of.values()) == set(ROOT_MODULE["locals"]["invokers"])
    # The app accepts one service identity on task and schedule functions, and the gateway
    # and Pub/Sub must not share it.
    assert invoker_of["task"] == invoker_of["schedule"]
    assert len({invoker_of["http"], invoker_of["task"], invoker_of["pubsub"]}) == 3
    assert root_call("invoker")["for_each"] == "${local.invokers}"
    assert "project_roles" not in root_call("invoker"), "invokers hold no project role"
    assert root_call("function")["invoker_members"] == [
        "${module.invoker[local.invoker_of[each.value.trigger]].member}"
    ]
    assert 'module.invoker["jobs"].email' in text(ROOT_MODULE["locals"]["common_env"])


def test_every_schedule_function_gets_a_scheduler_job_with_oidc():
    schedules = by_trigger("schedule")
    for f in schedules:
        assert croniter.is_valid(f["cron"]), f"{f['name']}: bad cron {f['cron']!r}"

    call = root_call("scheduler_job")
    assert call["schedule"] == "${each.value.cron}"
    assert call["uri"] == "${local.function_urls[each.key]}"
    assert call["service_account_email"] == '${module.invoker["jobs"].email}'

    job = load_dir(MODULES / "scheduler_job")["resource"][("google_cloud_scheduler_job", "this")]
    assert unquote(job["time_zone"]) == "Etc/UTC"
    target = first(job["http_target"])
    assert target["uri"] == "${var.uri}"
    oidc = first(target["oidc_token"])
    assert oidc["service_account_email"] == "${var.service_account_email}"
    assert oidc["audience"] == "${var.uri}"


def test_every_queue_and_task_function_is_wired():
    queues = MANIFEST.get("queues") or {}
    for name, q in queues.items():
        assert q["max_dispatches_per_second"] > 0 and q["max_concurrent_dispatches"] > 0, name
    for f in by_trigger("task"):
        assert f["queue"] in queues, f"{f['name']}: unknown queue {f['queue']}"

    call = root_call("queue")
    assert call["max_dispatches_per_second"] == "${each.value.max_dispatches_per_second}"
    assert call["max_concurrent_dispatches"] == "${each.value.max_concurrent_dispatches}"
    queue = load_dir(MODULES / "queue")["resource"][("google_cloud_tasks_queue", "this")]
    assert first(queue["rate_limits"])["max_dispatches_per_second"] == "${var.max_dispatches_per_second}"
    assert "retry_config" in queue


def test_every_topic_has_a_dead_letter_topic_and_a_subscription_per_consumer():
    topics = MANIFEST.get("topics") or {}
    for f in by_trigger("pubsub"):
        assert f["topic"] in topics, f"{f['name']}: unknown topic {f['topic']}"

    consumers = text(root_call("topic")["consumers"])
    assert "for name, f in local.pubsub_functions" in consumers and "if f.topic == each.key" in consumers
    assert "endpoint = local.function_urls[name]" in consumers

    resources = load_dir(MODULES / "topic")["resource"]
    assert ("google_pubsub_topic", "this") in resources
    assert ("google_pubsub_topic", "dead_letter") in resources
    push = resources[("google_pubsub_subscription", "push")]
    assert push["for_each"] == "${var.consumers}"
    assert first(push["dead_letter_policy"])["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert "oidc_token" in first(push["push_config"])


def test_every_secret_is_declared_and_only_its_users_can_read_it():
    secrets = MANIFEST.get("secrets") or {}
    for f in FUNCTIONS:
        for s in f.get("secrets") or []:
            assert s in secrets, f"{f['name']}: unknown secret {s}"

    assert "if contains(f.secrets, each.key)" in text(root_call("secret")["accessors"])
    secret = load_dir(MODULES / "secret")["resource"][("google_secret_manager_secret", "this")]
    assert "auto" in first(secret["replication"])
    assert ("google_secret_manager_secret_version", "this") not in load_dir(MODULES / "secret")["resource"]
    for folder in TF.rglob("*.tf"):
        assert "secret_data" not in folder.read_text(), f"{folder}: no secret values in Terraform"


# --- API Gateway paths --------------------------------------------------------------------


def render_gateway_paths(http_paths):
    """Python twin of modules/api_gateway's locals.paths: read its key templates, fill them in."""
    paths_expr = load_dir(MODULES / "api_gateway")["locals"]["paths"]
    templates = re.findall(r'"(/v1/\$\{route\.path\}[^"]*)" =>', paths_expr)
    assert templates, "no /v1/${route.path} key in modules/api_gateway locals.paths"
    return {t.replace("${route.path}", p) for t in templates for p in http_paths}


def test_api_gateway_serves_every_http_function():
    http = by_trigger("http")
    prefixes = [f["path"] for f in http]
    assert len(set(prefixes)) == len(prefixes), "two http functions share a prefix"

    rendered = render_gateway_paths(prefixes)
    for p in prefixes:
        assert f"/v1/{p}" in rendered
        assert f"/v1/{p}/{{rest=**}}" in rendered
    assert len(rendered) == 2 * len(prefixes)

    api = load_dir(MODULES / "api_gateway")["locals"]
    assert [unquote(m) for m in api["methods"]] == ["get", "post", "patch", "delete"]
    assert 'path_translation = "APPEND_PATH_TO_ADDRESS"' in api["operations"]
    assert "address = route.address" in api["operations"]
    assert "deadline = route.deadline" in api["operations"]
    assert 'swagger = "2.0"' in api["openapi"]

    routes = text(root_call("api_gateway")["routes"])
    assert "for name, f in local.http_functions" in routes
    assert "path = f.path" in routes and "address = local.function_urls[name]" in routes
    assert "well_known = f.well_known" in routes


def test_well_known_function_serves_well_known_paths():
    paths_expr = load_dir(MODULES / "api_gateway")["locals"]["paths"]
    assert re.search(r'"/\.well-known/\{rest=\*\*\}" => \{get = .*\} if route\.well_known', paths_expr)
    assert len([f for f in by_trigger("http") if f.get("well_known")]) <= 1


def test_web_root_functions_serve_pages_outside_v1():
    """A function with a web_root (hosted payment page, dashboard) gets GET and POST of
    /<web_root> and /<web_root>/{rest=**}; the roots are unique single segments, never v1."""
    paths_expr = load_dir(MODULES / "api_gateway")["locals"]["paths"]
    assert re.search(r'"/\$\{route\.web_root\}" => .* if route\.web_root != null', paths_expr)
    assert re.search(r'"/\$\{route\.web_root\}/\{rest=\*\*\}" => .* if route\.web_root != null', paths_expr)
    assert "web_root = f.web_root" in text(root_call("api_gateway")["routes"])
    roots = [f["web_root"] for f in by_trigger("http") if f.get("web_root")]
    assert len(roots) == len(set(roots))
    assert all(re.fullmatch(r"[a-z][a-z0-9-]*", r) and r != "v1" for r in roots)
    assert not [f for f in FUNCTIONS if f.get("web_root") and f["trigger"] != "http"]


# --- what the functions are told ----------------------------------------------------------


def settings_fields() -> set[str]:
    """Field names of shared/platform/config.py's Settings, read without importing the app."""
    import ast

    tree = ast.parse((ROOT / "shared" / "platform" / "config.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}


def settings_env_names() -> set[str]:
    """Env var names read by the app's Settings and by KmsSettings (secrets at rest)."""
    from shared.platform.config import Settings
    from shared.platform.secrets_at_rest import KmsSettings

    names = set()
    for cls in (Settings, KmsSettings):
        prefix = cls.model_config.get("env_prefix", "")
        names |= {(prefix + field).upper() for field in cls.model_fields}
    return names


def test_function_env_matches_the_app_settings():
    common_env = ROOT_MODULE["locals"]["common_env"]
    names = set(re.findall(r"\b(PAYLOOM_[A-Z_]+) =", text(common_env)))
    names |= set(re.findall(r"\b(PAYLOOM_[A-Z_]+) =", text(root_call("function")["env"])))
    assert {"PAYLOOM_ENV", "PAYLOOM_PROJECT_ID", "PAYLOOM_FUNCTIONS_BASE_URL",
            "PAYLOOM_TASKS_INVOKER_EMAIL", "PAYLOOM_FUNCTION_NAME", "PAYLOOM_KMS_KEY_NAME"} <= names
    assert {n.removeprefix("PAYLOOM_").lower() for n in names if not n.startswith("PAYLOOM_KMS_")} <= settings_fields()
    unknown = names - settings_env_names()
    assert not unknown, f"Terraform sets env vars the app's settings do not read: {unknown}"


def test_callers_use_the_url_the_app_verifies_as_audience():
    # Settings.function_url(name) == f"{functions_base_url}/{name with - for _}" is the task target and the
    # audience authenticate_service() verifies, so every caller must use that exact URL.
    loc = ROOT_MODULE["locals"]
    assert unquote(loc["functions_base_url"]) == "https://${local.region}-${var.project_id}.cloudfunctions.net"
    assert "${local.functions_base_url}/${f.id}" in text(loc["function_urls"])
    assert 'replace(f.name, "_", "-")' in text(loc["functions"])
    assert root_call("function")["name"] == "${each.value.id}", "deployed name must be the hyphenated manifest name"
    from shared.platform.config import Settings
    assert Settings(functions_base_url="https://x").function_url("platform_tasks") == "https://x/platform-tasks"


# --- Firestore ----------------------------------------------------------------------------


def test_firestore_rules_deny_all_clients():
    rules = (TF / "firestore" / "firestore.rules").read_text()
    assert "match /{document=**}" in rules
    assert "allow read, write: if false;" in rules
    assert "if true" not in rules


def test_firestore_indexes():
    indexes = json.loads((TF / "firestore" / "firestore.indexes.json").read_text())["indexes"]
    shapes = {
        (i["collectionGroup"], tuple((f["fieldPath"], f["order"]) for f in i["fields"])) for i in indexes
    }
    assert ("outbox", (("published", "ASCENDING"), ("created_at", "ASCENDING"))) in shapes  # sweeper
    assert ("events", (("tenant", "ASCENDING"), ("created_at", "DESCENDING"))) in shapes
    assert ("events", (("tenant", "ASCENDING"), ("type", "ASCENDING"), ("created_at", "DESCENDING"))) in shapes

    index = load_dir(MODULES / "firestore")["resource"][("google_firestore_index", "this")]
    assert index["for_each"] == "${local.indexes}"
    assert "jsondecode(file(var.indexes_file)).indexes" in load_dir(MODULES / "firestore")["locals"]["indexes"]


def test_firestore_ttl_policies():
    default = ROOT_MODULE["variable"]["ttl_fields"]["default"]
    required = {"idempotency_keys", "rate_limits", "processed_events",
                "refresh_tokens", "email_tokens", "mfa_challenges"}
    ttl = {k: unquote(v) for k, v in default.items()}
    assert required <= set(ttl) and all(ttl[k] == "expires_at" for k in required)
    assert {k: ttl[k] for k in ("phone_otps", "oauth_states", "siwe_nonces", "did_challenges")} == dict.fromkeys(
        ("phone_otps", "oauth_states", "siwe_nonces", "did_challenges"), "purge_at")
    field = load_dir(MODULES / "firestore")["resource"][("google_firestore_field", "ttl")]
    assert field["for_each"] == "${var.ttl_fields}"
    assert "ttl_config" in field
    assert root_call("firestore")["ttl_fields"] == "${var.ttl_fields}"


# --- hygiene ------------------------------------------------------------------------------


def test_no_machine_paths_in_deploy_files():
    files = [*TF.rglob("*.tf"), ROOT / "cloudbuild.yaml", ROOT / "infra" / "build.py", ROOT / "infra" / "checkov.sh"]
    for path in files:
        assert str(ROOT) not in path.read_text(), f"{path} contains this machine's repo path"


def test_for_each_keys_are_known_at_plan():
    """A service account's id (its `name`) is known only after apply, so a for_each over ids
    fails on the first apply: key such sets by position or by manifest names."""
    act_as = load_dir(MODULES / "service_account")["resource"][("google_service_account_iam_member", "act_as")]
    assert act_as["for_each"] == "${{for i, id in var.act_as : tostring(i) => id}}"
    assert act_as["service_account_id"] == "${each.value}"
    assert root_call("function_sa")["act_as"] == (
        '${contains(each.value.roles, "roles/cloudtasks.enqueuer") ? [module.invoker["jobs"].id] : []}')
