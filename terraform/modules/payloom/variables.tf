variable "manifest" {
  description = "functions/manifest.yaml, decoded with yamldecode by the environment."
  type        = any
}

variable "environment" {
  type = string
  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "environment must be staging or prod."
  }
}

variable "project_id" {
  description = "GCP project of this environment (one project per environment)."
  type        = string
}

variable "region" {
  description = "Region for every regional resource; null means the manifest's region."
  type        = string
  default     = null
}

variable "build_dir" {
  description = "Folder holding <name>.zip for every function (infra/build.py --out)."
  type        = string
}

variable "default_max_instances" {
  description = "max_instances for functions whose manifest entry does not set it."
  type        = number
  default     = 10
}

variable "min_instances" {
  description = "Warm instances per function name (cold-start sensitive APIs in prod); default 0."
  type        = map(number)
  default     = {}
}

variable "firestore_location" {
  description = "Firestore location; null means the region."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect stateful resources (Firestore database) from deletion."
  type        = bool
  default     = true
}

variable "ttl_fields" {
  description = "Firestore TTL policies: collection group => expiry timestamp field."
  type        = map(string)
  default = {
    idempotency_keys        = "expires_at"
    rate_limits             = "expires_at"
    processed_events        = "expires_at"
    outbox                  = "expires_at"
    sessions                = "expires_at"
    outbound_messages       = "expires_at"
    refresh_tokens          = "expires_at"
    email_tokens            = "expires_at"
    mfa_challenges          = "expires_at"
    phone_otps              = "purge_at"
    oauth_states            = "purge_at"
    siwe_nonces             = "purge_at"
    did_challenges          = "purge_at"
    login_guards            = "expires_at"
    password_reset_requests = "expires_at"
    inbound_events          = "expires_at"
    webhook_attempts        = "expires_at"
    webhook_deliveries      = "expires_at"
    webhook_slots           = "expires_at"
    merchant_invitations    = "purge_at"
    reconciliation_runs     = "purge_at"
    payment_link_checkouts  = "expires_at"
    checkout_card_sessions  = "expires_at"
    relay_messages          = "purge_at"
    relay_jobs              = "purge_at"
    relay_usage             = "purge_at"
    relay_callbacks         = "purge_at"
    dashboard_key_reveals   = "expires_at"
  }
}

variable "public_base_url" {
  description = "Public base URL of the API (custom domain), passed as PAYLOOM_PUBLIC_BASE_URL. The gateway's own hostname cannot be fed back into the functions (it depends on them)."
  type        = string
  default     = null
}

variable "labels" {
  type    = map(string)
  default = {}
}
