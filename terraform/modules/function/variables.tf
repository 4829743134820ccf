variable "project_id" {
  type = string
}

variable "region" {
  type = string
}

variable "name" {
  description = "Cloud Function name: the manifest name. Its Cloud Run service gets the same name with '_' turned into '-'."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]{0,62}$", var.name))
    error_message = "name must be lowercase letters, digits, '_' or '-', starting with a letter."
  }
}

variable "description" {
  type    = string
  default = ""
}

variable "trigger" {
  description = "Manifest trigger: http | pubsub | task | schedule. Only http functions accept traffic from outside the project."
  type        = string
  validation {
    condition     = contains(["http", "pubsub", "task", "schedule"], var.trigger)
    error_message = "trigger must be one of http, pubsub, task, schedule."
  }
}

variable "entry_point" {
  type = string
}

variable "source_bucket" {
  type = string
}

variable "source_object" {
  description = "Zip written by infra/build.py, uploaded under a content-hash name."
  type        = string
}

variable "service_account_email" {
  description = "The function's own runtime service account."
  type        = string
}

variable "build_service_account" {
  description = "Full resource name of the service account Cloud Build uses to build the function image."
  type        = string
}

variable "memory" {
  type    = string
  default = "256Mi"
}

variable "timeout_seconds" {
  type    = number
  default = 60
}

variable "min_instances" {
  type    = number
  default = 0
}

variable "max_instances" {
  type    = number
  default = 10
}

variable "concurrency" {
  description = "Concurrent requests per instance. Above 1, the instance gets a whole vCPU (a gen2 requirement)."
  type        = number
  default     = 1
}

variable "env" {
  description = "Plain environment variables."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variable name => Secret Manager secret id (latest version, read at instance start)."
  type        = map(string)
  default     = {}
}

variable "invoker_members" {
  description = "IAM members given roles/run.invoker on this function's Cloud Run service, and nobody else."
  type        = list(string)
  default     = []
  validation {
    condition     = !contains(var.invoker_members, "allUsers") && !contains(var.invoker_members, "allAuthenticatedUsers")
    error_message = "A function is never public: grant run.invoker to a service account."
  }
}

variable "labels" {
  type    = map(string)
  default = {}
}
