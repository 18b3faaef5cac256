# Docker repository for the worker and predictor images. Tags are immutable, which is
# what makes imagePullPolicy IfNotPresent in the chart safe.
resource "google_artifact_registry_repository" "this" {
  # checkov:skip=CKV_GCP_84: CMEK is opt-in through var.kms_key_name; the images hold open-source code and no data.
  project       = var.project_id
  location      = var.location
  repository_id = var.repository_id
  description   = "tessera container images (worker, predictor)"
  format        = "DOCKER"
  kms_key_name  = var.kms_key_name
  labels        = var.labels

  docker_config {
    immutable_tags = true
  }

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "${var.untagged_retention_days * 86400}s"
    }
  }
}

resource "google_artifact_registry_repository_iam_member" "reader" {
  for_each = var.reader_members

  project    = var.project_id
  location   = var.location
  repository = google_artifact_registry_repository.this.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}

resource "google_artifact_registry_repository_iam_member" "writer" {
  for_each = var.writer_members

  project    = var.project_id
  location   = var.location
  repository = google_artifact_registry_repository.this.name
  role       = "roles/artifactregistry.writer"
  member     = each.value
}
