# cert-manager, then KServe's CRDs and controller, in RawDeployment mode: predictors
# become plain Deployments + Services + HPAs, no Knative or Istio to run.

resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  namespace        = "cert-manager"
  create_namespace = true
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.cert_manager_version
  atomic           = true
  timeout          = 600

  set {
    name  = "crds.enabled"
    value = "true"
  }
}

resource "helm_release" "kserve_crd" {
  name             = "kserve-crd"
  namespace        = "kserve"
  create_namespace = true
  repository       = "oci://ghcr.io/kserve/charts"
  chart            = "kserve-crd"
  version          = var.kserve_version
  atomic           = true

  depends_on = [helm_release.cert_manager]
}

resource "helm_release" "kserve" {
  name       = "kserve"
  namespace  = "kserve"
  repository = "oci://ghcr.io/kserve/charts"
  chart      = "kserve"
  version    = var.kserve_version
  atomic     = true
  timeout    = 600

  set {
    name  = "kserve.controller.deploymentMode"
    value = var.deployment_mode
  }

  depends_on = [helm_release.kserve_crd]
}
