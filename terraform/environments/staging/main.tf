# Staging: same shape as prod, smaller and disposable.

locals {
  manifest   = yamldecode(file("${path.module}/../../../functions/manifest.yaml"))
  project_id = coalesce(var.project_id, "${local.manifest.project}-staging")
  region     = coalesce(var.region, local.manifest.region)
}

module "payloom" {
  source = "../../modules/payloom"

  manifest              = local.manifest
  environment           = "staging"
  project_id            = local.project_id
  region                = local.region
  build_dir             = startswith(var.build_dir, "/") ? var.build_dir : "${path.module}/${var.build_dir}"
  default_max_instances = 5
  deletion_protection   = false
}
