{{/*
Feature store wiring of the predictor pod: featureStore.mode sidecar (Redis in the pod, on
loopback) or external (one shared Redis for every replica: standalone, Sentinel or Cluster).
Passwords are files from mounted Secrets, as Bitnami charts do: the predictor reads
/var/run/secrets/predictor/PREDICTOR_REDIS_PASSWORD through pydantic-settings' secrets
directory, and the sidecar's redis.conf includes a file written from the mounted Secret at
start. No password is in an env var, on a command line or in PREDICTOR_REDIS_URL.
*/}}

{{- define "sentiment.featureStore.sidecar" -}}
{{- if eq .Values.featureStore.mode "sidecar" }}true{{ end -}}
{{- end -}}

{{/* Secret with the data nodes' password, or empty (external Redis without one). */}}
{{- define "sentiment.featureStore.secretName" -}}
{{- if include "sentiment.featureStore.sidecar" . -}}
{{- include "sentiment.redisSecretName" . -}}
{{- else -}}
{{- .Values.featureStore.external.auth.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* PREDICTOR_REDIS_URL: the contract's URL schemes, never with a password in them. */}}
{{- define "sentiment.featureStore.url" -}}
{{- $v := .Values -}}
{{- $x := $v.featureStore.external -}}
{{- if include "sentiment.featureStore.sidecar" . -}}
redis://127.0.0.1:{{ $v.redis.port }}/0
{{- else if eq $x.clientType "sentinel" -}}
redis+sentinel://{{ join "," $x.sentinel.hosts }}/{{ $x.sentinel.masterSet }}/{{ $x.sentinel.db }}
{{- else if eq $x.clientType "cluster" -}}
redis+cluster://{{ join "," $x.cluster.nodes }}
{{- else -}}
{{ ternary "rediss" "redis" $x.tls.enabled }}://{{ $x.standalone.host }}:{{ $x.standalone.port }}/{{ $x.standalone.db }}
{{- end -}}
{{- end -}}

{{/* Env entries of the predictor container (no secrets among them). */}}
{{- define "sentiment.featureStore.env" -}}
{{- $x := .Values.featureStore.external -}}
- name: PREDICTOR_REDIS_URL
  value: {{ include "sentiment.featureStore.url" . | quote }}
{{- if not (include "sentiment.featureStore.sidecar" .) }}
{{- with $x.auth.username }}
- name: PREDICTOR_REDIS_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if $x.tls.enabled }}
- name: PREDICTOR_REDIS_TLS
  value: "true"
{{- if $x.tls.caSecret }}
- name: PREDICTOR_REDIS_TLS_CA_FILE
  value: /var/run/secrets/predictor-redis-ca/ca.crt
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volume mounts of the predictor container. */}}
{{- define "sentiment.featureStore.mounts" -}}
{{- if include "sentiment.featureStore.secretName" . }}
- name: featurestore-secrets
  mountPath: /var/run/secrets/predictor
  readOnly: true
{{- end }}
{{- $x := .Values.featureStore.external -}}
{{- if and (not (include "sentiment.featureStore.sidecar" .)) $x.tls.enabled $x.tls.caSecret }}
- name: featurestore-ca
  mountPath: /var/run/secrets/predictor-redis-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* The Redis sidecar container (mode sidecar only). */}}
{{- define "sentiment.featureStore.sidecarContainer" -}}
{{- $v := .Values -}}
{{- if include "sentiment.featureStore.sidecar" . }}
{{- $ping := printf "redis-cli -h 127.0.0.1 -p %v ping | grep -qE '^(PONG|NOAUTH)'" $v.redis.port }}
- name: redis
  image: {{ include "sentiment.redisImage" . }}
  imagePullPolicy: {{ $v.redis.image.pullPolicy }}
  {{- /* printf is a shell builtin: the password goes from the mounted file into the include
  file on an in-memory volume without ever being a process argument; redis-server then
  runs as PID 1 with only the config path on its command line. */}}
  command: ["sh", "-c"]
  args:
    - umask 077 && printf 'requirepass "%s"\n' "$(cat /run/secrets/redis/password)" > /run/redis-auth/auth.conf && exec redis-server /etc/redis/redis.conf
  {{- /* No `ports`: Knative allows one declared port per pod, and Redis is reached on loopback only. */}}
  resources:
    {{- toYaml $v.redis.resources | nindent 4 }}
  securityContext:
    {{- toYaml (merge (dict "runAsUser" (int $v.redis.uid) "runAsGroup" (int $v.redis.uid)) (deepCopy $v.containerSecurityContext)) | nindent 4 }}
  {{- /* Probes need no password: an unauthenticated PING answers NOAUTH, which proves the
  server is up and serving, and keeps the password out of the probe's env and argv. */}}
  startupProbe:
    exec:
      command: ["sh", "-c", {{ $ping | quote }}]
    periodSeconds: 2
    failureThreshold: 15
  readinessProbe:
    exec:
      command: ["sh", "-c", {{ $ping | quote }}]
    periodSeconds: 10
    timeoutSeconds: 2
  livenessProbe:
    exec:
      command: ["sh", "-c", {{ $ping | quote }}]
    periodSeconds: 15
    timeoutSeconds: 3
    failureThreshold: 3
  {{- if gt (int $v.predictor.preStopSleepSeconds) 0 }}
  {{- /* The pod answers normally during the predictor's preStop sleep, its cache included: without
  the same sleep the kubelet sends Redis SIGTERM at once and those requests find no feature store. */}}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ $v.predictor.preStopSleepSeconds }}
  {{- end }}
  volumeMounts:
    - name: redis-config
      mountPath: /etc/redis
      readOnly: true
    - name: redis-password
      mountPath: /run/secrets/redis
      readOnly: true
    - name: redis-auth
      mountPath: /run/redis-auth
    - name: redis-data
      mountPath: /data
{{- end }}
{{- end -}}

{{/* Pod volumes for the feature store. */}}
{{- define "sentiment.featureStore.volumes" -}}
{{- $v := .Values -}}
{{- $x := $v.featureStore.external -}}
{{- $secret := include "sentiment.featureStore.secretName" . -}}
{{- if $secret }}
- name: featurestore-secrets
  secret:
    secretName: {{ $secret }}
    defaultMode: 0440
    items:
      {{- if include "sentiment.featureStore.sidecar" . }}
      - key: {{ $v.redis.auth.existingSecretPasswordKey }}
        path: PREDICTOR_REDIS_PASSWORD
      {{- else }}
      - key: {{ $x.auth.existingSecretPasswordKey }}
        path: PREDICTOR_REDIS_PASSWORD
      {{- with $x.sentinel.existingSecretPasswordKey }}
      {{- if eq $x.clientType "sentinel" }}
      - key: {{ . }}
        path: PREDICTOR_REDIS_SENTINEL_PASSWORD
      {{- end }}
      {{- end }}
      {{- end }}
{{- end }}
{{- if include "sentiment.featureStore.sidecar" . }}
- name: redis-config
  configMap:
    name: {{ include "sentiment.fullname" . }}-redis
- name: redis-password
  secret:
    secretName: {{ $secret }}
    defaultMode: 0440
    items:
      - key: {{ $v.redis.auth.existingSecretPasswordKey }}
        path: password
- name: redis-auth
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: redis-data
  emptyDir:
    sizeLimit: {{ $v.tmpSizeLimit }}
{{- else if and $x.tls.enabled $x.tls.caSecret }}
- name: featurestore-ca
  secret:
    secretName: {{ $x.tls.caSecret }}
    defaultMode: 0444
    items:
      - key: {{ $x.tls.caSecretKey }}
        path: ca.crt
{{- end }}
{{- end -}}

{{/* TCP ports of the external Redis deployment, for the NetworkPolicy egress rule. */}}
{{- define "sentiment.featureStore.ports" -}}
{{- $x := .Values.featureStore.external -}}
{{- $ports := list -}}
{{- if eq $x.clientType "sentinel" -}}
{{- $ports = append $ports (int $x.sentinel.dataPort) -}}
{{- range $x.sentinel.hosts }}{{ $ports = append $ports (int (last (splitList ":" .))) }}{{ end -}}
{{- else if eq $x.clientType "cluster" -}}
{{- range $x.cluster.nodes }}{{ $ports = append $ports (int (last (splitList ":" .))) }}{{ end -}}
{{- else -}}
{{- $ports = append $ports (int $x.standalone.port) -}}
{{- end -}}
{{- $ports | uniq | sortAlpha | join "," -}}
{{- end -}}

{{/* NetworkPolicy egress rule to the external Redis (mode external only). */}}
{{- define "sentiment.featureStore.egress" -}}
{{- $x := .Values.featureStore.external -}}
{{- if not (include "sentiment.featureStore.sidecar" .) }}
- {{- with $x.networkPolicy.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- range splitList "," (include "sentiment.featureStore.ports" .) }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end -}}
