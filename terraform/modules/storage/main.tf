# Three buckets: scenes land in `landing` (a finalised object starts the pipeline),
# maps and the STAC catalog go to `results`, the trigger's ledger and quarantine
# records go to `state`. All private: uniform bucket-level access, public access
# prevention enforced, versioning for recovery, lifecycle rules to bound the cost.

locals {
  buckets = {
    landing = {
      purpose     = "scene arrivals"
      delete_days = var.landing_retention_days
    }
    results = {
      purpose     = "maps, mosaics, STAC catalog, model bundles"
      delete_days = null
    }
    state = {
      purpose     = "trigger ledger, quarantine records, Dataflow temp"
      delete_days = null
    }
  }
}

resource "google_storage_bucket" "this" {
  # checkov:skip=CKV_GCP_62: Access is audited with Cloud Audit Logs data-access logs (environments/example enables DATA_READ/DATA_WRITE for storage.googleapis.com); legacy usage-log buckets would add a fourth bucket that cannot log itself.
  for_each = local.buckets

  project                     = var.project_id
  name                        = "${var.name_prefix}-${each.key}"
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = merge(var.labels, { purpose = each.key })

  versioning {
    enabled = true
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  # Old versions are for recovery only.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Parallel composite / resumable uploads that never finished.
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.delete_days == null ? [] : [each.value.delete_days]
    content {
      condition {
        age        = lifecycle_rule.value
        with_state = "LIVE"
      }
      action {
        type = "Delete"
      }
    }
  }

  dynamic "lifecycle_rule" {
    for_each = each.key == "results" ? [1] : []
    content {
      # Per-tile intermediates are rebuilt on demand; keep them cheap after a month.
      condition {
        age            = 30
        matches_prefix = ["tiles/"]
      }
      action {
        type          = "SetStorageClass"
        storage_class = "NEARLINE"
      }
    }
  }
}
