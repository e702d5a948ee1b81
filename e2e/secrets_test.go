package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/flux"
	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// TestSecretsFromFileAndEnvNeverLogged runs the real binary with the
// generic source's secret read from a file (${file:...}, as a mounted
// Kubernetes Secret is) and the Flux source's from the environment
// (${env:...}), logging at debug level. Deliveries signed with them are
// accepted, deliveries signed with another key are refused, and neither
// secret appears in the log or in any answer.
func TestSecretsFromFileAndEnvNeverLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the otelcol-dora binary")
	}
	bin := collectorBinary(t)
	// Distinctive values, so that any occurrence in the log is a leak.
	fileSecret := fmt.Sprintf("file-secret-%d-Zq8", time.Now().UnixNano())
	envSecret := fmt.Sprintf("env-secret-%d-Kp3", time.Now().UnixNano())

	dir := t.TempDir()
	secretPath := filepath.Join(dir, "generic-secret")
	// With the trailing newline editors and `echo` leave: the file
	// provider keeps it, the receiver does not use it as part of the key.
	require.NoError(t, os.WriteFile(secretPath, []byte(fileSecret+"\n"), 0o400))
	webhookAddr, healthAddr := freeAddr(t), freeAddr(t)
	config := filepath.Join(dir, "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    webhooks:
      endpoint: %s
      generic:
        secret: ${file:%s}
      flux:
        secret: ${env:DORA_TEST_FLUX_SECRET}
exporters:
  debug:
    verbosity: detailed
extensions:
  health_check:
    endpoint: %s
service:
  extensions: [health_check]
  telemetry:
    logs:
      level: debug
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [debug]
`, webhookAddr, secretPath, healthAddr), 0o600))
	p := runCollector(t, bin, []string{"--config", config}, []string{"DORA_TEST_FLUX_SECRET=" + envSecret}, healthAddr)

	var answers []string
	send := func(path string, body []byte, header http.Header) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+webhookAddr+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header = header
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.True(t, json.Valid(raw), "answer is not JSON: %s", raw)
		answers = append(answers, string(raw))
		return resp.StatusCode
	}
	genericSigned := func(key string, body []byte) http.Header {
		h := http.Header{}
		h.Set(generic.SignatureHeader, "sha256="+webhook.SignHMACSHA256(key, body))
		return h
	}
	fluxSigned := func(key string, body []byte) http.Header {
		h := http.Header{}
		h.Set(flux.SignatureHeader, "sha256="+webhook.SignHMACSHA256(key, body))
		return h
	}

	now := time.Now().UTC().Format(time.RFC3339)
	deployment := fmt.Appendf(nil, `{"type":"deployment","id":"sec-1","time":%q,"service":"api","namespace":"shop","environment":"production","status":"success","deployment_id":"d-1","revision":"abc1"}`, now)
	assert.Equal(t, http.StatusOK, send("/events", deployment, genericSigned(fileSecret, deployment)), "signed with the file's secret")
	assert.Equal(t, http.StatusUnauthorized, send("/events", deployment, genericSigned("another-key", deployment)), "signed with another key")
	assert.Equal(t, http.StatusUnauthorized, send("/events", deployment, genericSigned(envSecret, deployment)), "signed with the other source's secret")
	malformed := []byte(`{"type":"deployment","id":`)
	assert.Equal(t, http.StatusBadRequest, send("/events", malformed, genericSigned(fileSecret, malformed)))

	fluxEvent := fmt.Appendf(nil, `{"involvedObject":{"kind":"Kustomization","namespace":"shop","name":"api","uid":"u-1"},"severity":"info","timestamp":%q,"message":"Reconciliation finished","reason":"ReconciliationSucceeded","metadata":{"revision":"main@sha1:abc1"},"reportingController":"kustomize-controller"}`, now)
	assert.Equal(t, http.StatusOK, send(flux.DefaultPath, fluxEvent, fluxSigned(envSecret, fluxEvent)), "signed with the environment's secret")
	assert.Equal(t, http.StatusUnauthorized, send(flux.DefaultPath, fluxEvent, fluxSigned(fileSecret, fluxEvent)), "signed with another key")

	// The debug exporter and the debug log have had a moment to write.
	require.Eventually(t, func() bool { return strings.Contains(p.log(), "platform.deployments") }, 10*time.Second, 100*time.Millisecond,
		"the debug exporter never logged the metrics (is the log at debug level?)")
	log := p.log()
	assert.Contains(t, log, "\tdebug\t", "the log is not at debug level")
	for _, secret := range []string{fileSecret, envSecret} {
		assert.NotContains(t, log, secret, "the log contains a secret")
		for _, a := range answers {
			assert.NotContains(t, a, secret, "an answer contains a secret")
		}
	}
}
