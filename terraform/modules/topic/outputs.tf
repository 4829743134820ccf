output "id" {
  value = google_pubsub_topic.this.id
}

output "name" {
  value = google_pubsub_topic.this.name
}

output "dead_letter_topic" {
  value = google_pubsub_topic.dead_letter.id
}

output "subscriptions" {
  value = { for k, s in google_pubsub_subscription.push : k => s.id }
}
