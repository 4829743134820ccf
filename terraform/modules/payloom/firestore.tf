module "firestore" {
  source = "../firestore"

  project_id        = var.project_id
  location          = coalesce(var.firestore_location, local.region)
  rules_file        = "${path.module}/../../firestore/firestore.rules"
  indexes_file      = "${path.module}/../../firestore/firestore.indexes.json"
  ttl_fields        = var.ttl_fields
  delete_protection = var.deletion_protection

  depends_on = [google_project_service.apis]
}
