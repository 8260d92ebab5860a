{{/* Chart name, truncated to the 63 characters Kubernetes allows in a label value. */}}
{{- define "readiness-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "readiness-exporter.fullname" -}}
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

{{- define "readiness-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "readiness-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "readiness-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "readiness-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "readiness-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "readiness-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: the digest wins over the tag. */}}
{{- define "readiness-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* RBAC rules for the check kinds the checklist uses, then the extra rules, as a YAML list. */}}
{{- define "readiness-exporter.rbacRules" -}}
{{- $kinds := dict }}
{{- $rules := list }}
{{- range $kind, $kindRules := .Values.rbac.rulesByKind }}
{{- range $.Values.config.checks }}
{{- if and (hasKey . $kind) (not (hasKey $kinds $kind)) }}
{{- $_ := set $kinds $kind true }}
{{- $rules = concat $rules $kindRules }}
{{- end }}
{{- end }}
{{- end }}
{{- $rules = concat $rules .Values.rbac.extraRules }}
{{- if $rules }}
{{- toYaml $rules }}
{{- end }}
{{- end }}

{{/* Whether the pod needs a Kubernetes API token: some RBAC rule is granted. */}}
{{- define "readiness-exporter.needsApiToken" -}}
{{- if and .Values.rbac.create (include "readiness-exporter.rbacRules" .) }}true{{ end }}
{{- end }}
