variable "project_id" {
  description = "GCP project of the cluster and its network."
  type        = string
}

variable "region" {
  description = "Region of the regional cluster, its subnet and Cloud NAT."
  type        = string
}

variable "name" {
  description = "Cluster name; also the prefix of the network, subnet, router and node service account."
  type        = string
  default     = "tessera"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,20}$", var.name))
    error_message = "name must be 3-21 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "node_locations" {
  description = "Zones of the node pools; pick zones that offer gpu_accelerator_type. Empty: the region's default zones."
  type        = list(string)
  default     = []
}

variable "subnet_cidr" {
  description = "Primary range of the nodes' subnet (also used by Dataflow workers with private IPs)."
  type        = string
  default     = "10.10.0.0/20"
  validation {
    condition     = can(cidrnetmask(var.subnet_cidr))
    error_message = "subnet_cidr must be an IPv4 CIDR block."
  }
}

variable "pods_cidr" {
  description = "Secondary range for pod IPs (VPC-native cluster)."
  type        = string
  default     = "10.20.0.0/14"
  validation {
    condition     = can(cidrnetmask(var.pods_cidr))
    error_message = "pods_cidr must be an IPv4 CIDR block."
  }
}

variable "services_cidr" {
  description = "Secondary range for Service IPs."
  type        = string
  default     = "10.24.0.0/20"
  validation {
    condition     = can(cidrnetmask(var.services_cidr))
    error_message = "services_cidr must be an IPv4 CIDR block."
  }
}

variable "master_ipv4_cidr_block" {
  description = "/28 for the private control plane endpoint; the chart's networkPolicy.apiServerCidrs."
  type        = string
  default     = "172.16.0.0/28"
  validation {
    condition     = can(cidrnetmask(var.master_ipv4_cidr_block)) && endswith(var.master_ipv4_cidr_block, "/28")
    error_message = "master_ipv4_cidr_block must be a /28."
  }
}

variable "master_authorized_networks" {
  description = "CIDRs allowed to reach the control plane (operators, CI). Keep it short."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []
}

variable "enable_private_endpoint" {
  description = "Control plane reachable on its private IP only (needs a bastion or VPN for kubectl/helm)."
  type        = bool
  default     = false
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"
  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "cpu_machine_type" {
  description = "Machine type of the CPU pool (services, Beam jobs on Kubernetes, KServe and cert-manager)."
  type        = string
  default     = "e2-standard-8"
}

variable "cpu_min_nodes" {
  description = "Minimum CPU nodes per zone."
  type        = number
  default     = 1
}

variable "cpu_max_nodes" {
  description = "Maximum CPU nodes per zone."
  type        = number
  default     = 5
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU pool; must fit the accelerator (g2-* for nvidia-l4, n1-* for nvidia-tesla-t4)."
  type        = string
  default     = "g2-standard-8"
}

variable "gpu_accelerator_type" {
  description = "GPU type; the chart's predictor.gpu.accelerator must match (cloud.google.com/gke-accelerator)."
  type        = string
  default     = "nvidia-l4"
  validation {
    condition     = can(regex("^nvidia-", var.gpu_accelerator_type))
    error_message = "gpu_accelerator_type must be an NVIDIA accelerator, e.g. nvidia-l4 or nvidia-tesla-t4."
  }
}

variable "gpu_count" {
  description = "GPUs per GPU node."
  type        = number
  default     = 1
}

variable "gpu_max_nodes" {
  description = "Maximum GPU nodes per zone; the pool scales from 0."
  type        = number
  default     = 2
  validation {
    condition     = var.gpu_max_nodes >= 1
    error_message = "gpu_max_nodes must be at least 1."
  }
}

variable "gpu_spot" {
  description = "Use Spot VMs for the GPU pool (cheaper, preemptible; the predictor PDB does not stop preemption)."
  type        = bool
  default     = false
}

variable "security_group" {
  description = "Google Group for RBAC (gke-security-groups@DOMAIN); null disables Google Groups for RBAC."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels on the cluster and nodes."
  type        = map(string)
  default     = {}
}
