# A Cloud Tasks queue. Tasks are HTTP tasks with an OIDC token minted for the tasks invoker
# account (set per task by the enqueuing code), targeting a private task function.

resource "google_cloud_tasks_queue" "this" {
  project  = var.project_id
  location = var.region
  name     = var.name

  rate_limits {
    max_dispatches_per_second = var.max_dispatches_per_second
    max_concurrent_dispatches = var.max_concurrent_dispatches
  }

  # Safety net only. Retries, their schedule and dead-lettering are the handlers' job.
  retry_config {
    max_attempts  = var.max_attempts
    min_backoff   = var.min_backoff
    max_backoff   = var.max_backoff
    max_doublings = 4
  }

  stackdriver_logging_config {
    sampling_ratio = var.log_sampling_ratio
  }
}
