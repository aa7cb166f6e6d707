{{/*
Names and labels shared by every template.
*/}}

{{- define "stagegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stagegate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stagegate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that never change over a release's life: used in selectors. */}}
{{- define "stagegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stagegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stagegate.labels" -}}
helm.sh/chart: {{ include "stagegate.chart" . }}
{{ include "stagegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: stagegate
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "stagegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stagegate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "stagegate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "stagegate.serverKeySecretName" -}}
{{- default (printf "%s-server-key" (include "stagegate.fullname" .)) .Values.serverKey.existingSecret }}
{{- end }}

{{- define "stagegate.pvcName" -}}
{{- default (printf "%s-store" (include "stagegate.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
The permissions the controller needs on the objects it reconciles, in every
namespace it watches. Kept identical to tests/fixtures/rbac/controller-api-calls.txt
(the controller's recorded API calls); a test compares them both ways.

Secrets: the controller writes each ApiToken's Secret (create), notices a
deleted one to report SecretMissing, and reads the Secrets named by
`User.spec.passwordSecretRef` (get, list, watch). It never updates or
patches a Secret; it deletes only its own previous token Secret when a token
is rotated (with a uid + resourceVersion precondition), then creates the new
one. A written token Secret is garbage-collected through its owner reference. In cluster-wide mode this read access is cluster-wide
because ApiTokens and Users may live in any namespace; use `watchNamespaces`
to confine it.
*/}}
{{- define "stagegate.reconcileRules" -}}
- apiGroups: ["stagegate.dev"]
  resources: ["users", "accessbindings", "apitokens", "modelstagerequests", "accessdelegations"]
  verbs: ["list", "watch"]
# The cleanup finalizer (stage requests carry none).
- apiGroups: ["stagegate.dev"]
  resources: ["users", "accessbindings", "apitokens"]
  verbs: ["patch"]
- apiGroups: ["stagegate.dev"]
  resources: ["users/status", "accessbindings/status", "apitokens/status", "modelstagerequests/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
