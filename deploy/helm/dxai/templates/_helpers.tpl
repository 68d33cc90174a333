{{/*
Names, labels and the rendered daemon configuration shared by every template.
*/}}

{{- define "dxai.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dxai.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "dxai.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "dxai.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; pods add app.kubernetes.io/component. */}}
{{- define "dxai.labels" -}}
app.kubernetes.io/name: {{ include "dxai.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "dxai.versionLabels" . }}
{{- end -}}

{{- define "dxai.versionLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector of the daemon pods. */}}
{{- define "dxai.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dxai.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: daemon
{{- end -}}

{{- define "dxai.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dxai.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dxai.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The RayService's name; KubeRay names its stable head Service "<name>-head-svc". */}}
{{- define "dxai.rayServiceName" -}}
{{- printf "%s-ray" (include "dxai.fullname" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* Where the ConfigMap's dxai.yaml is mounted, in the daemon and in the Ray pods. */}}
{{- define "dxai.configPath" -}}/etc/dxai/config/dxai.yaml{{- end -}}

{{/*
The daemon configuration: .Values.config with what the deployment decides: metrics on every
interface (the kubelet probes the pod IP), the inference backend, and, with the RayService,
Ray on the local ray-node sidecar attaching to the RayService's applications.
*/}}
{{- define "dxai.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $metrics := default (dict) $cfg.metrics -}}
{{- $_ := set $metrics "host" "0.0.0.0" -}}
{{- $_ := set $metrics "enabled" true -}}
{{- $_ := set $cfg "metrics" $metrics -}}
{{- $inference := default (dict) $cfg.inference -}}
{{- if .Values.rayService.enabled -}}
{{- $_ := set $inference "backend" "ray" -}}
{{- $ray := default (dict) $cfg.ray -}}
{{- $_ := set $ray "address" "auto" -}}
{{- $_ := set $ray "applications" "attach" -}}
{{- $_ := set $cfg "ray" $ray -}}
{{- else -}}
{{- $_ := set $inference "backend" "inprocess" -}}
{{- end -}}
{{- $_ := set $cfg "inference" $inference -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "dxai.metricsPort" -}}
{{- $metrics := default (dict) .Values.config.metrics -}}
{{- default 9464 $metrics.port | int -}}
{{- end -}}

{{- define "dxai.dataDir" -}}
{{- $state := default (dict) .Values.config.state -}}
{{- default "/var/lib/dxai" $state.data_dir -}}
{{- end -}}

{{- define "dxai.engineCacheDir" -}}
{{- $inference := default (dict) .Values.config.inference -}}
{{- $engine := default (dict) $inference.engine -}}
{{- default "/var/cache/dxai/trt" $engine.engine_cache_dir -}}
{{- end -}}

{{/* Seconds Kubernetes waits after SIGTERM: the drain grace period plus the extra. */}}
{{- define "dxai.terminationGrace" -}}
{{- $pipeline := default (dict) .Values.config.pipeline -}}
{{- $grace := 60 -}}
{{- if hasKey $pipeline "drain_grace_s" -}}{{- $grace = $pipeline.drain_grace_s -}}{{- end -}}
{{- add (ceil $grace | int) (.Values.terminationGraceExtraSeconds | int) -}}
{{- end -}}

{{/* GPUs of a daemon pod: none when the RayService runs the models. */}}
{{- define "dxai.daemonGpus" -}}
{{- if .Values.rayService.enabled -}}0{{- else -}}{{- .Values.gpu.count | int -}}{{- end -}}
{{- end -}}
