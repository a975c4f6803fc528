{{/* The Cluster's name: cluster.name, else the release's. */}}
{{- define "weir.clusterName" -}}
{{- default .Release.Name .Values.cluster.name -}}
{{- end -}}

{{/* Labels of every object the chart makes. */}}
{{- define "weir.labels" -}}
app.kubernetes.io/part-of: weir
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* "true" when the Prometheus Operator's API is served (or monitoring.<kind>.enabled forces it). */}}
{{- define "weir.promOperator" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- end -}}

{{/* The operator's image reference. */}}
{{- define "weir.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
