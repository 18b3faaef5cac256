output "topic" {
  description = "Topic of landing-bucket OBJECT_FINALIZE notifications."
  value       = google_pubsub_topic.scenes.id
}

output "dead_letter_topic" {
  description = "Topic receiving events the trigger could not accept after max_delivery_attempts."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead-lettered events for inspection and replay."
  value       = google_pubsub_subscription.dead_letter.id
}

output "push_subscription" {
  description = "Push subscription to the trigger, or null before push_endpoint is set."
  value       = try(google_pubsub_subscription.trigger_push[0].id, null)
}
