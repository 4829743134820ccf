# Secret Manager secrets named in the manifest. Terraform creates the containers and grants
# read access to the functions that list them; values are added out of band.

module "secret" {
  source   = "../secret"
  for_each = local.secrets

  project_id  = var.project_id
  secret_id   = each.key
  description = try(each.value.description, "")
  labels      = local.labels
  accessors = [
    for name, f in local.functions : module.function_sa[name].member if contains(f.secrets, each.key)
  ]

  depends_on = [google_project_service.apis]
}
