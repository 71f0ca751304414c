{{/* The objects' name prefix: the release's name, or release-chart when it lacks the chart's. */}}
{{- define "cephfs-csi.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "cephfs-csi.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The driver's image. */}}
{{- define "cephfs-csi.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
A controller sidecar on the driver's socket, leading by election in the release's
namespace. Arguments: (list name values), values holding image, timeout, extraArgs.
*/}}
{{- define "cephfs-csi.sidecar" -}}
{{- $name := index . 0 -}}
{{- $s := index . 1 -}}
- name: {{ $name }}
  image: {{ $s.image }}
  args:
    - --csi-address=$(ADDRESS)
    - --leader-election=true
    - --leader-election-namespace=$(NAMESPACE)
    - --timeout={{ $s.timeout }}
    {{- range $s.extraArgs }}
    - {{ . }}
    {{- end }}
  env:
    - name: ADDRESS
      value: unix:///csi/csi.sock
    - name: NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
  volumeMounts:
    - name: socket-dir
      mountPath: /csi
{{- end -}}
