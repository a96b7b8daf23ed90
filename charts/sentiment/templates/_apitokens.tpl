{{/*
Bearer tokens of the guarded routes (predictor/routes/auth.py): POST feedback needs a writer
token, GET feedback and GET /v1/users/<username>/sentiment a reader token. Each comes from an
existing Secret, mounted as a file (one projected volume, one file per role) whose path the
predictor is given; a role without a Secret leaves its routes off (404), never open. No token
is in an env var, on a command line or in the rendered manifests.
*/}}

{{- define "sentiment.apiTokens.dir" -}}/var/run/secrets/predictor-tokens{{- end -}}

{{/* Which guarded routes are on, for NOTES.txt. */}}
{{- define "sentiment.apiTokens.any" -}}
{{- $t := .Values.apiTokens -}}
{{- if or $t.feedbackWriter.existingSecret $t.reader.existingSecret }}true{{ end -}}
{{- end -}}

{{/* Env entries of the predictor container: the token files' paths, not the tokens. */}}
{{- define "sentiment.apiTokens.env" -}}
{{- $t := .Values.apiTokens -}}
{{- $dir := include "sentiment.apiTokens.dir" . -}}
{{- if $t.feedbackWriter.existingSecret }}
- name: PREDICTOR_FEEDBACK_WRITER_TOKENS_FILE
  value: {{ printf "%s/writer-tokens" $dir | quote }}
{{- end }}
{{- if $t.reader.existingSecret }}
- name: PREDICTOR_READER_TOKENS_FILE
  value: {{ printf "%s/reader-tokens" $dir | quote }}
{{- end }}
{{- end -}}

{{- define "sentiment.apiTokens.mounts" -}}
{{- if include "sentiment.apiTokens.any" . }}
- name: api-tokens
  mountPath: {{ include "sentiment.apiTokens.dir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "sentiment.apiTokens.volumes" -}}
{{- $t := .Values.apiTokens -}}
{{- if include "sentiment.apiTokens.any" . }}
- name: api-tokens
  projected:
    defaultMode: 0440
    sources:
      {{- with $t.feedbackWriter.existingSecret }}
      - secret:
          name: {{ . }}
          items:
            - key: {{ $t.feedbackWriter.existingSecretKey }}
              path: writer-tokens
      {{- end }}
      {{- with $t.reader.existingSecret }}
      - secret:
          name: {{ . }}
          items:
            - key: {{ $t.reader.existingSecretKey }}
              path: reader-tokens
      {{- end }}
{{- end }}
{{- end -}}
