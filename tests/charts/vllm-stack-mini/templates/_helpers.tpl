{{/*
Helpers for vllm-stack-mini. Our own templates, written from the behaviour of the
vllm-stack 0.1.8 chart described in docs/chart-facts.md.
*/}}

{{/*
Port vllm listens on: servingEngineSpec.containerPort, 8000 when unset (0.1.8).
*/}}
{{- define "mini.containerPort" -}}
{{- .Values.servingEngineSpec.containerPort | default 8000 -}}
{{- end -}}

{{/*
Engine Service port: servingEngineSpec.servicePort, else the container port (0.1.8).
*/}}
{{- define "mini.servicePort" -}}
{{- .Values.servingEngineSpec.servicePort | default (include "mini.containerPort" .) -}}
{{- end -}}

{{/*
servingEngineSpec.labels as YAML lines (nothing when empty). 0.1.8 puts these on
engine pods, the engine Deployment (metadata and selector) and the engine Service.
*/}}
{{- define "mini.engineLabels" -}}
{{- with .Values.servingEngineSpec.labels }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/*
routerSpec.labels as YAML lines. In 0.1.8 they are the router's only labels and its
whole selector.
*/}}
{{- define "mini.routerLabels" -}}
{{- with .Values.routerSpec.labels }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/*
The labels of engine pods for one model (0.1.8: no app.kubernetes.io/* labels).
Argument: dict "root" $ "model" $modelSpec.
*/}}
{{- define "mini.enginePodLabels" -}}
model: {{ .model.name | quote }}
helm-release-name: {{ .root.Release.Name | quote }}
{{ include "mini.engineLabels" .root }}
{{- end -}}

{{/*
The router's --k8s-label-selector: servingEngineSpec.labels as "k=v" joined with ","
in sorted key order (range over a map is sorted). Every version does this, and it
never includes the release name.
*/}}
{{- define "mini.engineLabelSelector" -}}
{{- $pairs := list -}}
{{- range $k, $v := .Values.servingEngineSpec.labels -}}
{{- $pairs = append $pairs (printf "%s=%v" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/*
Deployment strategy: the given map when non-empty, else RollingUpdate with
maxSurge 100% / maxUnavailable 0 (default of both 0.1.8 Deployments).
*/}}
{{- define "mini.strategy" -}}
strategy:
{{- if . }}
  {{- toYaml . | nindent 2 }}
{{- else }}
  rollingUpdate:
    maxSurge: 100%
    maxUnavailable: 0
{{- end }}
{{- end -}}

{{/*
An env var read from a Secret, for VLLM_API_KEY and HF_TOKEN. Argument: dict
  "name"    env var name
  "value"   a string (stored in <release>-secrets under "key") or a map
            {secretName, secretKey} naming an existing Secret
  "key"     key in <release>-secrets for the string form
  "release" release name
Nothing is emitted for an empty value (0.1.8 tests the value's truthiness).
*/}}
{{- define "mini.secretEnv" -}}
{{- if .value }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      {{- if kindIs "string" .value }}
      name: {{ printf "%s-secrets" .release | quote }}
      key: {{ .key | quote }}
      {{- else }}
      name: {{ .value.secretName | quote }}
      key: {{ .value.secretKey | quote }}
      {{- end }}
{{- end }}
{{- end -}}

{{/*
The Ray path's container environment, head and workers alike (the real chart's order):
VLLM_USE_V1 from vllmConfig.v1, "0" when vllmConfig is given without it; HF_TOKEN and
VLLM_API_KEY from Secrets; the model's env. Argument: dict "root" $ "model" $modelSpec.
*/}}
{{- define "mini.rayEnv" -}}
- name: VLLM_HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: HF_HOME
  value: {{ ternary "/data" "/tmp" (hasKey .model "pvcStorage") | quote }}
{{- with .model.vllmConfig }}
- name: VLLM_USE_V1
  value: {{ (hasKey . "v1" | ternary .v1 "0") | toString | quote }}
{{- end }}
{{- with include "mini.secretEnv" (dict "name" "HF_TOKEN" "value" .model.hf_token "key" (printf "hf_token_%s" .model.name) "release" .root.Release.Name) | trim }}
{{ . }}
{{- end }}
{{- with include "mini.secretEnv" (dict "name" "VLLM_API_KEY" "value" .root.Values.servingEngineSpec.vllmApiKey "key" "vllmApiKey" "release" .root.Release.Name) | trim }}
{{ . }}
{{- end }}
{{- with .model.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
A Ray node's resources from request/limit keys (the real chart's resources helper, read
from raySpec.headNode for the head and from the modelSpec for workers): cpu and memory
requests required; the GPU count (requestGPUType, default nvidia.com/gpu) as request and
limit; limits for memory and cpu when given.
*/}}
{{- define "mini.rayResources" -}}
{{- $gpu := int .requestGPU }}
{{- $type := .requestGPUType | default "nvidia.com/gpu" -}}
requests:
  memory: {{ required "Value 'modelSpec.requestMemory' must be defined !" .requestMemory | quote }}
  cpu: {{ required "Value 'modelSpec.requestCPU' must be defined !" .requestCPU | quote }}
  {{- if gt $gpu 0 }}
  {{ $type }}: {{ .requestGPU | quote }}
  {{- end }}
{{- if or (hasKey . "limitMemory") (hasKey . "limitCPU") (gt $gpu 0) }}
limits:
  {{- if hasKey . "limitMemory" }}
  memory: {{ .limitMemory | quote }}
  {{- end }}
  {{- if hasKey . "limitCPU" }}
  cpu: {{ .limitCPU | quote }}
  {{- end }}
  {{- if gt $gpu 0 }}
  {{ $type }}: {{ .requestGPU | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{- /*
Whether the LMCache cache server is on ("true" or ""): from 0.1.11 its `enabled` key says
so; before, the cacheserverSpec key being set at all (as the real 0.1.8-0.1.10 test it).
*/ -}}
{{- define "mini.cacheServerOn" -}}
{{- if semverCompare ">=0.1.11" .Chart.Version -}}
{{- if and .Values.cacheserverSpec .Values.cacheserverSpec.enabled }}true{{ end -}}
{{- else if .Values.cacheserverSpec }}true{{ end -}}
{{- end }}

{{- /*
Whether the shared storage is on, the same way: sharedPvcStorage.enabled from 0.1.11, the
key being set before.
*/ -}}
{{- define "mini.sharedStorageOn" -}}
{{- if semverCompare ">=0.1.11" .Chart.Version -}}
{{- if and .Values.sharedPvcStorage .Values.sharedPvcStorage.enabled }}true{{ end -}}
{{- else if .Values.sharedPvcStorage }}true{{ end -}}
{{- end }}
