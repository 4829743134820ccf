output "openapi" {
  description = "The rendered OpenAPI 2.0 document."
  value       = local.openapi
}

output "hostname" {
  description = "Public host of the gateway: https://<hostname>/v1/..."
  value       = google_api_gateway_gateway.this.default_hostname
}

output "managed_service" {
  description = "Service name to enable in the project so the gateway can serve traffic."
  value       = google_api_gateway_api.this.managed_service
}
