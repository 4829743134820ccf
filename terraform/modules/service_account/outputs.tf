output "email" {
  value = google_service_account.this.email
}

output "member" {
  value = "serviceAccount:${google_service_account.this.email}"
}

output "id" {
  description = "Full resource name, as build_config.service_account and google_service_account_iam_member expect."
  value       = google_service_account.this.name
}
