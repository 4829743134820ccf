output "api_url" {
  description = "Public base URL: https://<gateway host>/v1/<path>/..."
  value       = "https://${module.api_gateway.hostname}"
}

output "function_urls" {
  value = { for name, f in module.function : name => f.url }
}

output "function_service_accounts" {
  value = { for name, sa in module.function_sa : name => sa.email }
}

output "invoker_service_accounts" {
  value = { for kind, sa in module.invoker : kind => sa.email }
}

output "queues" {
  value = { for name, q in module.queue : name => q.id }
}

output "topics" {
  value = { for name, t in module.topic : name => t.id }
}

output "openapi" {
  value = module.api_gateway.openapi
}

output "task_targets" {
  description = "Each task function with the queue that feeds it and the URL tasks must target."
  value = {
    for name, f in local.task_functions : name => {
      queue = module.queue[f.queue].id
      url   = local.function_urls[name]
    }
  }
}

output "gateway_service_account" {
  value = module.invoker["http"].email
}
