variable "project_id" {
  type = string
}

variable "region" {
  type = string
}

variable "name" {
  type = string
}

variable "max_dispatches_per_second" {
  type = number
}

variable "max_concurrent_dispatches" {
  type = number
}

variable "max_attempts" {
  description = "Safety net only: handlers schedule their own next attempt (DESIGN.md), so Cloud Tasks retries just a few times on 5xx or timeouts."
  type        = number
  default     = 5
}

variable "min_backoff" {
  type    = string
  default = "5s"
}

variable "max_backoff" {
  type    = string
  default = "300s"
}

variable "log_sampling_ratio" {
  description = "Fraction of task operations logged to Cloud Logging."
  type        = number
  default     = 1.0
}
