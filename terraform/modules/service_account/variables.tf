variable "project_id" {
  type = string
}

variable "account_id" {
  description = "Service account id: 6-30 characters, lowercase letters, digits and hyphens."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.account_id))
    error_message = "account_id must be 6-30 characters of [a-z0-9-], start with a letter and not end with '-'."
  }
}

variable "display_name" {
  type = string
}

variable "description" {
  type    = string
  default = ""
}

variable "project_roles" {
  description = "Predefined roles bound at project level (the manifest's `roles`). Basic and impersonation roles are refused."
  type        = list(string)
  default     = []
  validation {
    condition = alltrue([
      for role in var.project_roles : !contains([
        "roles/owner", "roles/editor", "roles/viewer",
        "roles/iam.serviceAccountUser", "roles/iam.serviceAccountTokenCreator",
        "roles/iam.serviceAccountAdmin", "roles/iam.securityAdmin",
        "roles/resourcemanager.projectIamAdmin",
      ], role) && startswith(role, "roles/") && !startswith(role, "roles/cloudkms.")
    ])
    error_message = "Least privilege: no basic roles, no project-wide impersonation, IAM admin or KMS roles (KMS roles are bound on the key, modules/kms_key)."
  }
}

variable "act_as" {
  description = "Service account ids (projects/-/serviceAccounts/EMAIL) this account may act as, e.g. to mint the OIDC token of a Cloud Task. Granted on those accounts only."
  type        = list(string)
  default     = []
}
