{{/* Rules that values.schema.json cannot express because they relate two values. */}}
{{- define "sentiment.validate" -}}
{{- $v := .Values -}}
{{- $p := $v.predictor -}}
{{- $needed := add $p.preStopSleepSeconds $p.drainTimeoutSeconds -}}
{{- if lt (int $p.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "predictor.terminationGracePeriodSeconds (%v) must be at least preStopSleepSeconds + drainTimeoutSeconds (%v), or the kubelet kills requests mid-drain" $p.terminationGracePeriodSeconds $needed) -}}
{{- end -}}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) -}}
{{- fail (printf "autoscaling.minReplicas (%v) is above autoscaling.maxReplicas (%v)" $v.autoscaling.minReplicas $v.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if and (eq $p.deploymentMode "Standard") (eq (int $v.autoscaling.minReplicas) 0) (ne $v.autoscaling.standard.autoscalerClass "keda") -}}
{{- fail "autoscaling.minReplicas 0 (scale to zero) needs deploymentMode Knative, or autoscalerClass keda in Standard mode" -}}
{{- end -}}
{{- if and $v.canary.enabled (eq $p.deploymentMode "Standard") (not (or $v.canary.storageUri $v.canary.image.tag $v.canary.image.digest)) -}}
{{- fail "canary.enabled in Standard mode needs canary.storageUri (a new model) or canary.image.tag/digest (a new image): the canary is a second predictor that must differ from the stable one" -}}
{{- end -}}
{{- if and $v.logger.enabled (not $v.logger.url) -}}
{{- fail "logger.enabled needs logger.url: where KServe's agent sends the request/response events" -}}
{{- end -}}
{{- $c := $v.mlops.cycle -}}
{{- if and $c.enabled (eq $v.model.storageUri (printf "pvc://%s/%s" (include "sentiment.mlopsCycleClaim" .) $c.publishPath)) -}}
{{- fail (printf "model.storageUri %s is the parent of the version directories mlops.cycle publishes: serve one version, pvc://%s/%s/<version> (the directory mlops.cycle.stableDir names)" $v.model.storageUri (include "sentiment.mlopsCycleClaim" .) $c.publishPath) -}}
{{- end -}}
{{- if and $v.canary.enabled $v.canary.storageUri (not $v.model.storageUri) -}}
{{- fail "canary.storageUri needs model.storageUri too: the stable model must come from storage for the canary's to replace it" -}}
{{- end -}}

{{- if and (eq $v.featureStore.mode "sidecar") $v.redis.auth.password (not (regexMatch "^[A-Za-z0-9._~-]+$" $v.redis.auth.password)) -}}
{{- fail "redis.auth.password may hold only [A-Za-z0-9._~-]: it is written into a redis.conf requirepass line" -}}
{{- end -}}
{{- $x := $v.featureStore.external -}}
{{- if eq $v.featureStore.mode "external" -}}
{{- if and (eq $x.clientType "standalone") (not $x.standalone.host) -}}
{{- fail "featureStore.mode external with clientType standalone needs featureStore.external.standalone.host" -}}
{{- end -}}
{{- if and (eq $x.clientType "sentinel") (not $x.sentinel.hosts) -}}
{{- fail "featureStore.mode external with clientType sentinel needs featureStore.external.sentinel.hosts (HOST:PORT of each sentinel) and masterSet" -}}
{{- end -}}
{{- if and (eq $x.clientType "cluster") (not $x.cluster.nodes) -}}
{{- fail "featureStore.mode external with clientType cluster needs featureStore.external.cluster.nodes (HOST:PORT seed nodes)" -}}
{{- end -}}
{{- if and $x.sentinel.existingSecretPasswordKey (not $x.auth.existingSecret) -}}
{{- fail "featureStore.external.sentinel.existingSecretPasswordKey names a key in featureStore.external.auth.existingSecret, which is empty" -}}
{{- end -}}
{{- if and $x.tls.caSecret (not $x.tls.enabled) -}}
{{- fail "featureStore.external.tls.caSecret is set but tls.enabled is false: the CA would be mounted and never used" -}}
{{- end -}}
{{- end -}}
{{- end -}}
