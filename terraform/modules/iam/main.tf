# One Google service account per role, no keys anywhere: pods reach theirs through
# Workload Identity, Dataflow workers run as theirs, Pub/Sub signs pushes as the
# invoker. Grants are bucket-scoped where they can be; no basic roles.

locals {
  accounts = {
    trigger   = "Trigger service: admits scenes, records the ledger, submits jobs"
    products  = "Products service: reads the STAC catalog and maps"
    worker    = "Beam workers (Dataflow and Kubernetes Jobs): read scenes, write maps"
    predictor = "KServe predictor: reads model bundles"
    invoker   = "Pub/Sub push identity (OIDC) towards the trigger; holds no role"
  }

  buckets = {
    landing = var.landing_bucket
    results = var.results_bucket
    state   = var.state_bucket
  }

  # account => { bucket => role }; keys are static so plans work before apply.
  bucket_roles = {
    trigger = {
      landing = "roles/storage.objectAdmin" # moves rejected scenes to quarantine/
      state   = "roles/storage.objectAdmin" # ledger markers (ifGenerationMatch=0)
      results = "roles/storage.objectViewer"
    }
    products = {
      results = "roles/storage.objectViewer"
    }
    worker = {
      landing = "roles/storage.objectViewer"
      results = "roles/storage.objectAdmin"
      state   = "roles/storage.objectAdmin" # Dataflow temp/staging
    }
    predictor = {
      results = "roles/storage.objectViewer" # models/
    }
  }

  bucket_bindings = merge([
    for account, grants in local.bucket_roles : {
      for bucket, role in grants : "${account}/${bucket}" => { account = account, bucket = local.buckets[bucket], role = role }
    }
  ]...)

  # Kubernetes ServiceAccounts of the chart, bound to their Google accounts.
  workload_identity = {
    for account in ["trigger", "products", "worker", "predictor"] :
    account => "serviceAccount:${var.workload_pool}[${var.k8s_namespace}/${var.k8s_service_account_prefix}-${account}]"
  }
}

resource "google_service_account" "this" {
  for_each = local.accounts

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "tessera ${each.key}"
  description  = each.value
}

resource "google_storage_bucket_iam_member" "this" {
  for_each = local.bucket_bindings

  bucket = each.value.bucket
  role   = each.value.role
  member = google_service_account.this[each.value.account].member
}

resource "google_project_iam_member" "worker_dataflow" {
  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = google_service_account.this["worker"].member
}

resource "google_project_iam_member" "logging" {
  for_each = toset(["trigger", "products", "worker", "predictor"])

  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.this[each.key].member
}

resource "google_project_iam_member" "trigger_dataflow" {
  # checkov:skip=CKV_GCP_49: Dataflow jobs have no resource-level IAM, so submitting needs dataflow.developer on the project; the actAs half is granted on the worker account only (trigger_acts_as_worker), never project-wide.
  count = var.trigger_launches_dataflow ? 1 : 0

  project = var.project_id
  role    = "roles/dataflow.developer"
  member  = google_service_account.this["trigger"].member
}

# Submitting a Dataflow job that runs as the worker account needs actAs on that
# account only, not project-wide.
resource "google_service_account_iam_member" "trigger_acts_as_worker" {
  count = var.trigger_launches_dataflow ? 1 : 0

  service_account_id = google_service_account.this["worker"].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.this["trigger"].member
}

resource "google_service_account_iam_member" "workload_identity" {
  for_each = local.workload_identity

  service_account_id = google_service_account.this[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = each.value
}
