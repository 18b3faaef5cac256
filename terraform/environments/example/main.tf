# From an empty project to a cluster ready for `helm install tessera`: APIs, buckets,
# event plumbing, network + private GKE with a GPU pool, registry, IAM, KServe.

locals {
  labels = {
    app         = "tessera"
    environment = "example"
  }
  apis = [
    "artifactregistry.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "dataflow.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
    "binaryauthorization.googleapis.com",
  ]
  trigger_url = "https://${var.trigger_host}/"
}

resource "google_project_service" "this" {
  for_each = toset(local.apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

resource "google_project_iam_audit_config" "storage" {
  count = var.storage_audit_logs ? 1 : 0

  project = var.project_id
  service = "storage.googleapis.com"
  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

module "storage" {
  source = "../../modules/storage"

  project_id  = var.project_id
  location    = var.region
  name_prefix = var.project_id
  labels      = local.labels

  depends_on = [google_project_service.this]
}

module "gke" {
  source = "../../modules/gke"

  project_id                 = var.project_id
  region                     = var.region
  name                       = "tessera"
  node_locations             = var.gpu_zones
  gpu_accelerator_type       = var.gpu_accelerator_type
  gpu_machine_type           = var.gpu_machine_type
  gpu_max_nodes              = var.gpu_max_nodes
  master_authorized_networks = var.master_authorized_networks
  deletion_protection        = var.deletion_protection
  labels                     = local.labels

  depends_on = [google_project_service.this]
}

module "iam" {
  source = "../../modules/iam"

  project_id                 = var.project_id
  workload_pool              = module.gke.workload_pool
  k8s_namespace              = var.k8s_namespace
  k8s_service_account_prefix = var.helm_release_name
  landing_bucket             = module.storage.landing_bucket
  results_bucket             = module.storage.results_bucket
  state_bucket               = module.storage.state_bucket
}

module "registry" {
  source = "../../modules/registry"

  project_id = var.project_id
  location   = var.region
  labels     = local.labels
  reader_members = {
    gke_nodes       = "serviceAccount:${module.gke.node_service_account}"
    dataflow_worker = "serviceAccount:${module.iam.worker_service_account}"
  }
  writer_members = var.ci_members

  depends_on = [google_project_service.this]
}

module "pubsub" {
  source = "../../modules/pubsub"

  project_id         = var.project_id
  landing_bucket     = module.storage.landing_bucket
  push_endpoint      = var.push_enabled ? local.trigger_url : ""
  push_audience      = local.trigger_url
  push_invoker_email = module.iam.push_invoker_service_account
  labels             = local.labels

  depends_on = [google_project_service.this]
}

module "kserve" {
  source = "../../modules/kserve"

  depends_on = [module.gke]
}
