# A Cloud Scheduler job that POSTs to a private function with an OIDC token.
# No retries: the next tick comes within the schedule's period and every job is idempotent.

resource "google_cloud_scheduler_job" "this" {
  project          = var.project_id
  region           = var.region
  name             = var.name
  description      = var.description
  schedule         = var.schedule
  time_zone        = "Etc/UTC"
  paused           = var.paused
  attempt_deadline = "${max(15, min(1800, var.attempt_deadline_seconds))}s"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = var.uri
    # An empty JSON object, as the local scheduler sends: the job routes take no body or
    # strict bodies (RequestModel forbids unknown fields), so anything else is a 400.
    body = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = var.service_account_email
      audience              = var.uri
    }
  }
}
