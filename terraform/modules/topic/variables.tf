variable "project_id" {
  type = string
}

variable "name" {
  type = string
}

variable "labels" {
  type    = map(string)
  default = {}
}

variable "consumers" {
  description = <<-EOT
    One push subscription per consuming (trigger=pubsub) function, keyed by function name:
    endpoint (the function's URL, also the OIDC audience), service_account_email (the pubsub
    invoker account whose OIDC token Pub/Sub presents) and ack_deadline_seconds (the function's
    timeout, 10-600).
  EOT
  type = map(object({
    endpoint              = string
    service_account_email = string
    ack_deadline_seconds  = number
  }))
  default = {}
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message is moved to the dead-letter topic (5-100)."
  type        = number
  default     = 10
}

variable "message_retention" {
  description = "How long unacknowledged messages are kept, on the subscriptions and the dead-letter subscription."
  type        = string
  default     = "604800s"
}

variable "pubsub_service_agent" {
  description = "service-<project number>@gcp-sa-pubsub.iam.gserviceaccount.com: it forwards undeliverable messages to the dead-letter topic."
  type        = string
}
