# One Cloud Function (gen2) from a zip in GCS, running as its own service account.
#
# Only http functions take traffic from outside the project (the API Gateway is not "internal"
# traffic); they are still private: run.invoker is granted to the gateway's service account only.
# task, schedule and pubsub functions are reached by Cloud Tasks, Cloud Scheduler and Pub/Sub
# push, which count as internal traffic from the same project.

locals {
  ingress = var.trigger == "http" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
  # gen2 needs at least one vCPU to serve more than one request per instance.
  cpu = var.concurrency > 1 ? "1" : null
}

resource "google_cloudfunctions2_function" "this" {
  #checkov:skip=CKV_GCP_124:Only trigger=http functions get ALLOW_ALL, because the API Gateway calls them from outside the project network; they still require IAM (run.invoker is granted to the gateway service account only). Every other function is ALLOW_INTERNAL_ONLY.
  project     = var.project_id
  location    = var.region
  name        = var.name
  description = var.description
  labels      = var.labels

  build_config {
    runtime         = "python311"
    entry_point     = var.entry_point
    service_account = var.build_service_account
    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    service_account_email            = var.service_account_email
    available_memory                 = var.memory
    available_cpu                    = local.cpu
    timeout_seconds                  = var.timeout_seconds
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = var.concurrency
    ingress_settings                 = local.ingress
    all_traffic_on_latest_revision   = true
    environment_variables            = var.env

    dynamic "secret_environment_variables" {
      for_each = var.secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }
}

# Who may call this function: exactly the listed service accounts, on this service only.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = toset(var.invoker_members)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this.service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}
