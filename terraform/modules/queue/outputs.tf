output "id" {
  description = "projects/<project>/locations/<region>/queues/<name>, the parent for CreateTask."
  value       = google_cloud_tasks_queue.this.id
}

output "name" {
  value = google_cloud_tasks_queue.this.name
}
