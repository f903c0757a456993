{{/* The chart's name, truncated to the 63 characters of a DNS label. */}}
{{- define "compilerwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name, as the opentelemetry-collector chart builds it. */}}
{{- define "compilerwatch.fullname" -}}
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

{{- define "compilerwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "compilerwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "compilerwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "compilerwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: compilerwatch
{{- end }}

{{- define "compilerwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "compilerwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository@digest, or repository:tag (appVersion by default). */}}
{{- define "compilerwatch.image" -}}
{{- if .Values.image.digest }}
{{- if not (hasPrefix "sha256:" .Values.image.digest) }}
{{- fail "image.digest must be sha256:<64 hex digits>" }}
{{- end }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "compilerwatch.metricsEnabled" -}}
{{- if or .Values.serviceMonitor.enabled .Values.podMonitor.enabled }}true{{ end }}
{{- end }}

{{/* The capabilities the container adds, as a JSON list: BPF and PERFMON always, SYS_RESOURCE on request,
SYS_PTRACE with the presence scan. */}}
{{- define "compilerwatch.capabilities" -}}
{{- $caps := list "BPF" "PERFMON" }}
{{- if .Values.capabilities.sysResource }}{{ $caps = append $caps "SYS_RESOURCE" }}{{ end }}
{{- if .Values.compilerDetector.scanForCompilers }}{{ $caps = append $caps "SYS_PTRACE" }}{{ end }}
{{- toJson $caps }}
{{- end }}

{{/* "true" when findings are printed to stdout: logFindings, unless the deprecated stdout.enabled it replaces is
set, which keeps deciding as it did (an old values file gives the same on or off). */}}
{{- define "compilerwatch.logFindings" -}}
{{- $stdout := dig "stdout" "enabled" "unset" .Values.AsMap }}
{{- if eq (toString $stdout) "unset" }}{{ if .Values.logFindings }}true{{ end }}
{{- else if $stdout }}true{{ end }}
{{- end }}

{{/* Set when the deprecated stdout block is used: the message NOTES.txt and the config carry. */}}
{{- define "compilerwatch.stdoutDeprecation" -}}
{{- if hasKey .Values "stdout" }}stdout.enabled and stdout.verbosity are deprecated and will be removed in the next release: use logFindings (one line per finding). while set, stdout.enabled decides instead of logFindings; stdout.verbosity is ignored.{{ end }}
{{- end }}
