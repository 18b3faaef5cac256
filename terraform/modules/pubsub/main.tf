# landing bucket --(OBJECT_FINALIZE, JSON_API_V1)--> scenes topic --(push, OIDC)--> trigger
# Undeliverable messages go to the dead-letter topic, kept by a pull subscription for
# inspection and replay.

data "google_project" "this" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "scenes" {
  # checkov:skip=CKV_GCP_83: CMEK is opt-in through var.kms_key_name; messages hold object metadata only (bucket, name, generation), never pixels.
  project                    = var.project_id
  name                       = "${var.name_prefix}-scenes"
  labels                     = var.labels
  kms_key_name               = var.kms_key_name
  message_retention_duration = "604800s"
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83: CMEK is opt-in through var.kms_key_name; messages hold object metadata only (bucket, name, generation), never pixels.
  project                    = var.project_id
  name                       = "${var.name_prefix}-scenes-dead-letter"
  labels                     = var.labels
  kms_key_name               = var.kms_key_name
  message_retention_duration = "604800s"
}

# The Cloud Storage service agent publishes the notifications.
resource "google_pubsub_topic_iam_member" "gcs_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.scenes.id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_notification" "landing" {
  bucket             = var.landing_bucket
  topic              = google_pubsub_topic.scenes.id
  payload_format     = "JSON_API_V1"
  event_types        = ["OBJECT_FINALIZE"]
  object_name_prefix = var.object_name_prefix == "" ? null : var.object_name_prefix
  custom_attributes = {
    source = "tessera-landing"
  }
  depends_on = [google_pubsub_topic_iam_member.gcs_publisher]
}

resource "google_pubsub_subscription" "trigger_push" {
  count = var.push_endpoint == "" ? 0 : 1

  project                    = var.project_id
  name                       = "${var.name_prefix}-scenes-trigger"
  topic                      = google_pubsub_topic.scenes.id
  labels                     = var.labels
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = "604800s"
  # Admission is idempotent on URL#generation, so redelivery is harmless.
  enable_exactly_once_delivery = false

  push_config {
    push_endpoint = var.push_endpoint
    oidc_token {
      service_account_email = var.push_invoker_email
      audience              = var.push_audience == "" ? var.push_endpoint : var.push_audience
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = "" # never expire for inactivity
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.pubsub_token_creator,
  ]
}

# Keeps dead-lettered events (a topic without subscription drops them).
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-scenes-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by the Pub/Sub service agent: it publishes to the dead-letter
# topic and acknowledges on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.id
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  count = var.push_endpoint == "" ? 0 : 1

  project      = var.project_id
  subscription = google_pubsub_subscription.trigger_push[0].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# The service agent mints the push OIDC tokens as the invoker account.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = "projects/${var.project_id}/serviceAccounts/${var.push_invoker_email}"
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}
