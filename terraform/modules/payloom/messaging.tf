# Pub/Sub topics (with their consumers' push subscriptions), Cloud Tasks queues and Cloud
# Scheduler jobs, all from the manifest.

module "topic" {
  source   = "../topic"
  for_each = local.topics

  project_id           = var.project_id
  name                 = each.key
  labels               = local.labels
  pubsub_service_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  consumers = {
    for name, f in local.pubsub_functions : name => {
      endpoint              = local.function_urls[name]
      service_account_email = module.invoker["pubsub"].email
      ack_deadline_seconds  = f.timeout
    } if f.topic == each.key
  }

  depends_on = [google_project_service.apis, module.function]
}

module "queue" {
  source   = "../queue"
  for_each = local.queues

  project_id                = var.project_id
  region                    = local.region
  name                      = each.key
  max_dispatches_per_second = each.value.max_dispatches_per_second
  max_concurrent_dispatches = each.value.max_concurrent_dispatches
  max_attempts              = try(each.value.max_attempts, 5)

  depends_on = [google_project_service.apis]
}

module "scheduler_job" {
  source   = "../scheduler_job"
  for_each = local.schedule_functions

  project_id               = var.project_id
  region                   = local.region
  name                     = each.value.id
  description              = "Runs ${each.key} on '${each.value.cron}' (UTC)."
  schedule                 = each.value.cron
  uri                      = local.function_urls[each.key]
  service_account_email    = module.invoker["jobs"].email
  attempt_deadline_seconds = each.value.timeout

  depends_on = [google_project_service.apis, module.function]
}
