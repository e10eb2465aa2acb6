{{/* Full name: the release name, plus the chart name unless the release name holds it. */}}
{{- define "vaultbridge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vaultbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vaultbridge.labels" -}}
{{ include "vaultbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "vaultbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vaultbridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vaultbridge.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The path-policy webhook: its Service, configuration and CA Secret names. */}}
{{- define "vaultbridge.webhookService" -}}
{{- printf "%s-webhook" (include "vaultbridge.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vaultbridge.webhookConfig" -}}
{{- printf "%s-path-policy" (include "vaultbridge.fullname" .) -}}
{{- end -}}

{{- define "vaultbridge.injectWebhookConfig" -}}
{{- printf "%s-inject" (include "vaultbridge.fullname" .) -}}
{{- end -}}

{{- define "vaultbridge.webhookCASecret" -}}
{{- printf "%s-webhook-ca" (include "vaultbridge.fullname" .) -}}
{{- end -}}
