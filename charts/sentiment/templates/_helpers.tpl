{{/* Names, labels and the predictor pod spec, shared by every template. */}}

{{- define "sentiment.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The InferenceService name. KServe derives `<name>-predictor` (and Knative `<name>-predictor-00001-...`)
from it, so it is kept to 45 characters to leave room for those suffixes under the 63-character limit.
*/}}
{{- define "sentiment.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sentiment.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "sentiment.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tweet-sentiment
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Object metadata shared by every template: name, namespace, labels, annotations.
Args: dict "root" $ "name" <name> and optionally "namespace", "labels", "annotations" (maps merged in). */}}
{{- define "sentiment.metadata" -}}
{{- $ := .root -}}
name: {{ .name }}
namespace: {{ default $.Release.Namespace .namespace }}
labels:
  {{- include "sentiment.labels" $ | nindent 2 }}
  {{- with .labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with merge (deepCopy (default (dict) .annotations)) $.Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Labels KServe puts on every predictor pod, in both deployment modes: the selector for the
NetworkPolicy, the PodDisruptionBudget and the PodMonitor. */}}
{{- define "sentiment.predictorSelector" -}}
serving.kserve.io/inferenceservice: {{ include "sentiment.fullname" . }}
component: predictor
{{- end -}}

{{/* The helm test pod, selected by its own NetworkPolicy. */}}
{{- define "sentiment.testSelector" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end -}}

{{- define "sentiment.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sentiment.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sentiment.redisSecretName" -}}
{{- default (printf "%s-redis" (include "sentiment.fullname" .)) .Values.redis.auth.existingSecret -}}
{{- end -}}

{{/* repository@digest when a digest is given, else repository:tag. Args: (list repository tag digest). */}}
{{- define "sentiment.imageRef" -}}
{{- $repo := index . 0 -}}{{- $tag := index . 1 -}}{{- $digest := index . 2 -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The predictor image; on GPU the default tag names the CUDA build. */}}
{{- define "sentiment.image" -}}
{{- $suffix := ternary .Values.gpu.imageTagSuffix "" .Values.gpu.enabled -}}
{{- $tag := default (printf "%s%s" .Chart.AppVersion $suffix) .Values.image.tag -}}
{{- include "sentiment.imageRef" (list .Values.image.repository $tag .Values.image.digest) -}}
{{- end -}}

{{- define "sentiment.redisImage" -}}
{{- include "sentiment.imageRef" (list .Values.redis.image.repository .Values.redis.image.tag .Values.redis.image.digest) -}}
{{- end -}}

{{- define "sentiment.knative" -}}
{{- if eq .Values.predictor.deploymentMode "Knative" }}true{{ end -}}
{{- end -}}

{{/*
Everything of the predictor that is a pod: containers, volumes, security and scheduling. Shared by
spec.predictor and, in Standard mode, spec.canary[0].predictor, which differ only in the image
and the model. Args: dict "root" $ "image" "<image ref>" "storageUri" "<uri, or empty for model.dir>".
*/}}
{{- define "sentiment.predictorPod" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
{{- $p := $v.predictor -}}
serviceAccountName: {{ include "sentiment.serviceAccountName" $ }}
automountServiceAccountToken: {{ $v.automountServiceAccountToken }}
terminationGracePeriodSeconds: {{ $p.terminationGracePeriodSeconds }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- $runtimeClass := ternary $v.gpu.runtimeClassName $p.runtimeClassName $v.gpu.enabled }}
{{- with $runtimeClass }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $p.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- $nodeSelector := $p.nodeSelector }}
{{- if $v.gpu.enabled }}{{ $nodeSelector = merge (deepCopy $v.gpu.nodeSelector) $p.nodeSelector }}{{ end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tolerations := $p.tolerations }}
{{- if $v.gpu.enabled }}{{ $tolerations = concat $p.tolerations $v.gpu.tolerations }}{{ end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $p.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $p.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: kserve-container
    image: {{ .image }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args:
      - --model_name={{ $v.model.name }}
      - --http_port={{ $p.httpPort }}
      - --grpc_port={{ $p.grpcPort }}
      - --log_level={{ $p.logLevel }}
      - --bind_address=0.0.0.0  {{- /* all interfaces in the pod; the binary defaults to loopback */}}
    ports:
      - name: http1
        containerPort: {{ $p.httpPort }}
        protocol: TCP
      {{- if not (include "sentiment.knative" $) }}
      {{- /* Knative allows exactly one port per pod: gRPC is exposed in Standard mode only. */}}
      - name: h2c
        containerPort: {{ $p.grpcPort }}
        protocol: TCP
      {{- end }}
    env:
      {{- include "sentiment.featureStore.env" $ | nindent 6 }}
      {{- with include "sentiment.apiTokens.env" $ }}{{ . | trim | nindent 6 }}{{ end }}
      {{- if .storageUri }}
      {{- /* A custom predictor gets KServe's storage initializer (s3://, gs://, pvc://) or a
      modelcar (oci://) from this variable on kserve-container; either puts the model at /mnt/models. */}}
      - name: STORAGE_URI
        value: {{ .storageUri | quote }}
      - name: PREDICTOR_MODEL_DIR
        value: /mnt/models
      {{- else }}
      - name: PREDICTOR_MODEL_DIR
        value: {{ $v.model.dir | quote }}
      {{- end }}
      - name: PREDICTOR_DEVICE
        value: {{ ternary "cuda" "cpu" $v.gpu.enabled }}
      - name: PREDICTOR_PRECISION
        value: {{ $p.precision | quote }}
      - name: PREDICTOR_CPU_THREADS
        value: {{ $p.cpuThreads | quote }}
      - name: PREDICTOR_DRAIN_TIMEOUT_S
        value: {{ $p.drainTimeoutSeconds | quote }}
      {{- with $v.tracing }}
      {{- if .enabled }}
      - name: OTEL_TRACES_EXPORTER
        value: otlp
      - name: OTEL_EXPORTER_OTLP_ENDPOINT
        value: {{ required "tracing.endpoint is required when tracing.enabled" .endpoint | quote }}
      - name: OTEL_TRACES_SAMPLER
        value: {{ .sampler | quote }}
      - name: OTEL_TRACES_SAMPLER_ARG
        value: {{ .samplerRatio | toString | quote }}
      - name: OTEL_SERVICE_NAME
        value: {{ .serviceName | default (printf "%s-predictor" $v.model.name) | quote }}
      - name: OTEL_POD_NAME
        valueFrom: {fieldRef: {fieldPath: metadata.name}}
      - name: OTEL_POD_NAMESPACE
        valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
      - name: OTEL_RESOURCE_ATTRIBUTES
        value: "k8s.pod.name=$(OTEL_POD_NAME),k8s.namespace.name=$(OTEL_POD_NAMESPACE),k8s.container.name=kserve-container"
      {{- end }}
      {{- end }}
      {{- range $key, $value := $p.settings }}
      - name: PREDICTOR_{{ $key }}
        value: {{ $value | toString | quote }}
      {{- end }}
      {{- with $p.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    resources:
      {{- $resources := deepCopy $p.resources }}
      {{- if $v.gpu.enabled }}
      {{- $_ := set $resources "limits" (merge (dict $v.gpu.resourceName $v.gpu.count) (default (dict) $resources.limits)) }}
      {{- end }}
      {{- toYaml $resources | nindent 6 }}
    securityContext:
      {{- toYaml $v.containerSecurityContext | nindent 6 }}
    {{- with $p.probes }}
    {{- if .startup.enabled }}
    startupProbe:
      httpGet:
        path: {{ .liveness.path }}
        port: {{ $p.httpPort }}
      periodSeconds: {{ .startup.periodSeconds }}
      failureThreshold: {{ .startup.failureThreshold }}
    {{- end }}
    readinessProbe:
      httpGet:
        path: {{ .readiness.path }}
        port: {{ $p.httpPort }}
      periodSeconds: {{ .readiness.periodSeconds }}
      timeoutSeconds: {{ .readiness.timeoutSeconds }}
      failureThreshold: {{ .readiness.failureThreshold }}
    livenessProbe:
      httpGet:
        path: {{ .liveness.path }}
        port: {{ $p.httpPort }}
      periodSeconds: {{ .liveness.periodSeconds }}
      timeoutSeconds: {{ .liveness.timeoutSeconds }}
      failureThreshold: {{ .liveness.failureThreshold }}
    {{- end }}
    {{- if gt (int $p.preStopSleepSeconds) 0 }}
    lifecycle:
      preStop:
        {{- /* Native sleep action: no shell or binary needed in the image. SIGTERM (and the
        predictor's drain) follows once endpoints had time to drop this pod. */}}
        sleep:
          seconds: {{ $p.preStopSleepSeconds }}
    {{- end }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- include "sentiment.featureStore.mounts" $ | nindent 6 }}
      {{- with include "sentiment.apiTokens.mounts" $ }}{{ . | trim | nindent 6 }}{{ end }}
  {{- include "sentiment.featureStore.sidecarContainer" $ | nindent 2 }}
volumes:
  - name: tmp
    emptyDir:
      medium: Memory
      sizeLimit: {{ $v.tmpSizeLimit }}
  {{- include "sentiment.featureStore.volumes" $ | nindent 2 }}
  {{- with include "sentiment.apiTokens.volumes" $ }}{{ . | trim | nindent 2 }}{{ end }}
{{- end -}}

{{/* The MLOps cycle's CronJob and ServiceAccount name, and the claim it works on. */}}
{{- define "sentiment.mlopsCycleName" -}}
{{- printf "%s-mlops-cycle" (include "sentiment.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "sentiment.mlopsCycleClaim" -}}
{{- default (printf "%s-models" (include "sentiment.fullname" .)) .Values.mlops.cycle.persistence.existingClaim -}}
{{- end -}}

{{/* KServe's payload logger (spec.predictor.logger) when logger.enabled; empty otherwise. */}}
{{- define "sentiment.logger" -}}
{{- if .Values.logger.enabled -}}
logger:
  mode: {{ .Values.logger.mode }}
  url: {{ .Values.logger.url | quote }}
{{- end -}}
{{- end -}}

{{/* The TCP port of a URL: the one it names, else 443 for https and 80 for http. */}}
{{- define "sentiment.urlPort" -}}
{{- $u := urlParse . -}}
{{- $hostPort := splitList ":" $u.host -}}
{{- if gt (len $hostPort) 1 -}}
{{- last $hostPort -}}
{{- else -}}
{{- ternary "443" "80" (eq $u.scheme "https") -}}
{{- end -}}
{{- end -}}
