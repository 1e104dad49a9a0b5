{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "ghl-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "ghl-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ghl-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ghl-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ghl-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ghl-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ghl-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ghl-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ghl-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The namespaces watched, as a JSON list: watchNamespaces plus the older single watchNamespace.
Empty: all namespaces.
*/}}
{{- define "ghl-operator.watchNamespaces" -}}
{{- $list := .Values.watchNamespaces | default list -}}
{{- if .Values.watchNamespace -}}
{{- $list = append $list .Values.watchNamespace -}}
{{- end -}}
{{- $list | uniq | toJson -}}
{{- end -}}

{{/*
The sandbox's pods: a name of their own, so the operator's selectors (Services,
NetworkPolicy, PodDisruptionBudget) never pick them, nor theirs the operator's.
*/}}
{{- define "ghl-operator.sandboxSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-sandbox" (include "ghl-operator.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ghl-operator.sandboxLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ghl-operator.sandboxSelectorLabels" . }}
app.kubernetes.io/component: sandbox
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The sandbox's in-cluster URL: what the examples name as baseUrl. */}}
{{- define "ghl-operator.sandboxUrl" -}}
{{- printf "http://%s-sandbox.%s.svc:8088" (include "ghl-operator.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/*
The base URLs the operator may send tokens to, as a JSON list: allowedBaseUrls (empty: GHL's
API host, the operator's own default) plus, with the sandbox, the sandbox's URL.
*/}}
{{- define "ghl-operator.allowedBaseUrls" -}}
{{- $list := .Values.allowedBaseUrls | default list -}}
{{- if .Values.sandbox.enabled -}}
{{- if not $list -}}
{{- $list = list "https://services.leadconnectorhq.com" -}}
{{- end -}}
{{- $list = append $list (include "ghl-operator.sandboxUrl" .) -}}
{{- end -}}
{{- $list | uniq | toJson -}}
{{- end -}}
