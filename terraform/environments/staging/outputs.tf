output "api_url" {
  value = module.payloom.api_url
}

output "function_urls" {
  value = module.payloom.function_urls
}

output "queues" {
  value = module.payloom.queues
}

output "topics" {
  value = module.payloom.topics
}
