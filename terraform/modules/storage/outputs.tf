output "landing_bucket" {
  description = "Bucket where scenes arrive; its OBJECT_FINALIZE events start the pipeline."
  value       = google_storage_bucket.this["landing"].name
}

output "results_bucket" {
  description = "Bucket for maps, mosaics, the STAC catalog and model bundles."
  value       = google_storage_bucket.this["results"].name
}

output "state_bucket" {
  description = "Bucket for the trigger ledger, quarantine records and Dataflow temp files."
  value       = google_storage_bucket.this["state"].name
}
