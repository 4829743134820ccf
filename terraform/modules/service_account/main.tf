# A service account with a short list of project roles (least privilege). Used once per
# function (its runtime identity), for the per-trigger invoker accounts (no project roles:
# they get run.invoker on the individual services in the function module) and for the builder.

resource "google_service_account" "this" {
  project      = var.project_id
  account_id   = var.account_id
  display_name = var.display_name
  description  = var.description
}

resource "google_project_iam_member" "roles" {
  for_each = toset(var.project_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.this.email}"
}

# iam.serviceAccountUser on one target account (never at project level): lets a function
# create Cloud Tasks that carry the target account's OIDC token.
# Keyed by position: the target ids (google_service_account.name) are only known after apply,
# and for_each keys must be known at plan.
resource "google_service_account_iam_member" "act_as" {
  for_each = { for i, id in var.act_as : tostring(i) => id }

  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.this.email}"
}
