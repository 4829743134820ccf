output "name" {
  value = google_cloudfunctions2_function.this.name
}

output "url" {
  description = "https://<region>-<project>.cloudfunctions.net/<name>: what callers target, and the OIDC audience the app verifies."
  value       = google_cloudfunctions2_function.this.url
}

output "run_uri" {
  description = "The run.app address of the Cloud Run service behind the function."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

output "service" {
  description = "Name of the Cloud Run service behind the function."
  value       = google_cloudfunctions2_function.this.service_config[0].service
}
