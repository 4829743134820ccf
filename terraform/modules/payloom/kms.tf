# Secrets at rest (ADR 0004): the environment's key-encryption key, usable only by the functions
# whose manifest entry lists a roles/cloudkms.* role. Those roles are bound on this key, never
# on the project (see local.functions: kms_roles are split off the project roles).

module "kms_key" {
  source = "../kms_key"

  project_id = var.project_id
  location   = local.region
  labels     = local.labels
  bindings = merge([
    for name, f in local.functions : {
      for role in f.kms_roles : "${name}/${role}" => {
        role   = role
        member = module.function_sa[name].member
      }
    }
  ]...)

  depends_on = [google_project_service.apis]
}
