variable "project_id" {
  type = string
}

variable "location" {
  description = "KMS location: the functions' region, so a wrap or unwrap stays in-region."
  type        = string
}

variable "key_ring_name" {
  type    = string
  default = "payloom"
}

variable "key_name" {
  type    = string
  default = "secrets-at-rest"
}

variable "rotation_period" {
  description = "How often KMS makes a new primary version, in seconds with an 's' suffix (at most 90 days)."
  type        = string
  default     = "7776000s" # 90 days
  validation {
    condition     = can(regex("^[0-9]+s$", var.rotation_period)) && try(tonumber(trimsuffix(var.rotation_period, "s")) >= 86400 && tonumber(trimsuffix(var.rotation_period, "s")) <= 7776000, false)
    error_message = "rotation_period must be between 1 day and 90 days, e.g. \"7776000s\"."
  }
}

variable "destroy_scheduled_duration" {
  description = "Delay between scheduling a version's destruction and its destruction: the window to undo a mistake."
  type        = string
  default     = "2592000s" # 30 days, the maximum
}

variable "protection_level" {
  type    = string
  default = "SOFTWARE"
  validation {
    condition     = contains(["SOFTWARE", "HSM"], var.protection_level)
    error_message = "protection_level must be SOFTWARE or HSM."
  }
}

variable "labels" {
  type    = map(string)
  default = {}
}

variable "bindings" {
  description = "Key-level IAM: \"<function>/<role>\" => {role, member}. Only roles/cloudkms.* roles that use or read the key; never admin roles, never public members."
  type = map(object({
    role   = string
    member = string
  }))
  default = {}
  validation {
    condition = alltrue([
      for b in values(var.bindings) : contains([
        "roles/cloudkms.cryptoKeyEncrypterDecrypter",
        "roles/cloudkms.cryptoKeyEncrypter",
        "roles/cloudkms.cryptoKeyDecrypter",
        "roles/cloudkms.viewer",
      ], b.role) && startswith(b.member, "serviceAccount:")
    ])
    error_message = "Key bindings are limited to encrypt/decrypt and viewer roles, granted to service accounts."
  }
}
