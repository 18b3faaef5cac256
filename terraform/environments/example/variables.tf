variable "project_id" {
  description = "Existing GCP project to deploy into (billing enabled)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "region" {
  description = "Region of the cluster, buckets, registry and Dataflow jobs."
  type        = string
  default     = "europe-west1"
}

variable "gpu_zones" {
  description = "Zones of the region that offer the GPU type (GKE node_locations); empty: the region's defaults."
  type        = list(string)
  default     = ["europe-west1-b", "europe-west1-c"]
}

variable "gpu_accelerator_type" {
  description = "GPU of the predictor pool; the chart's predictor.gpu.accelerator must match."
  type        = string
  default     = "nvidia-l4"
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU pool (g2-standard-* for L4)."
  type        = string
  default     = "g2-standard-8"
}

variable "gpu_max_nodes" {
  description = "Upper bound of the GPU pool per zone (it scales from 0)."
  type        = number
  default     = 2
}

variable "master_authorized_networks" {
  description = "CIDRs allowed to reach the GKE control plane (your workstation or CI egress)."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []
}

variable "trigger_host" {
  description = "DNS name of the trigger (an A record to the ingress_ip output). Its https URL is the push endpoint and the OIDC audience."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$", var.trigger_host))
    error_message = "trigger_host must be a DNS name such as trigger.example.org."
  }
}

variable "products_host" {
  description = "DNS name of the products service (map page, STAC, tiles)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$", var.products_host))
    error_message = "products_host must be a DNS name such as maps.example.org."
  }
}

variable "push_enabled" {
  description = "Create the Pub/Sub push subscription to the trigger. Leave false until the trigger answers on https://<trigger_host>/ (DNS + certificate active)."
  type        = bool
  default     = false
}

variable "k8s_namespace" {
  description = "Namespace of the tessera Helm release."
  type        = string
  default     = "tessera"
}

variable "helm_release_name" {
  description = "Helm release name of the chart (its ServiceAccounts are <release>-<component>)."
  type        = string
  default     = "tessera"
}

variable "ci_members" {
  description = "Who may push images, keyed by a static name, e.g. { cloudbuild = \"serviceAccount:...\" }."
  type        = map(string)
  default     = {}
}

variable "storage_audit_logs" {
  description = "Enable Cloud Audit data-access logs (DATA_READ, DATA_WRITE) for Cloud Storage: who read or wrote which object."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect the cluster against `terraform destroy`."
  type        = bool
  default     = true
}

variable "image_tag" {
  description = "Tag of the tessera images pushed to the registry (never latest: tags are immutable)."
  type        = string
  default     = "0.1.0"
  validation {
    condition     = var.image_tag != "latest" && can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid, pinned Docker tag (not latest)."
  }
}
