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

{{/*
The webhook's objectSelector: webhook.objectSelector as given, else labelSelector (the
controller's --label-selector) translated into a LabelSelector, so that each shard's webhook
sees only its own Connectors. Empty when both are empty.
*/}}
{{- define "connector-controller.webhookObjectSelector" -}}
{{- if .Values.webhook.objectSelector }}
{{- toYaml .Values.webhook.objectSelector }}
{{- else if .Values.labelSelector }}
{{- $sel := .Values.labelSelector }}
{{- $exprs := list }}
{{- range $raw := regexFindAll "[^,(]+(\\([^)]*\\))?" $sel -1 }}
{{- $t := trim $raw }}
{{- if regexMatch "^!\\s*[A-Za-z0-9./_-]+$" $t }}
{{- $exprs = append $exprs (dict "key" (trim (trimPrefix "!" $t)) "operator" "DoesNotExist") }}
{{- else if regexMatch "^[A-Za-z0-9./_-]+\\s+(in|notin)\\s*\\(.*\\)$" $t }}
{{- $key := regexReplaceAll "^([A-Za-z0-9./_-]+)\\s+(in|notin)\\s*\\((.*)\\)$" $t "${1}" }}
{{- $op := regexReplaceAll "^([A-Za-z0-9./_-]+)\\s+(in|notin)\\s*\\((.*)\\)$" $t "${2}" }}
{{- $vals := list }}
{{- range $v := splitList "," (regexReplaceAll "^([A-Za-z0-9./_-]+)\\s+(in|notin)\\s*\\((.*)\\)$" $t "${3}") }}
{{- $vals = append $vals (trim $v) }}
{{- end }}
{{- $exprs = append $exprs (dict "key" $key "operator" (ternary "In" "NotIn" (eq $op "in")) "values" $vals) }}
{{- else if regexMatch "^[A-Za-z0-9./_-]+\\s*!=\\s*[A-Za-z0-9._-]*$" $t }}
{{- $parts := regexSplit "\\s*!=\\s*" $t 2 }}
{{- $exprs = append $exprs (dict "key" (index $parts 0) "operator" "NotIn" "values" (list (index $parts 1))) }}
{{- else if regexMatch "^[A-Za-z0-9./_-]+\\s*==?\\s*[A-Za-z0-9._-]*$" $t }}
{{- $parts := regexSplit "\\s*==?\\s*" $t 2 }}
{{- $exprs = append $exprs (dict "key" (index $parts 0) "operator" "In" "values" (list (index $parts 1))) }}
{{- else if regexMatch "^[A-Za-z0-9./_-]+$" $t }}
{{- $exprs = append $exprs (dict "key" $t "operator" "Exists") }}
{{- else }}
{{- fail (printf "labelSelector %q: cannot translate %q into the webhook's objectSelector; set webhook.objectSelector" $sel $t) }}
{{- end }}
{{- end }}
{{- toYaml (dict "matchExpressions" $exprs) }}
{{- end }}
{{- end }}

{{/* Where a metrics serving certificate Secret is mounted (--metrics-cert-dir). */}}
{{- define "connector-controller.metricsCertDir" -}}
/tmp/k8s-metrics-server/serving-certs
{{- end }}
