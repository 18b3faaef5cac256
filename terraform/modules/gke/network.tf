# A VPC of its own: one subnet for nodes (and Dataflow workers, which run with private
# IPs only), secondary ranges for pods and services, Private Google Access for GCS and
# Artifact Registry, and Cloud NAT for the few public images (KServe, cert-manager).

resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = "${var.name}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

resource "google_compute_subnetwork" "this" {
  # checkov:skip=CKV_GCP_76: The VPC is IPv4-only; Private Google Access for IPv6 has nothing to serve.
  project                  = var.project_id
  name                     = "${var.name}-nodes"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Dataflow workers talk to each other on 12345-12346 (shuffle, data plane).
resource "google_compute_firewall" "dataflow_internal" {
  project   = var.project_id
  name      = "${var.name}-dataflow-internal"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 1000

  allow {
    protocol = "tcp"
    ports    = ["12345-12346"]
  }

  source_tags = ["dataflow"]
  target_tags = ["dataflow"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "this" {
  project = var.project_id
  name    = "${var.name}-router"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  project                            = var.project_id
  name                               = "${var.name}-nat"
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Static address for the chart's Ingress (kubernetes.io/ingress.global-static-ip-name),
# so DNS and the Pub/Sub push endpoint can be set before the first helm install.
resource "google_compute_global_address" "ingress" {
  project = var.project_id
  name    = "${var.name}-ingress"
}

# A private control plane reaches nodes on 443 and 10250 only; KServe's admission
# webhook listens on 9443 and must be reachable or every InferenceService is refused.
resource "google_compute_firewall" "control_plane_webhooks" {
  project       = var.project_id
  name          = "${var.name}-control-plane-webhooks"
  network       = google_compute_network.this.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = [var.master_ipv4_cidr_block]

  allow {
    protocol = "tcp"
    ports    = ["8443", "9443"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
