{{/* Names ------------------------------------------------------------------------------------------- */}}

{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-vigil, or the release name alone when it already contains the chart name. */}}
{{- define "vigil.fullname" -}}
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

{{- define "vigil.hub.fullname" -}}
{{- printf "%s-hub" (include "vigil.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.relay.fullname" -}}
{{- printf "%s-relay" (include "vigil.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vigil.enrollmentSecretName" -}}
{{- default (printf "%s-enrollment" (include "vigil.fullname" .)) .Values.enrollment.existingSecret }}
{{- end }}

{{/* The key inside the enrollment Secret: existingSecretKey for your own Secret, "token" for the chart's. */}}
{{- define "vigil.enrollmentSecretKey" -}}
{{- ternary .Values.enrollment.existingSecretKey "token" (not (empty .Values.enrollment.existingSecret)) }}
{{- end }}

{{- define "vigil.signingKeySecretKey" -}}
{{- ternary .Values.identity.signingKey.existingSecretKey "signing.key" (not (empty .Values.identity.signingKey.existingSecret)) }}
{{- end }}

{{- define "vigil.signingKeySecretName" -}}
{{- default (printf "%s-signing-key" (include "vigil.fullname" .)) .Values.identity.signingKey.existingSecret }}
{{- end }}

{{/* Labels ------------------------------------------------------------------------------------------ */}}

{{- define "vigil.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Per component: include "vigil.componentLabels" (list . "hub") */}}
{{- define "vigil.componentLabels" -}}
{{ include "vigil.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "vigil.componentSelectorLabels" -}}
{{ include "vigil.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Image ------------------------------------------------------------------------------------------- */}}

{{- define "vigil.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Where the relay dials: relay.hubAddress, else this release's headless hub Service, whose name resolves
to every hub pod: the relay links to each replica, so a session can start at any of them.
*/}}
{{- define "vigil.relay.hubAddress" -}}
{{- if .Values.relay.hubAddress }}
{{- .Values.relay.hubAddress }}
{{- else if .Values.hub.enabled }}
{{- printf "%s-peers:%v" (include "vigil.hub.fullname" .) .Values.hub.ports.grpc }}
{{- else }}
{{- fail "relay.hubAddress is required when hub.enabled is false (the hub's gRPC address, host:port)" }}
{{- end }}
{{- end }}

{{/* "true" when the relay dials over TLS: relay.tls.enabled, or this release's hub serves TLS. */}}
{{- define "vigil.relay.tls" -}}
{{- if or .Values.relay.tls.enabled (and .Values.hub.enabled .Values.hub.tls.enabled (empty .Values.relay.hubAddress)) }}true{{ end }}
{{- end }}

{{/* Vigil configs ----------------------------------------------------------------------------------- */}}
{{/* Built as dicts and rendered with toYaml, so values cannot break the YAML; hub.extraConfig merges over. */}}

{{- define "vigil.hub.config" -}}
{{- include "vigil.hub.checkSecrets" . }}
{{- $hub := .Values.hub }}
{{- $doors := ternary "0.0.0.0" "127.0.0.1" $hub.frontDoors.enabled }}
{{- $listen := dict
      "api" (printf "0.0.0.0:%v" $hub.ports.api)
      "grpc" (printf "0.0.0.0:%v" $hub.ports.grpc)
      "postgres" (printf "%s:%v" $doors $hub.frontDoors.postgres)
      "ssh" (printf "%s:%v" $doors $hub.frontDoors.ssh)
      "http" (printf "%s:%v" $doors $hub.frontDoors.http) }}
{{- /* A URL kept in a Secret reaches the hub as VIGIL_STORAGE_NATS_URL / VIGIL_STORAGE_CLICKHOUSE_URL
       (see hub-deployment.yaml), never through this file. */}}
{{- $storage := dict }}
{{- if not .Values.storage.nats.existingSecret }}
{{- $_ := set $storage "nats" (dict "url" (required "storage.nats.url (or storage.nats.existingSecret) is required: hubs share their state through NATS JetStream" .Values.storage.nats.url)) }}
{{- end }}
{{- if .Values.storage.clickhouse.existingSecret }}
{{- $_ := set $storage "clickhouse" (dict "database" .Values.storage.clickhouse.database) }}
{{- else if .Values.storage.clickhouse.url }}
{{- $_ := set $storage "clickhouse" (dict "url" .Values.storage.clickhouse.url "database" .Values.storage.clickhouse.database) }}
{{- end }}
{{- $identity := dict
      "issuer" .Values.identity.issuer
      "audience" .Values.identity.audience
      "adminGroups" .Values.identity.adminGroups
      "oidc" .Values.identity.oidc
      "signingKeyFile" "/etc/vigil/identity/signing.key" }}
{{- $config := dict
      "listen" $listen
      "storage" $storage
      "identity" $identity
      "enrollment" (dict "tokenFile" "/etc/vigil/enrollment/token")
      "hub" (dict "heartbeatMs" (int $hub.heartbeatMs) "tunnelOpenTimeoutMs" (int $hub.tunnelOpenTimeoutMs))
      "log" (dict "level" .Values.log.level) }}
{{- if $hub.tls.enabled }}
{{- $_ := set $config "tls" (dict "cert" "/etc/vigil/tls/tls.crt" "key" "/etc/vigil/tls/tls.key") }}
{{- end }}
{{- /* Policy globs: the image's policies/*.yaml (relative to /app) and the files from hub.policies. */}}
{{- $policies := list }}
{{- if $hub.includeDefaultPolicies }}{{ $policies = append $policies "policies/*.yaml" }}{{ end }}
{{- if $hub.policies }}{{ $policies = append $policies "/etc/vigil/policies/*.yaml" }}{{ end }}
{{- $_ := set $config "policies" $policies }}
{{- toYaml (mustMergeOverwrite $config (deepCopy $hub.extraConfig)) }}
{{- end }}

{{- define "vigil.relay.config" -}}
{{- $relay := .Values.relay }}
{{- include "vigil.relay.checkConnections" . }}
{{- $rc := dict
      "hub" (include "vigil.relay.hubAddress" .)
      "tokenFile" "/etc/vigil/enrollment/token"
      "segment" $relay.segment
      "keyFile" (ternary "/etc/vigil/relay-key/relay.key" "/var/lib/vigil/relay.key" (not (empty $relay.key.existingSecret)))
      "drainTimeoutMs" (int $relay.drainTimeoutMs)
      "connections" $relay.connections }}
{{- if include "vigil.relay.tls" . }}
{{- $tls := dict }}
{{- if $relay.tls.caSecret }}{{ $_ := set $tls "ca" "/etc/vigil/hub-ca/ca.crt" }}{{ end }}
{{- if $relay.tls.serverName }}{{ $_ := set $tls "serverName" $relay.tls.serverName }}{{ end }}
{{- $_ := set $rc "tls" $tls }}
{{- else if $relay.insecure }}
{{- $_ := set $rc "insecure" true }}
{{- else }}
{{- fail "relay: set relay.tls.enabled (recommended) or relay.insecure: true (plaintext gRPC to the hub)" }}
{{- end }}
{{- toYaml (dict "relay" $rc "log" (dict "level" .Values.log.level)) }}
{{- end }}

{{/*
Refuse credentials written in clear into relay.connections (they would land in a ConfigMap), and *Env
references to env vars that relay.secretEnv / relay.extraEnv do not define.
*/}}
{{- define "vigil.relay.checkConnections" -}}
{{- $forbidden := list "password" "privatekey" "passphrase" "token" "secret" "apikey" "clientsecret" }}
{{- $defined := list }}
{{- range .Values.relay.secretEnv }}{{ $defined = append $defined .name }}{{ end }}
{{- range .Values.relay.extraEnv }}{{ $defined = append $defined .name }}{{ end }}
{{- range $i, $c := .Values.relay.connections }}
{{- $where := printf "relay.connections[%d] (%s)" $i ($c.name | default "?") }}
{{- range $key, $value := ($c.credentials | default dict) }}
{{- if has (lower $key) $forbidden }}
{{- fail (printf "%s: credentials.%s is a secret in clear; use %sEnv (relay.secretEnv) or %sFile (relay.secretFiles)" $where $key $key $key) }}
{{- end }}
{{- if and (hasSuffix "Env" $key) (not (has $value $defined)) }}
{{- fail (printf "%s: credentials.%s names env var %v, which relay.secretEnv does not define" $where $key $value) }}
{{- end }}
{{- end }}
{{- range $header, $value := (($c.credentials | default dict).headers | default dict) }}
{{- if kindIs "string" $value }}
{{- if regexMatch "(?i)(authorization|cookie|token|secret|key|password)" $header }}
{{- fail (printf "%s: credentials.headers.%s holds a secret in clear; use {env: VAR} or {file: path}" $where $header) }}
{{- end }}
{{- else if and (hasKey $value "env") (not (has $value.env $defined)) }}
{{- fail (printf "%s: credentials.headers.%s names env var %v, which relay.secretEnv does not define" $where $header $value.env) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The hub config lands in a ConfigMap: refuse the secrets its schema would accept in clear. */}}
{{- define "vigil.hub.checkSecrets" -}}
{{- $extra := .Values.hub.extraConfig | default dict }}
{{- if and (hasKey $extra "enrollment") (hasKey $extra.enrollment "token") }}
{{- fail "hub.extraConfig.enrollment.token is a secret in clear: use enrollment.existingSecret" }}
{{- end }}
{{- $oidc := concat (.Values.identity.oidc | default list) ((($extra.identity | default dict).oidc) | default list) }}
{{- range $i, $o := $oidc }}
{{- if and $o.introspection (hasKey $o.introspection "clientSecret") }}
{{- fail (printf "identity.oidc[%d] (%s): introspection.clientSecret is a secret in clear; use introspection.clientSecretEnv and hub.secretEnv" $i $o.issuer) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod pieces ---------------------------------------------------------------------------------------- */}}

{{/* The API's scheme for probes and NOTES. */}}
{{- define "vigil.hub.scheme" -}}
{{- ternary "HTTPS" "HTTP" .Values.hub.tls.enabled }}
{{- end }}
