output "database" {
  value = google_firestore_database.this.name
}

output "indexes" {
  value = keys(local.indexes)
}
