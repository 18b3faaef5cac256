variable "cert_manager_version" {
  description = "cert-manager chart version (KServe's webhooks need its certificates)."
  type        = string
  default     = "v1.16.2"
}

variable "kserve_version" {
  description = "KServe chart version (kserve-crd and kserve, oci://ghcr.io/kserve/charts)."
  type        = string
  default     = "v0.15.2"
  validation {
    condition     = can(regex("^v0\\.(1[4-9]|[2-9][0-9])\\.[0-9]+$", var.kserve_version))
    error_message = "kserve_version must be v0.14.0 or newer (RawDeployment + custom predictor env used by the chart)."
  }
}

variable "deployment_mode" {
  description = "Default InferenceService mode. RawDeployment needs neither Knative nor Istio."
  type        = string
  default     = "RawDeployment"
  validation {
    condition     = contains(["RawDeployment", "Serverless"], var.deployment_mode)
    error_message = "deployment_mode must be RawDeployment or Serverless (Serverless also needs Knative and Istio)."
  }
}
