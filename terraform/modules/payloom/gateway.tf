# The public API: /v1/<path>/... of every http function, through API Gateway.

module "api_gateway" {
  source = "../api_gateway"

  project_id                    = var.project_id
  region                        = local.region
  name                          = "payloom-${var.environment}"
  gateway_service_account_email = module.invoker["http"].email
  labels                        = local.labels
  routes = {
    for name, f in local.http_functions : name => {
      path       = f.path
      address    = local.function_urls[name]
      deadline   = f.timeout
      well_known = f.well_known
      web_root   = f.web_root
    }
  }

  depends_on = [google_project_service.apis, module.function]
}

# The API's own managed service must be enabled before the gateway serves traffic.
resource "google_project_service" "gateway_api" {
  project            = var.project_id
  service            = module.api_gateway.managed_service
  disable_on_destroy = false
}
