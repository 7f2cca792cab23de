{{/* Labels of every object; selectors use app.kubernetes.io/name only (as the base). */}}
{{- define "wms-bridge.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: wms-bridge
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Pod labels: what the NetworkPolicies and Services select on. */}}
{{- define "wms-bridge.podLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: wms-bridge
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* An image reference: repository@digest when a digest is given, else repository:tag. */}}
{{- define "wms-bridge.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .default) -}}
{{- end -}}
{{- end -}}

{{- define "wms-bridge.image" -}}
{{- include "wms-bridge.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) -}}
{{- end -}}

{{/* The migrate hook's name: the chart's appVersion and the release revision (a valid name
     whatever the image reference; a new one per upgrade). */}}
{{- define "wms-bridge.migrateName" -}}
{{- printf "migrate-%s-r%d" (.Chart.AppVersion | lower | replace "." "-" | replace "+" "-") (int .Release.Revision) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The container security context of every container (the base's). */}}
{{- define "wms-bridge.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "wms-bridge.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* config.toml from .Values.config: TOML written here because Helm reads every YAML number
     as a float (toToml would write pool_size = 4.0, which the services refuse). */}}
{{- define "wms-bridge.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "wms-bridge.toml.value" -}}
{{- if kindIs "string" . -}}{{ toJson . }}
{{- else if kindIs "bool" . -}}{{ . }}
{{- else if kindIs "float64" . -}}{{ if eq . (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if or (kindIs "int" .) (kindIs "int64" .) -}}{{ . }}
{{- else if kindIs "slice" . -}}[{{ range $i, $e := . }}{{ if $i }}, {{ end }}{{ include "wms-bridge.toml.value" $e }}{{ end }}]
{{- else -}}{{ fail (printf "config: cannot write %v (%s) as TOML" . (kindOf .)) }}
{{- end -}}
{{- end -}}

{{- define "wms-bridge.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) (kindIs "map" (first .)) -}}yes{{- end -}}
{{- end -}}

{{- define "wms-bridge.toml.table" -}}
{{- $prefix := .prefix -}}
{{- range $k, $v := .table }}
{{- if and (not (kindIs "invalid" $v)) (not (kindIs "map" $v)) (not (include "wms-bridge.toml.isTableArray" $v)) }}
{{ include "wms-bridge.toml.key" $k }} = {{ include "wms-bridge.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .table }}
{{- $path := printf "%s%s" $prefix (include "wms-bridge.toml.key" $k) }}
{{- if kindIs "map" $v }}

[{{ $path }}]
{{- include "wms-bridge.toml.table" (dict "prefix" (printf "%s." $path) "table" $v) }}
{{- else if include "wms-bridge.toml.isTableArray" $v }}
{{- range $v }}

[[{{ $path }}]]
{{- include "wms-bridge.toml.table" (dict "prefix" (printf "%s." $path) "table" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The warehouse's operator tokens: [[warehouse.tokens]] entries from .Values.warehouse.tokens,
     each read from its Secret key mounted under /var/run/secrets/wms. */}}
{{- define "wms-bridge.warehouseTokens" -}}
{{- $tokens := list -}}
{{- $names := dict -}}
{{- $keys := dict -}}
{{- range .Values.warehouse.tokens -}}
{{- if hasKey $names .name -}}{{- fail (printf "warehouse.tokens: the name %q is used twice (it is the actor in the audit trail)" .name) -}}{{- end -}}
{{- if hasKey $keys .secretKey -}}{{- fail (printf "warehouse.tokens: the secretKey %q is used twice (one token per key)" .secretKey) -}}{{- end -}}
{{- $_ := set $names .name true -}}
{{- $_ := set $keys .secretKey true -}}
{{- $token := dict "name" .name "role" .role "sites" .sites "token_file" (printf "/var/run/secrets/wms/%s" .secretKey) -}}
{{- if .merchants }}{{- $_ := set $token "merchants" .merchants -}}{{- end -}}
{{- $tokens = append $tokens $token -}}
{{- end -}}
{{- toJson $tokens -}}
{{- end -}}

{{- define "wms-bridge.configToml" -}}
# Rendered by the wms-bridge chart from .Values.config (keys: docs/configuration.md), with the
# operator tokens of .Values.warehouse.tokens as [[warehouse.tokens]].
{{- $config := deepCopy .Values.config }}
{{- $warehouse := get $config "warehouse" | default dict }}
{{- $_ := set $warehouse "tokens" (include "wms-bridge.warehouseTokens" . | fromJsonArray) }}
{{- $_ := set $config "warehouse" $warehouse }}
{{- include "wms-bridge.toml.table" (dict "prefix" "" "table" $config) }}
{{- end -}}
