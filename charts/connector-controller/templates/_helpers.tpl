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

{{/*
The catalog's (files/catalog) egressAllowlist entries, as JSON {"addresses": [...], "hosts": [...]}:
IP literals become /32 (/128) CIDRs (loopback needs none); host names cannot be expressed in a
NetworkPolicy and are listed for the cynodeai.io/egress-hosts annotation.
*/}}
{{- define "connector-controller.catalogEgress" -}}
{{- $addresses := list }}
{{- $hosts := list }}
{{- if .Values.catalog.enabled }}
{{- range $path, $_ := .Files.Glob "files/catalog/types/*.yaml" }}
{{- $type := fromYaml ($.Files.Get $path) }}
{{- range $v := $type.spec.versions }}
{{- range $h := ($v.egressAllowlist | default list) }}
{{- if regexMatch "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$" $h }}
{{- if not (hasPrefix "127." $h) }}{{ $addresses = append $addresses (printf "%s/32" $h) }}{{ end }}
{{- else if and (contains ":" $h) (regexMatch "^[0-9A-Fa-f:]+$" $h) }}
{{- if ne $h "::1" }}{{ $addresses = append $addresses (printf "%s/128" $h) }}{{ end }}
{{- else if ne $h "localhost" }}
{{- $hosts = append $hosts $h }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson (dict "addresses" (uniq $addresses) "hosts" (uniq $hosts)) }}
{{- end }}

{{/*
NetworkPolicyEgressRules to DNS, the API server, the external database, Vault and the
catalog's IP-literal hosts (networkPolicy.egress describes where they are), then `extra`.
Shared by the controller's and the gateway's NetworkPolicy. Argument: dict "root" $ "extra" list.
*/}}
{{- define "connector-controller.egressRules" -}}
{{- $root := .root }}
{{- $eg := $root.Values.networkPolicy.egress }}
{{- $catalog := include "connector-controller.catalogEgress" $root | fromJson }}
{{- if $eg.dns.enabled }}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - { port: 53, protocol: UDP }
    - { port: 53, protocol: TCP }
{{- end }}
# The Kubernetes API server.
- ports:
    {{- range $eg.apiServer.ports }}
    - { port: {{ . }}, protocol: TCP }
    {{- end }}
  {{- with $eg.apiServer.cidrs }}
  to:
    {{- range . }}
    - ipBlock: { cidr: {{ . | quote }} }
    {{- end }}
  {{- end }}
{{- if not (include "connector-controller.embeddedDatabase" $root) }}
# PostgreSQL.
- ports:
    - { port: {{ $eg.database.port }}, protocol: TCP }
  {{- with $eg.database.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
# Vault.
- ports:
    - { port: {{ $eg.vault.port }}, protocol: TCP }
  {{- with $eg.vault.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- if and $eg.catalogAddresses $catalog.addresses }}
# The catalog's IP-literal egressAllowlist entries (any port: the Connector's config picks it).
- to:
    {{- range $catalog.addresses }}
    - ipBlock: { cidr: {{ . | quote }} }
    {{- end }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The gateway (DESIGN.md §9): its own names, labels and settings. */}}
{{- define "connector-controller.gatewayFullname" -}}
{{- printf "%s-gateway" (include "connector-controller.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "connector-controller.gatewaySelectorLabels" -}}
{{ include "connector-controller.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "connector-controller.gatewayServiceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "connector-controller.gatewayFullname" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "connector-controller.gatewayTlsSecret" -}}
{{- default (printf "%s-tls" (include "connector-controller.gatewayFullname" .)) .Values.gateway.tls.certSecretName }}
{{- end }}

{{/* Where the gateway's serving certificate is mounted (--tls-cert-dir). */}}
{{- define "connector-controller.gatewayTlsDir" -}}
/tmp/connector-gateway/serving-certs
{{- end }}

{{/* The HMAC key the gateway's replicas sign approvals with (controller/src/kube/hmacKey.ts). */}}
{{- define "connector-controller.approvalKeySecret" -}}
connector-gateway-approval-key
{{- end }}

{{/*
Whether the gateway is rendered. It needs the external PostgreSQL it shares with the
controller: it cannot open the controller's embedded PGlite database (which belongs to the
controller's one process), so gateway.enabled without database.existingSecret is refused.
*/}}
{{- define "connector-controller.gatewayEnabled" -}}
{{- if .Values.gateway.enabled }}
{{- if include "connector-controller.embeddedDatabase" . }}
{{- fail "gateway.enabled=true needs an external PostgreSQL: set database.existingSecret to the Secret holding its URL (the controller uses the same one). The gateway runs as separate pods and cannot open the controller's embedded PGlite database, which belongs to the controller's single process; see docs/install.md (\"Move to an external PostgreSQL\")." }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}
