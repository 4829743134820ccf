output "id" {
  description = "projects/P/locations/L/keyRings/R/cryptoKeys/K: the value of PAYLOOM_KMS_KEY_NAME."
  value       = google_kms_crypto_key.this.id
}

output "key_ring_id" {
  value = google_kms_key_ring.this.id
}
