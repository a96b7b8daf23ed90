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
{{- if and $v.canary.enabled $v.canary.storageUri (not $v.model.storageUri) -}}
{{- fail "canary.storageUri needs model.storageUri too: the stable model must come from storage for the canary's to replace it" -}}
{{- end -}}

{{- if and $v.redis.enabled $v.redis.auth.password (not (regexMatch "^[A-Za-z0-9._~-]+$" $v.redis.auth.password)) -}}
{{- fail "redis.auth.password must be URL-safe ([A-Za-z0-9._~-]): it is spliced into PREDICTOR_REDIS_URL" -}}
{{- end -}}
{{- end -}}
