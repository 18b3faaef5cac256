output "kserve_version" {
  description = "Installed KServe version."
  value       = helm_release.kserve.version
}

output "deployment_mode" {
  description = "Default InferenceService deployment mode of the installation."
  value       = var.deployment_mode
}
