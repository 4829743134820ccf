# Payloom on one GCP project: everything functions/manifest.yaml lists, wired together.
# Both environments call this module; only sizes and protections differ between them.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  region = coalesce(var.region, var.manifest.region)
  labels = merge({ app = "payloom", env = var.environment }, var.labels)

  # The manifest's functions, one object shape for all, keyed by manifest name. `id` is the name
  # with "_" turned into "-": the deployed Cloud Function name and the service account id
  # (Cloud Run service names allow no underscores). Settings.function_url does the same.
  functions = {
    for f in var.manifest.functions : f.name => {
      id            = replace(f.name, "_", "-")
      name          = f.name
      entry_point   = f.entry_point
      trigger       = f.trigger
      path          = try(f.path, null)
      topic         = try(f.topic, null)
      queue         = try(f.queue, null)
      cron          = try(f.cron, null)
      well_known    = try(f.well_known, false)
      web_root      = try(f.web_root, null)
      memory        = try(f.memory, "256Mi")
      timeout       = try(f.timeout, 60)
      max_instances = try(f.max_instances, var.default_max_instances)
      concurrency   = try(f.concurrency, 1)
      secrets       = try(tolist(f.secrets), [])
      env           = try(tomap(f.env), {})
      # roles/cloudkms.* roles are granted on the secrets-at-rest key only (kms.tf), and such a
      # function is told the key's name; every other role is a project role.
      roles     = [for r in try(tolist(f.roles), []) : r if !startswith(r, "roles/cloudkms.")]
      kms_roles = [for r in try(tolist(f.roles), []) : r if startswith(r, "roles/cloudkms.")]
    }
  }
  kms_functions      = { for name, f in local.functions : name => f if length(f.kms_roles) > 0 }
  http_functions     = { for name, f in local.functions : name => f if f.trigger == "http" }
  pubsub_functions   = { for name, f in local.functions : name => f if f.trigger == "pubsub" }
  task_functions     = { for name, f in local.functions : name => f if f.trigger == "task" }
  schedule_functions = { for name, f in local.functions : name => f if f.trigger == "schedule" }

  topics  = try({ for name, t in var.manifest.topics : name => t }, {})
  queues  = try({ for name, q in var.manifest.queues : name => q }, {})
  secrets = try({ for name, s in var.manifest.secrets : name => s }, {})

  # Every function's address is <base>/<name>, known before the functions exist. The app builds
  # the same URL (Settings.function_url) as Cloud Tasks target and as the OIDC audience it
  # verifies, so Scheduler, Pub/Sub push and the gateway use exactly these URLs too.
  functions_base_url = "https://${local.region}-${var.project_id}.cloudfunctions.net"
  function_urls      = { for name, f in local.functions : name => "${local.functions_base_url}/${f.id}" }

  # shared/platform/config.py Settings (prefix PAYLOOM_); the manifest's `env` adds to them.
  common_env = merge({
    PAYLOOM_ENV                 = var.environment
    PAYLOOM_PROJECT_ID          = var.project_id
    PAYLOOM_REGION              = local.region
    PAYLOOM_FUNCTIONS_BASE_URL  = local.functions_base_url
    PAYLOOM_TASKS_INVOKER_EMAIL = module.invoker["jobs"].email
  }, var.public_base_url == null ? {} : { PAYLOOM_PUBLIC_BASE_URL = var.public_base_url })

  apis = toset([
    "apigateway.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "firebaserules.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicecontrol.googleapis.com",
    "servicemanagement.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "apis" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# --- Function sources --------------------------------------------------------------------

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Holds build zips only; object reads and writes are already recorded by Cloud Audit Logs, a usage-log bucket would duplicate them.
  project                     = var.project_id
  name                        = "${var.project_id}-functions-source"
  location                    = local.region
  labels                      = local.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Old zips are only needed to redeploy an old revision; Cloud Build archives (builds/) too.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age            = 90
      matches_prefix = ["builds/"]
    }
    action {
      type = "Delete"
    }
  }
}

# Content-addressed: a function is rebuilt and redeployed only when its zip changes.
resource "google_storage_bucket_object" "source" {
  for_each = local.functions

  bucket = google_storage_bucket.sources.name
  name   = "functions/${each.key}/${filemd5("${var.build_dir}/${each.key}.zip")}.zip"
  source = "${var.build_dir}/${each.key}.zip"
}

# --- Functions ---------------------------------------------------------------------------

module "function" {
  source   = "../function"
  for_each = local.functions

  project_id            = var.project_id
  region                = local.region
  name                  = each.value.id
  description           = "Payloom ${each.key} (${each.value.trigger})"
  trigger               = each.value.trigger
  entry_point           = each.value.entry_point
  source_bucket         = google_storage_bucket.sources.name
  source_object         = google_storage_bucket_object.source[each.key].name
  service_account_email = module.function_sa[each.key].email
  build_service_account = module.builder_sa.id
  memory                = each.value.memory
  timeout_seconds       = each.value.timeout
  min_instances         = lookup(var.min_instances, each.key, 0)
  max_instances         = each.value.max_instances
  concurrency           = each.value.concurrency
  env = merge(local.common_env, each.value.env, { PAYLOOM_FUNCTION_NAME = each.key },
    contains(keys(local.kms_functions), each.key) ? { PAYLOOM_KMS_KEY_NAME = module.kms_key.id } : {},
  )
  # Secret env var = secret name upper-cased: jwt-signing-keys => JWT_SIGNING_KEYS.
  secrets         = { for s in each.value.secrets : upper(replace(s, "-", "_")) => module.secret[s].secret_id }
  invoker_members = [module.invoker[local.invoker_of[each.value.trigger]].member]
  labels          = merge(local.labels, { function = each.key })

  # The runtime account must be able to read its secrets and use the key before the first
  # revision starts.
  depends_on = [google_project_service.apis, module.secret, module.kms_key]
}
