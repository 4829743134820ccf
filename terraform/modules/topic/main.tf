# A Pub/Sub topic, its dead-letter topic, and one push subscription per consuming function.
#
# We own the subscriptions instead of letting a gen2 event_trigger (Eventarc) create one per
# function: an Eventarc-managed subscription cannot be given a dead-letter policy, so a poison
# message would be retried until it expires and then silently dropped. Here every consumer has a
# dead-letter policy, a retry backoff, an ack deadline matching the function timeout and an OIDC
# push identity; the dead-letter subscription keeps failed messages for inspection and replay.
# functions-framework turns the push body into the same CloudEvent Eventarc would deliver.

resource "google_pubsub_topic" "this" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest; events carry ids and amounts, never card data or secrets. CMEK is deferred (ADR 0002).
  project = var.project_id
  name    = var.name
  labels  = var.labels
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Same data as the main topic; Google-managed encryption at rest (ADR 0002).
  project = var.project_id
  name    = "${var.name}-dead-letter"
  labels  = var.labels
}

# Holds dead letters until someone inspects or replays them.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = var.message_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = "" # never expires
  }
}

resource "google_pubsub_subscription" "push" {
  for_each = var.consumers

  project                    = var.project_id
  name                       = "${var.name}-${replace(each.key, "_", "-")}"
  topic                      = google_pubsub_topic.this.id
  labels                     = var.labels
  ack_deadline_seconds       = max(10, min(600, each.value.ack_deadline_seconds))
  message_retention_duration = var.message_retention

  push_config {
    push_endpoint = each.value.endpoint
    oidc_token {
      service_account_email = each.value.service_account_email
      audience              = each.value.endpoint
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expires, even with no traffic
  }
}

# Dead-lettering needs the Pub/Sub service agent to publish to the dead-letter topic and to
# acknowledge on the source subscriptions; granted on those resources only.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = var.consumers

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${var.pubsub_service_agent}"
}
