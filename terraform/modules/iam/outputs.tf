output "trigger_service_account" {
  description = "E-mail of the trigger's Google service account (chart serviceAccounts.trigger)."
  value       = google_service_account.this["trigger"].email
}

output "products_service_account" {
  description = "E-mail of the products service's Google service account."
  value       = google_service_account.this["products"].email
}

output "worker_service_account" {
  description = "E-mail of the Beam worker account (Dataflow --service_account_email, chart serviceAccounts.worker)."
  value       = google_service_account.this["worker"].email
}

output "predictor_service_account" {
  description = "E-mail of the KServe predictor's Google service account."
  value       = google_service_account.this["predictor"].email
}

output "push_invoker_service_account" {
  description = "E-mail Pub/Sub signs push tokens as; the trigger may require it."
  value       = google_service_account.this["invoker"].email
}
