variable "project_id" {
  type = string
}

variable "region" {
  type = string
}

variable "name" {
  type = string
}

variable "description" {
  type    = string
  default = ""
}

variable "schedule" {
  description = "Cron expression from the manifest, evaluated in UTC."
  type        = string
}

variable "uri" {
  description = "The function's URL; also the OIDC audience."
  type        = string
}

variable "service_account_email" {
  description = "Scheduler invoker account: Cloud Scheduler presents an OIDC token minted for it."
  type        = string
}

variable "attempt_deadline_seconds" {
  description = "How long Cloud Scheduler waits for the function (15-1800)."
  type        = number
  default     = 180
}

variable "paused" {
  type    = bool
  default = false
}
