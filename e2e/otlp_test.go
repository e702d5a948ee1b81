package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

const otlpToken = "e2e-otlp-token"

// otlpCollector runs otelcol-dora with the generic webhook source and the
// otlp source behind the bearertokenauth extension that extensionYAML
// configures, the services mapping acme/api -> shop/api, and the
// Prometheus exporter. It returns the webhook base URL and the metrics URL.
func otlpCollector(t *testing.T, bin, extensionYAML string) (string, string) {
	return otlpCollectorNamed(t, bin, "bearertokenauth/ci", extensionYAML)
}

// otlpCollectorNamed is otlpCollector with the authenticator extension
// named auth.
func otlpCollectorNamed(t *testing.T, bin, auth, extensionYAML string) (string, string) {
	t.Helper()
	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    services:
      - repository: acme/api
        namespace: shop
        deployment: api
    webhooks:
      endpoint: %s
      generic:
        secret: %s
      otlp:
        deployment_pipelines: ["deploy*"]
        auth:
          authenticator: %s
exporters:
  prometheus:
    endpoint: %s
    without_scope_info: true
extensions:
  health_check:
    endpoint: %s
  %s
service:
  extensions: [health_check, %s]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, webhookAddr, genericSecret, auth, promAddr, healthAddr, extensionYAML, auth), 0o600))
	runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, "http://" + promAddr + "/metrics"
}

// addSpan builds one span of trace, with attributes "key=value" (keys
// prefixed "resource:" go on its resource).
func addSpan(td ptrace.Traces, trace pcommon.TraceID, name string, id, parent byte, end time.Time, kv ...string) {
	rs := td.ResourceSpans().AppendEmpty()
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetName(name)
	s.SetTraceID(trace)
	s.SetSpanID(pcommon.SpanID{0x5e, id})
	if parent != 0 {
		s.SetParentSpanID(pcommon.SpanID{0x5e, parent})
	}
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-5 * time.Minute)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	for _, pair := range kv {
		k, v, _ := bytes.Cut([]byte(pair), []byte("="))
		m := s.Attributes()
		if rk, ok := bytes.CutPrefix(k, []byte("resource:")); ok {
			k, m = rk, rs.Resource().Attributes()
		}
		m.PutStr(string(k), string(v))
	}
}

func exportJSON(t *testing.T, td ptrace.Traces) []byte {
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	require.NoError(t, err)
	return b
}

func postTraces(t *testing.T, base, authorization string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/traces", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

// searchTrace is the story: the pipeline run deploy-search of the
// CI (service.name search-ci) and its deploy task, which names the
// Kubernetes workload search.
func searchTrace(end time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	trace := pcommon.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03}
	addSpan(td, trace, "deploy-search", 1, 0, end, "resource:service.name=search-ci",
		"cicd.pipeline.run.id=7001", "cicd.pipeline.result=success")
	addSpan(td, trace, "rollout", 2, 1, end.Add(-time.Minute), "resource:service.name=search-ci",
		"cicd.pipeline.task.type=deploy", "cicd.pipeline.task.run.result=success",
		"k8s.namespace.name=search", "k8s.deployment.name=search")
	return td
}

// githubRun is a workflow run of acme/api as the contrib GitHub receiver
// exports it, service.name from a service_name custom property.
func githubRun(end time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	addSpan(td, pcommon.TraceID{0xe6, 0x3f, 0xf8, 0x8f}, "deploy", 1, 0, end,
		"resource:service.name=api-service", "resource:vcs.repository.name=api",
		"resource:vcs.ref.head.revision=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
		"resource:cicd.pipeline.name=deploy",
		"resource:cicd.pipeline.run.url.full=https://github.com/acme/api/actions/runs/11223344556",
		"resource:cicd.pipeline.run.id=11223344556", "resource:cicd.pipeline.run.status=success")
	return td
}

// TestOTLPSpansEndToEnd sends CI/CD spans to the real otelcol-dora with
// the bearertokenauth extension on the otlp path: refused without the
// token (401, nothing counted), counted with it, a trace as one
// deployment, and the spans and the webhooks of a repository on one series.
func TestOTLPSpansEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	base, metricsURL := otlpCollector(t, bin, fmt.Sprintf("bearertokenauth/ci:\n    token: %s", otlpToken))
	now := time.Now().UTC().Truncate(time.Second)

	body := exportJSON(t, searchTrace(now.Add(-2*time.Hour)))
	for name, authz := range map[string]string{"no token": "", "wrong token": "Bearer guess", "wrong scheme": "Basic " + otlpToken} {
		status, raw := postTraces(t, base, authz, body)
		assert.Equal(t, http.StatusUnauthorized, status, name)
		var st struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		require.NoError(t, json.Unmarshal([]byte(raw), &st), "%s: a JSON google.rpc.Status: %s", name, raw)
		assert.Equal(t, 16, st.Code, "UNAUTHENTICATED")
		assert.Contains(t, st.Message, "unauthenticated", name)
	}
	assert.Zero(t, scrape(t, metricsURL).sum("platform_deployments_total", nil), "nothing counted")

	status, raw := postTraces(t, base, "Bearer "+otlpToken, body)
	require.Equal(t, http.StatusOK, status, raw)
	m := scrape(t, metricsURL)
	assert.Equal(t, 1.0, m.sum("platform_deployments_total", map[string]string{"namespace": "search", "deployment": "search"}))
	assert.Equal(t, 1.0, m.sum("platform_deployments_total", nil), "one deployment: no search-ci series")

	// The contrib GitHub receiver's run of acme/api and a webhook of the
	// same repository: one series, the mapped one.
	status, raw = postTraces(t, base, "Bearer "+otlpToken, exportJSON(t, githubRun(now.Add(-time.Hour))))
	require.Equal(t, http.StatusOK, status, raw)
	r := sendGeneric(t, base, fmt.Appendf(nil, `{"type":"deployment","id":"g1","time":%q,"repository":"acme/api","environment":"production","status":"success","deployment_id":"ci-g1","revision":"c3"}`,
		now.Add(-30*time.Minute).Format(time.RFC3339)))
	require.Equal(t, http.StatusOK, r.status, r.body)
	m = scrape(t, metricsURL)
	assert.Equal(t, 2.0, m.sum("platform_deployments_total", map[string]string{"namespace": "shop", "deployment": "api"}))
	assert.Equal(t, 3.0, m.sum("platform_deployments_total", nil), "no series with an empty namespace")
}

// TestOTLPWithOIDC authenticates the otlp path with the oidc extension:
// a real OIDC issuer cannot be reached here, so the extension verifies
// JWTs with the issuer's keys from a local JWKS file (public_keys_file),
// which is what it would fetch from the issuer.
func TestOTLPWithOIDC(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString
	pad32 := func(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "ci", "alg": "ES256", "use": "sig",
		"x": b64(pad32(key.X.Bytes())), "y": b64(pad32(key.Y.Bytes())),
	}}})
	require.NoError(t, err)
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(jwksFile, jwks, 0o600))
	const issuer, audience = "https://issuer.ci.example", "otelcol-dora"
	jwt := func(claims map[string]any) string {
		h, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "ci"})
		c, _ := json.Marshal(claims)
		signing := b64(h) + "." + b64(c)
		sum := sha256.Sum256([]byte(signing))
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		require.NoError(t, err)
		return signing + "." + b64(append(pad32(r.Bytes()), pad32(s.Bytes())...))
	}
	now := time.Now()
	valid := jwt(map[string]any{"iss": issuer, "aud": audience, "sub": "ci", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	otherAudience := jwt(map[string]any{"iss": issuer, "aud": "someone-else", "sub": "ci", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})

	base, metricsURL := otlpCollectorNamed(t, bin, "oidc/ci", fmt.Sprintf(`oidc/ci:
    providers:
      - issuer_url: %s
        audience: %s
        public_keys_file: %s`, issuer, audience, jwksFile))
	body := exportJSON(t, searchTrace(now.Add(-time.Hour)))
	for name, authz := range map[string]string{"no token": "", "another audience": "Bearer " + otherAudience} {
		status, raw := postTraces(t, base, authz, body)
		assert.Equal(t, http.StatusUnauthorized, status, "%s: %s", name, raw)
	}
	assert.Zero(t, scrape(t, metricsURL).sum("platform_deployments_total", nil))
	status, raw := postTraces(t, base, "Bearer "+valid, body)
	require.Equal(t, http.StatusOK, status, raw)
	assert.Equal(t, 1.0, scrape(t, metricsURL).sum("platform_deployments_total", map[string]string{"deployment": "search"}))
}
