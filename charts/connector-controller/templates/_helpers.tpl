{{/* Names, labels and small decisions shared by the templates. */}}

{{- define "connector-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "connector-controller.fullname" -}}
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

{{- define "connector-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "connector-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connector-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "connector-controller.labels" -}}
helm.sh/chart: {{ include "connector-controller.chart" . }}
{{ include "connector-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: connector-controller
{{- end }}

{{- define "connector-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "connector-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "connector-controller.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The embedded PGlite database is used when no external PostgreSQL Secret is given. */}}
{{- define "connector-controller.embeddedDatabase" -}}
{{- if not .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* An embedded database belongs to one process: one replica then. */}}
{{- define "connector-controller.replicas" -}}
{{- if include "connector-controller.embeddedDatabase" . }}1{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/* The Secret the controller creates once and keeps its HMAC fingerprint key in (a fixed name). */}}
{{- define "connector-controller.fingerprintKeySecret" -}}
connector-controller-fingerprint-key
{{- end }}

{{- define "connector-controller.webhookServiceName" -}}
{{- printf "%s-webhook" (include "connector-controller.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "connector-controller.webhookCertSecret" -}}
{{- default (printf "%s-webhook-tls" (include "connector-controller.fullname" .)) .Values.webhook.certSecretName }}
{{- end }}

{{/* Where the webhook's serving certificate is mounted (controller-runtime's default path). */}}
{{- define "connector-controller.webhookCertDir" -}}
/tmp/k8s-webhook-server/serving-certs
{{- end }}
