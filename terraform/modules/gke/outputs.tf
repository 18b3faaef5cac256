output "cluster_name" {
  description = "GKE cluster name (gcloud container clusters get-credentials)."
  value       = google_container_cluster.this.name
}

output "cluster_endpoint" {
  description = "Control plane endpoint, for the helm/kubernetes providers."
  value       = google_container_cluster.this.endpoint
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "Base64 CA certificate of the control plane."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
  sensitive   = true
}

output "workload_pool" {
  description = "Workload Identity pool (PROJECT.svc.id.goog); depends on the cluster, which creates it."
  value       = google_container_cluster.this.workload_identity_config[0].workload_pool
}

output "master_ipv4_cidr_block" {
  description = "Control plane range, for the chart's networkPolicy.apiServerCidrs."
  value       = var.master_ipv4_cidr_block
}

output "network" {
  description = "VPC self link."
  value       = google_compute_network.this.self_link
}

output "subnetwork" {
  description = "Subnet self link (Dataflow --subnetwork)."
  value       = google_compute_subnetwork.this.self_link
}

output "node_service_account" {
  description = "E-mail of the nodes' service account (needs Artifact Registry read)."
  value       = google_service_account.nodes.email
}

output "ingress_ip_name" {
  description = "Name of the global static IP for the chart's Ingress annotation."
  value       = google_compute_global_address.ingress.name
}

output "ingress_ip" {
  description = "The Ingress address: point the trigger and products DNS names here."
  value       = google_compute_global_address.ingress.address
}
