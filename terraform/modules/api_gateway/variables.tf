variable "project_id" {
  type = string
}

variable "region" {
  type = string
}

variable "name" {
  description = "API and gateway id, e.g. payloom-staging."
  type        = string
}

variable "routes" {
  description = <<-EOT
    One entry per trigger=http function, keyed by function name: path (the manifest's public
    prefix, served as /v1/<path> and /v1/<path>/...), address (the function's URL), deadline
    (seconds the gateway waits for it; the gateway default of 15 s is too short) and
    well_known (the function also serves GET /.well-known/..., e.g. the JWKS) and web_root
    (null, or a first path segment the function also serves outside /v1 for HTML pages, e.g. pay).
  EOT
  type = map(object({
    path       = string
    address    = string
    deadline   = number
    well_known = bool
    web_root   = optional(string)
  }))
  validation {
    condition     = length(distinct([for r in values(var.routes) : r.path])) == length(var.routes)
    error_message = "Two http functions share a path prefix."
  }
  validation {
    condition     = length([for r in values(var.routes) : r if r.well_known]) <= 1
    error_message = "Only one function can serve /.well-known/."
  }
  validation {
    condition = alltrue([for r in values(var.routes) : r.web_root == null || (
      can(regex("^[a-z][a-z0-9-]*$", coalesce(r.web_root, "x"))) && !contains(["v1", ".well-known"], coalesce(r.web_root, "x"))
    )])
    error_message = "A web_root is one lowercase path segment other than v1."
  }
  validation {
    condition     = length(compact([for r in values(var.routes) : r.web_root])) == length(distinct(compact([for r in values(var.routes) : r.web_root])))
    error_message = "Two http functions share a web_root."
  }
}

variable "gateway_service_account_email" {
  description = "Identity the gateway uses to call the functions (it holds run.invoker on http functions only)."
  type        = string
}

variable "labels" {
  type    = map(string)
  default = {}
}
