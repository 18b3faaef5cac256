{{/* Names ------------------------------------------------------------------ */}}

{{- define "tessera.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "tessera.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "tessera.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "tessera.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels: call with (dict "ctx" $ "component" "trigger") */}}
{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tessera.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tessera.labels" -}}
{{ include "tessera.selectorLabels" . }}
app.kubernetes.io/part-of: tessera
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Images: (dict "ctx" $ "image" .Values.images.worker) --------------------- */}}
{{- define "tessera.image" -}}
{{- $registry := required "images.registry is required: terraform output registry_url" .ctx.Values.images.registry -}}
{{- if .image.digest -}}
{{- printf "%s/%s@%s" $registry .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s/%s:%s" $registry .image.repository .image.tag -}}
{{- end -}}
{{- end -}}

{{/* Site values that have no safe default ----------------------------------- */}}
{{- define "tessera.resultsBucket" -}}
{{- required "buckets.results is required: terraform output results_bucket" .Values.buckets.results -}}
{{- end -}}

{{- define "tessera.stateBucket" -}}
{{- required "buckets.state is required: terraform output state_bucket" .Values.buckets.state -}}
{{- end -}}

{{- define "tessera.gsa" -}}
{{- $sa := index .ctx.Values.serviceAccounts .component -}}
{{- required (printf "serviceAccounts.%s.gcpServiceAccount is required: terraform output %s_service_account" .component .component) $sa.gcpServiceAccount -}}
{{- end -}}

{{- define "tessera.predictorName" -}}
{{- printf "%s-model" (include "tessera.fullname" .) -}}
{{- end -}}

{{/* In-cluster V2 endpoint of the predictor: KServe RawDeployment creates the
     Service <isvc>-predictor on port 80 -> container 8080. */}}
{{- define "tessera.kserveUrl" -}}
{{- if .Values.jobTemplate.kserveUrl -}}
{{- .Values.jobTemplate.kserveUrl -}}
{{- else -}}
{{- printf "http://%s-predictor.%s.svc.cluster.local" (include "tessera.predictorName" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Restricted pod security (Pod Security Standard "restricted") ----------- */}}
{{- define "tessera.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tessera.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* GDAL, TensorFlow and Beam write scratch files; the root filesystem is read-only. */}}
{{- define "tessera.scratchEnv" -}}
- name: TMPDIR
  value: /tmp
- name: HOME
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: CPL_TMPDIR
  value: /tmp
{{- end -}}

{{- define "tessera.scratchMount" -}}
- name: scratch
  mountPath: /tmp
{{- end -}}

{{/* (dict "size" "2Gi") */}}
{{- define "tessera.scratchVolume" -}}
- name: scratch
  emptyDir:
    sizeLimit: {{ .size }}
{{- end -}}

{{- define "tessera.siteEnv" -}}
- name: GOOGLE_CLOUD_PROJECT
  value: {{ required "gcp.project is required: terraform output project_id" .Values.gcp.project | quote }}
{{- end -}}

{{/* HTTP probes for the FastAPI services (GET /healthz on 8080). */}}
{{- define "tessera.httpProbes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 5
  failureThreshold: 24
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* HPA + PDB of a Deployment: (dict "ctx" $ "component" "trigger" "cfg" .Values.trigger) */}}
{{- define "tessera.hpaPdb" -}}
{{- $name := printf "%s-%s" (include "tessera.fullname" .ctx) .component -}}
{{- with .cfg.autoscaling }}
{{- if .enabled }}
{{- if gt (int .minReplicas) (int .maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas must be <= maxReplicas" $.component) }}
{{- end }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ $.ctx.Release.Namespace }}
  labels:
    {{- include "tessera.labels" (dict "ctx" $.ctx "component" $.component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ .minReplicas }}
  maxReplicas: {{ .maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}
{{- if .cfg.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "tessera.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
spec:
  minAvailable: {{ .cfg.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "tessera.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end }}
{{- end -}}

{{/* Egress every tessera pod needs -------------------------------------------- */}}
{{- define "tessera.dnsEgress" -}}
# Cluster DNS (kube-dns) and NodeLocal DNSCache.
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
    - ipBlock:
        cidr: 169.254.20.10/32
{{- end -}}

{{- define "tessera.egressBase" -}}
{{ include "tessera.dnsEgress" . }}
# GKE metadata server: Workload Identity tokens (80; 988 under Dataplane V2).
- ports:
    - port: 80
      protocol: TCP
  to:
    - ipBlock:
        cidr: 169.254.169.254/32
- ports:
    - port: 988
      protocol: TCP
  to:
    - ipBlock:
        cidr: 169.254.169.252/32
{{- if not .Values.networkPolicy.googleApisCidrs }}
{{- fail "networkPolicy.googleApisCidrs must list at least one range (an empty `to` would allow all)" }}
{{- end }}
# Google APIs (GCS, IAM credentials), HTTPS only.
- ports:
    - port: 443
      protocol: TCP
  to:
    {{- range .Values.networkPolicy.googleApisCidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
{{- end -}}

{{/* Arguments every infer Job gets after `--scenes/--output`: the predictor, then the
     Beam options, as a YAML list. */}}
{{- define "tessera.jobArgs" -}}
{{- if .Values.predictor.enabled }}
- --inference=kserve
- {{ printf "--kserve-url=%s" (include "tessera.kserveUrl" .) | quote }}
{{- end }}
{{- range .Values.jobTemplate.beamArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Pods of infer Jobs, whether the trigger's launcher built them (labels
     app.kubernetes.io/name=tessera, component=infer, set in
     services/trigger/launchers.py) or they came from the job template. */}}
{{- define "tessera.inferSelector" -}}
app.kubernetes.io/name: tessera
app.kubernetes.io/component: infer
{{- end -}}
