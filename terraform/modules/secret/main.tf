# A Secret Manager secret: the container only. Values are added out of band
# (`gcloud secrets versions add`), so no secret value ever lands in Terraform state.

resource "google_secret_manager_secret" "this" {
  project   = var.project_id
  secret_id = var.secret_id
  labels    = var.labels
  annotations = {
    description = var.description
  }

  replication {
    auto {}
  }
}

# Read access for the functions that mount this secret, on this secret only.
resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = toset(var.accessors)

  project   = var.project_id
  secret_id = google_secret_manager_secret.this.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value
}
