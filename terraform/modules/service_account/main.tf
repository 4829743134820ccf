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
resource "google_service_account_iam_member" "act_as" {
  for_each = toset(var.act_as)

  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.this.email}"
}
