variable "project_id" {
  type = string
}

variable "location" {
  description = "Firestore location, e.g. europe-west1 or eur3. Cannot change after creation."
  type        = string
}

variable "rules_file" {
  description = "Path of firestore.rules (deny all: the backend uses the Admin SDK only)."
  type        = string
}

variable "indexes_file" {
  description = "Path of firestore.indexes.json (Firebase CLI format: {indexes: [...]})."
  type        = string
}

variable "ttl_fields" {
  description = "Collection group => timestamp field after which Firestore deletes the document."
  type        = map(string)
  default     = {}
}

variable "delete_protection" {
  type    = bool
  default = true
}
