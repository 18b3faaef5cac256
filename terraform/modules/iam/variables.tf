variable "project_id" {
  description = "GCP project of the service accounts."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the service account ids (6-30 characters in total)."
  type        = string
  default     = "tessera"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,14}$", var.name_prefix))
    error_message = "name_prefix must be 3-15 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "workload_pool" {
  description = "Workload Identity pool of the cluster (PROJECT.svc.id.goog), from the gke module."
  type        = string
}

variable "k8s_namespace" {
  description = "Namespace the Helm chart is installed in."
  type        = string
  default     = "tessera"
}

variable "k8s_service_account_prefix" {
  description = "Helm release full name: the chart names its ServiceAccounts <prefix>-trigger, -products, -worker, -predictor."
  type        = string
  default     = "tessera"
}

variable "landing_bucket" {
  description = "Landing bucket name."
  type        = string
}

variable "results_bucket" {
  description = "Results bucket name."
  type        = string
}

variable "state_bucket" {
  description = "State bucket name."
  type        = string
}

variable "trigger_launches_dataflow" {
  description = "Let the trigger submit Dataflow jobs (launcher=dataflow) running as the worker account."
  type        = bool
  default     = true
}
