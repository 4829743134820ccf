# Production.

locals {
  manifest   = yamldecode(file("${path.module}/../../../functions/manifest.yaml"))
  project_id = coalesce(var.project_id, "${local.manifest.project}-prod")
  region     = coalesce(var.region, local.manifest.region)
}

module "payloom" {
  source = "../../modules/payloom"

  manifest              = local.manifest
  environment           = "prod"
  project_id            = local.project_id
  region                = local.region
  build_dir             = startswith(var.build_dir, "/") ? var.build_dir : "${path.module}/${var.build_dir}"
  default_max_instances = 100
  deletion_protection   = true
  # Public APIs stay warm; everything else scales from zero.
  min_instances = {
    platform = 1
  }
}
