output "registry_url" {
  description = "Image prefix for docker push and the chart's images.registry."
  value       = "${var.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.this.repository_id}"
}
