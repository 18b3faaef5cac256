variable "project_id" {
  description = "GCP project of the topics and subscriptions."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of topic and subscription names."
  type        = string
  default     = "tessera"
}

variable "landing_bucket" {
  description = "Bucket whose finalised objects are announced on the scenes topic."
  type        = string
}

variable "object_name_prefix" {
  description = "Only objects under this prefix raise events (empty: the whole bucket)."
  type        = string
  default     = ""
}

variable "push_endpoint" {
  description = "HTTPS URL of the trigger service (POST /). Empty: no push subscription yet (first apply, before the ingress exists)."
  type        = string
  default     = ""
  validation {
    condition     = var.push_endpoint == "" || can(regex("^https://", var.push_endpoint))
    error_message = "Pub/Sub pushes to HTTPS endpoints only: push_endpoint must start with https://."
  }
}

variable "push_audience" {
  description = "Audience of the OIDC tokens on each push; the trigger checks it (--audience). Empty: the push endpoint."
  type        = string
  default     = ""
}

variable "push_invoker_email" {
  description = "Service account whose OIDC identity signs the pushes (dedicated, no other role)."
  type        = string
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to the dead-letter topic (Pub/Sub allows 5-100)."
  type        = number
  default     = 10
  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "ack_deadline_seconds" {
  description = "Time the trigger has to answer a push (admission reads the raster header)."
  type        = number
  default     = 60
  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be between 10 and 600."
  }
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key for the topics (CMEK); null keeps Google-managed encryption."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels on topics and subscriptions."
  type        = map(string)
  default     = {}
}
