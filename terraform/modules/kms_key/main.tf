# The key-encryption key of secrets at rest (ADR 0004): one key ring and one symmetric
# ENCRYPT_DECRYPT CryptoKey per environment. Firestore stores each secret's data key wrapped
# by this key; KMS rotates it on a schedule and old versions keep decrypting, so the scheduled
# rewrap job (secrets_rewrap) moves records to the primary version without downtime.
#
# Access is granted on this key only (never on the ring or the project): a function holds
# exactly the roles its manifest entry lists under roles/cloudkms.*.

resource "google_kms_key_ring" "this" {
  project  = var.project_id
  location = var.location
  name     = var.key_ring_name
}

resource "google_kms_crypto_key" "this" {
  name            = var.key_name
  key_ring        = google_kms_key_ring.this.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.rotation_period
  labels          = var.labels

  # Destroying the key makes every sealed secret unreadable: the only way to retire a version
  # is to disable it after a rewrap run that reports nothing left on it.
  destroy_scheduled_duration = var.destroy_scheduled_duration

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = var.protection_level
  }

  lifecycle {
    prevent_destroy = true
  }
}

# One binding per (function, role), keyed by names known at plan time.
resource "google_kms_crypto_key_iam_member" "this" {
  for_each = var.bindings

  crypto_key_id = google_kms_crypto_key.this.id
  role          = each.value.role
  member        = each.value.member
}
