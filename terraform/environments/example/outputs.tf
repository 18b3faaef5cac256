output "project_id" {
  description = "Project id (chart gcp.project)."
  value       = var.project_id
}

output "region" {
  description = "Region of everything regional."
  value       = var.region
}

output "cluster_name" {
  description = "GKE cluster: gcloud container clusters get-credentials <name> --region <region>."
  value       = module.gke.cluster_name
}

output "landing_bucket" {
  description = "Upload scenes here (gs://<bucket>/...); each finalised object starts the pipeline."
  value       = module.storage.landing_bucket
}

output "results_bucket" {
  description = "Maps, mosaics, STAC catalog and model bundles."
  value       = module.storage.results_bucket
}

output "state_bucket" {
  description = "Trigger ledger, quarantine records, Dataflow temp."
  value       = module.storage.state_bucket
}

output "registry_url" {
  description = "Image prefix: docker push <registry_url>/tessera-worker:<tag>."
  value       = module.registry.registry_url
}

output "topic" {
  description = "Pub/Sub topic of landing-bucket notifications."
  value       = module.pubsub.topic
}

output "dead_letter_topic" {
  description = "Pub/Sub dead-letter topic."
  value       = module.pubsub.dead_letter_topic
}

output "trigger_service_account" {
  description = "Chart serviceAccounts.trigger.gcpServiceAccount."
  value       = module.iam.trigger_service_account
}

output "products_service_account" {
  description = "Chart serviceAccounts.products.gcpServiceAccount."
  value       = module.iam.products_service_account
}

output "worker_service_account" {
  description = "Chart serviceAccounts.worker.gcpServiceAccount; Dataflow --service_account_email."
  value       = module.iam.worker_service_account
}

output "predictor_service_account" {
  description = "Chart serviceAccounts.predictor.gcpServiceAccount."
  value       = module.iam.predictor_service_account
}

output "push_invoker_service_account" {
  description = "Identity in the OIDC tokens of Pub/Sub pushes."
  value       = module.iam.push_invoker_service_account
}

output "trigger_audience" {
  description = "Audience of push tokens (chart trigger.audience)."
  value       = local.trigger_url
}

output "master_ipv4_cidr_block" {
  description = "Chart networkPolicy.apiServerCidrs."
  value       = module.gke.master_ipv4_cidr_block
}

output "ingress_ip" {
  description = "Point the trigger_host and products_host DNS records here."
  value       = module.gke.ingress_ip
}

output "dataflow_options" {
  description = "Beam options for Dataflow runs: workers on private IPs in the cluster's subnet, as the worker account."
  value = join(" ", [
    "--runner=DataflowRunner",
    "--project=${var.project_id}",
    "--region=${var.region}",
    "--temp_location=gs://${module.storage.state_bucket}/dataflow/tmp",
    "--staging_location=gs://${module.storage.state_bucket}/dataflow/staging",
    "--service_account_email=${module.iam.worker_service_account}",
    "--no_use_public_ips",
    "--subnetwork=regions/${var.region}/subnetworks/${basename(module.gke.subnetwork)}",
    "--sdk_container_image=${module.registry.registry_url}/tessera-worker:${var.image_tag}",
  ])
}

output "helm_values" {
  description = "Site values for helm/tessera: terraform output -raw helm_values > site-values.yaml"
  value = yamlencode({
    images = {
      registry  = module.registry.registry_url
      worker    = { repository = "tessera-worker", tag = var.image_tag }
      predictor = { repository = "tessera-predictor", tag = var.image_tag }
    }
    gcp = { project = var.project_id }
    buckets = {
      landing = module.storage.landing_bucket
      results = module.storage.results_bucket
      state   = module.storage.state_bucket
    }
    serviceAccounts = {
      trigger   = { gcpServiceAccount = module.iam.trigger_service_account }
      products  = { gcpServiceAccount = module.iam.products_service_account }
      worker    = { gcpServiceAccount = module.iam.worker_service_account }
      predictor = { gcpServiceAccount = module.iam.predictor_service_account }
    }
    predictor = {
      storageUri = "gs://${module.storage.results_bucket}/models/urban/1"
      gpu        = { accelerator = var.gpu_accelerator_type }
    }
    trigger = {
      audience               = local.trigger_url
      allowedServiceAccounts = [module.iam.push_invoker_service_account]
    }
    ingress = {
      enabled      = true
      triggerHost  = var.trigger_host
      productsHost = var.products_host
      annotations = {
        "kubernetes.io/ingress.global-static-ip-name" = module.gke.ingress_ip_name
      }
    }
    networkPolicy = { apiServerCidrs = [module.gke.master_ipv4_cidr_block] }
  })
}
