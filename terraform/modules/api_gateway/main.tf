# API Gateway in front of the http functions. The OpenAPI 2.0 document is rendered here from
# the manifest's http functions: each gets /v1/<path> and /v1/<path>/{rest=**} for GET, POST,
# PATCH and DELETE, forwarded to the function with the full request path appended. The one
# function marked well_known also gets GET /.well-known/{rest=**}. A function with a web_root
# (server-rendered pages: the hosted payment page, the dashboard, the docs) also gets
# /<web_root> and /<web_root>/{rest=**} for GET and POST, outside /v1.
#
# The gateway calls the function with its own OIDC token in Authorization; the client's
# Authorization header reaches the function as X-Forwarded-Authorization.

locals {
  methods = ["get", "post", "patch", "delete"]

  operations = {
    for name, route in var.routes : name => {
      for method in local.methods : method => {
        operationId = "${name}_${method}"
        responses   = { default = { description = "Response from the ${name} function." } }
        "x-google-backend" = {
          address          = route.address
          path_translation = "APPEND_PATH_TO_ADDRESS"
          deadline         = route.deadline
        }
      }
    }
  }

  rest_parameter = { name = "rest", in = "path", required = true, type = "string" }

  paths = merge(
    { for name, route in var.routes : "/v1/${route.path}" => local.operations[name] },
    {
      for name, route in var.routes : "/v1/${route.path}/{rest=**}" => {
        for method, op in local.operations[name] : method => merge(op, {
          operationId = "${op.operationId}_rest"
          parameters  = [local.rest_parameter]
        })
      }
    },
    {
      for name, route in var.routes : "/.well-known/{rest=**}" => {
        get = merge(local.operations[name].get, {
          operationId = "${name}_well_known"
          parameters  = [local.rest_parameter]
        })
      } if route.well_known
    },
    {
      for name, route in var.routes : "/${route.web_root}" => {
        for method in ["get", "post"] : method => merge(local.operations[name][method], {
          operationId = "${name}_web_${method}"
        })
      } if route.web_root != null
    },
    {
      for name, route in var.routes : "/${route.web_root}/{rest=**}" => {
        for method in ["get", "post"] : method => merge(local.operations[name][method], {
          operationId = "${name}_web_${method}_rest"
          parameters  = [local.rest_parameter]
        })
      } if route.web_root != null
    },
  )

  openapi = jsonencode({
    swagger  = "2.0"
    info     = { title = var.name, version = "1.0.0" }
    schemes  = ["https"]
    consumes = ["application/json"]
    produces = ["application/json"]
    paths    = local.paths
  })
}

resource "google_api_gateway_api" "this" {
  provider = google-beta
  project  = var.project_id
  api_id   = var.name
  labels   = var.labels
}

# Configs are immutable: a changed document makes a new config (its id carries the hash),
# created before the old one is dropped so the gateway never points at nothing.
resource "google_api_gateway_api_config" "this" {
  provider      = google-beta
  project       = var.project_id
  api           = google_api_gateway_api.this.api_id
  api_config_id = "${var.name}-${substr(sha256(local.openapi), 0, 12)}"
  labels        = var.labels

  openapi_documents {
    document {
      path     = "openapi.json"
      contents = base64encode(local.openapi)
    }
  }

  gateway_config {
    backend_config {
      google_service_account = var.gateway_service_account_email
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_api_gateway_gateway" "this" {
  provider   = google-beta
  project    = var.project_id
  region     = var.region
  gateway_id = var.name
  api_config = google_api_gateway_api_config.this.id
  labels     = var.labels
}
