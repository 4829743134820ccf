# Identities. Each function runs as its own account holding only the manifest's roles.
# Callers get one invoker account per kind, holding run.invoker only on the functions they call
# (granted in the function module): the API Gateway cannot call a task handler, and Pub/Sub
# cannot call an API. Cloud Tasks and Cloud Scheduler share "jobs": the app accepts exactly one
# service identity on task and schedule functions (PAYLOOM_TASKS_INVOKER_EMAIL).

locals {
  invokers = {
    http   = "API Gateway"
    jobs   = "Cloud Tasks and Cloud Scheduler"
    pubsub = "Pub/Sub push"
  }
  invoker_of = {
    http     = "http"
    task     = "jobs"
    schedule = "jobs"
    pubsub   = "pubsub"
  }
}

module "function_sa" {
  source   = "../service_account"
  for_each = local.functions

  project_id    = var.project_id
  account_id    = "fn-${each.value.id}"
  display_name  = "Payloom function ${each.key}"
  description   = "Runtime identity of the ${each.key} function (functions/manifest.yaml)."
  project_roles = each.value.roles
  # Enqueuing a task with an OIDC token means acting as the tasks invoker account.
  act_as = contains(each.value.roles, "roles/cloudtasks.enqueuer") ? [module.invoker["jobs"].id] : []
}

module "invoker" {
  source   = "../service_account"
  for_each = local.invokers

  project_id   = var.project_id
  account_id   = "invoker-${each.key}"
  display_name = "Payloom ${each.value} invoker"
  description  = "${each.value} presents this account's OIDC token to call ${each.key} functions."
}

# Cloud Build builds each function's image as this account instead of the default compute
# account (which holds Editor).
module "builder_sa" {
  source = "../service_account"

  project_id   = var.project_id
  account_id   = "functions-builder"
  display_name = "Payloom functions builder"
  description  = "Builds the Cloud Functions images."
  project_roles = [
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
    "roles/storage.objectViewer",
  ]
}
