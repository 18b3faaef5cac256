variable "project_id" {
  description = "GCP project of the repository."
  type        = string
}

variable "location" {
  description = "Artifact Registry location (a region, next to the cluster)."
  type        = string
}

variable "repository_id" {
  description = "Repository id; images are <location>-docker.pkg.dev/<project>/<id>/<image>:<tag>."
  type        = string
  default     = "tessera"
}

variable "reader_members" {
  description = "Members allowed to pull, keyed by a static name (GKE nodes, Dataflow workers): { gke_nodes = \"serviceAccount:...\" }."
  type        = map(string)
  default     = {}
}

variable "writer_members" {
  description = "Members allowed to push (CI, Cloud Build), keyed by a static name."
  type        = map(string)
  default     = {}
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key (CMEK); null keeps Google-managed encryption."
  type        = string
  default     = null
}

variable "untagged_retention_days" {
  description = "Untagged image versions older than this are cleaned up."
  type        = number
  default     = 14
}

variable "labels" {
  description = "Labels on the repository."
  type        = map(string)
  default     = {}
}
