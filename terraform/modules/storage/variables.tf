variable "project_id" {
  description = "GCP project that owns the buckets."
  type        = string
}

variable "location" {
  description = "Bucket location (a region such as europe-west1, next to the cluster and Dataflow)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the bucket names, usually the project id (bucket names are global)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 characters of lowercase letters, digits and dashes."
  }
}

variable "landing_retention_days" {
  description = "Days a scene stays in the landing bucket before deletion (its outputs live in results)."
  type        = number
  default     = 90
  validation {
    condition     = var.landing_retention_days >= 7
    error_message = "Keep scenes at least 7 days so replays and reruns can read them."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept (recovery window)."
  type        = number
  default     = 30
  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete non-empty buckets. Keep false outside throwaway projects."
  type        = bool
  default     = false
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key for CMEK on all buckets; null keeps Google-managed encryption."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels put on every bucket."
  type        = map(string)
  default     = {}
}
