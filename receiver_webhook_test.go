package dorareceiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const testSecret = "s3cr3t"

// flakyConsumer refuses data while failing is set, like a pipeline whose
// exporter queue is full.
type flakyConsumer struct {
	consumertest.MetricsSink
	failing atomic.Bool
	// refused keeps copies of the last refused emissions, for tests that
	// wait until the data they sent was refused.
	refusedMu sync.Mutex
	refused   []pmetric.Metrics
}

func (c *flakyConsumer) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if c.failing.Load() {
		cp := pmetric.NewMetrics()
		md.CopyTo(cp)
		c.refusedMu.Lock()
		c.refused = append(c.refused, cp)
		if len(c.refused) > 16 {
			c.refused = c.refused[1:]
		}
		c.refusedMu.Unlock()
		return errors.New("exporter queue is full")
	}
	return c.MetricsSink.ConsumeMetrics(ctx, md)
}

// refusedAny reports whether one of the last refused emissions satisfies f.
func (c *flakyConsumer) refusedAny(f func(pmetric.Metrics) bool) bool {
	c.refusedMu.Lock()
	defer c.refusedMu.Unlock()
	for _, md := range c.refused {
		if f(md) {
			return true
		}
	}
	return false
}

func freeEndpoint(t testing.TB) string {
	p, err := localcluster.FreePort()
	require.NoError(t, err)
	return fmt.Sprintf("127.0.0.1:%d", p)
}

func startWebhookReceiver(t *testing.T, next *flakyConsumer, configure func(*Config)) string {
	t.Helper()
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.ServerConfig.MaxRequestBodySize = 64 << 10
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	cfg.Services = []ServiceMapping{{Repository: "acme/api", Namespace: "shop", Deployment: "api"}}
	if configure != nil {
		configure(cfg)
	}
	require.NoError(t, cfg.Validate())
	rcv, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	return "http://" + wc.ServerConfig.NetAddr.Endpoint
}

type reply struct {
	status int
	body   map[string]any
	header http.Header
}

func post(t testing.TB, url, contentType string, body []byte, sign bool) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if sign {
		req.Header.Set("X-Signature-256", "sha256="+webhook.SignHMACSHA256(testSecret, body))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m), "every answer is JSON: %s", raw)
	return reply{status: resp.StatusCode, body: m, header: resp.Header}
}

func deploymentJSON(id, status string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"deployment","id":%q,"time":%q,"repository":"acme/api","environment":"production","status":%q,"deployment_id":"ci-%s","revision":"c3"}`,
		id, at.UTC().Format(time.RFC3339), status, id)
}

func latest(sink *flakyConsumer) pmetric.Metrics {
	all := sink.AllMetrics()
	if len(all) == 0 {
		return pmetric.NewMetrics()
	}
	return all[len(all)-1]
}

func TestWebhookStatuses(t *testing.T) {
	next := &flakyConsumer{}
	base := startWebhookReceiver(t, next, nil)
	url := base + "/events"
	now := time.Now().Truncate(time.Second)

	t.Run("accepted, and counted once when redelivered", func(t *testing.T) {
		body := deploymentJSON("d1", "success", now)
		r := post(t, url, "application/json", body, true)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, "accepted", r.body["status"])
		assert.EqualValues(t, 1, r.body["accepted"])
		// The 200 came after the change reached the pipeline.
		v, ok := counterValue(latest(next), "platform.deployments", map[string]string{"namespace": "shop", "deployment": "api", "status": "success"})
		require.True(t, ok)
		assert.EqualValues(t, 1, v)

		r = post(t, url, "application/json", body, true)
		require.Equal(t, http.StatusOK, r.status)
		assert.EqualValues(t, 0, r.body["accepted"])
		assert.EqualValues(t, 1, r.body["duplicates"])
		v, _ = counterValue(latest(next), "platform.deployments", map[string]string{"deployment": "api"})
		assert.EqualValues(t, 1, v)
	})

	t.Run("lead time from change events and a deployment", func(t *testing.T) {
		changes := fmt.Appendf(nil, `[
			{"type":"change","id":"c1","time":%q,"repository":"acme/web","revision":"w1","parent_revision":"w0"},
			{"type":"change","id":"c2","time":%q,"repository":"acme/web","revision":"w2","parent_revision":"w1"}]`,
			now.Add(-2*time.Hour).UTC().Format(time.RFC3339), now.Add(-time.Hour).UTC().Format(time.RFC3339))
		// web's first deployment is the start of its history.
		baseline := fmt.Appendf(nil, `{"type":"deployment","id":"web-0","time":%q,"repository":"acme/web","environment":"production","status":"success","revision":"w0"}`,
			now.Add(-3*time.Hour).UTC().Format(time.RFC3339))
		r := post(t, url, "application/json", baseline, true)
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = post(t, url, "application/json", changes, true)
		require.Equal(t, http.StatusOK, r.status, r.body)
		deploy := fmt.Appendf(nil, `{"type":"deployment","id":"web-1","time":%q,"repository":"acme/web","environment":"production","status":"success","revision":"w2"}`,
			now.UTC().Format(time.RFC3339))
		r = post(t, url, "application/json", deploy, true)
		require.Equal(t, http.StatusOK, r.status, r.body)
		md := latest(next)
		assert.EqualValues(t, 2, histogramCount(md, "platform.lead_time", map[string]string{"deployment": "web", "namespace": ""}))
	})

	errorCases := []struct {
		name        string
		path        string
		contentType string
		body        []byte
		sign        bool
		status      int
		message     string
	}{
		{"missing signature", "/events", "application/json", deploymentJSON("x", "success", now), false, http.StatusUnauthorized, "missing X-Signature-256"},
		{"malformed body", "/events", "application/json", []byte(`{"type":`), true, http.StatusBadRequest, "malformed JSON"},
		{"missing field", "/events", "application/json", []byte(`{"type":"deployment","id":"x","time":"2026-11-02T10:00:00Z"}`), true, http.StatusBadRequest, `one of "service" or "repository"`},
		{"wrong content type", "/events", "application/x-www-form-urlencoded", []byte("payload=%7B%7D"), true, http.StatusUnsupportedMediaType, "content type"},
		{"too large", "/events", "application/json", bytes.Repeat([]byte(" "), 65<<10), true, http.StatusRequestEntityTooLarge, "exceeds the limit"},
		{"unknown source", "/webhooks/bitbucket", "application/json", []byte(`{}`), true, http.StatusNotFound, "no webhook source is configured at /webhooks/bitbucket"},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, base+tc.path, tc.contentType, tc.body, tc.sign)
			assert.Equal(t, tc.status, r.status)
			assert.Equal(t, "error", r.body["status"])
			assert.Contains(t, r.body["error"], tc.message)
		})
	}

	t.Run("GET is not a delivery", func(t *testing.T) {
		resp, err := http.Get(url)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})

	t.Run("health", func(t *testing.T) {
		resp, err := http.Get(base + "/health")
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("pipeline refusing data gives 503, and the retry is counted once", func(t *testing.T) {
		next.failing.Store(true)
		body := deploymentJSON("d2", "success", now.Add(time.Minute))
		body = bytes.Replace(body, []byte(`"revision":"c3"`), []byte(`"revision":"c4"`), 1)
		r := post(t, url, "application/json", body, true)
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.Equal(t, "5", r.header.Get("Retry-After"))
		assert.Contains(t, r.body["error"], "retry")

		next.failing.Store(false)
		r = post(t, url, "application/json", body, true)
		require.Equal(t, http.StatusOK, r.status, r.body)
		// Nothing lost (the first delivery was applied), nothing twice.
		require.Eventually(t, func() bool {
			v, _ := counterValue(latest(next), "platform.deployments", map[string]string{"deployment": "api", "status": "success"})
			return v == 2
		}, 5*time.Second, 10*time.Millisecond)
	})
}

func TestWebhookBodyLimitWithoutContentLength(t *testing.T) {
	next := &flakyConsumer{}
	base := startWebhookReceiver(t, next, nil)
	// A chunked body has no Content-Length: the limit still applies while
	// reading.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"type":"change","pad":"`))
		_, _ = pw.Write([]byte(strings.Repeat("x", 70<<10)))
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, base+"/events", pr)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

func TestInsecureSourceWarnsAndSecretsStayOutOfLogs(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		t.Run(fmt.Sprintf("insecure=%v", insecure), func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			set := receivertest.NewNopSettings(metadata.Type)
			set.Logger = zap.New(core)
			cfg := createDefaultConfig()
			wc := cfg.Webhooks.GetOrInsertDefault()
			wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
			g := wc.Generic.GetOrInsertDefault()
			if insecure {
				g.InsecureSkipVerify = true
			} else {
				g.Secret = testSecret
			}
			require.NoError(t, cfg.Validate())
			rcv, err := NewFactory().CreateMetrics(context.Background(), set, cfg, &flakyConsumer{})
			require.NoError(t, err)
			require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
			defer func() { require.NoError(t, rcv.Shutdown(context.Background())) }()

			url := "http://" + wc.ServerConfig.NetAddr.Endpoint + "/events"
			post(t, url, "application/json", deploymentJSON("a", "success", time.Now()), true)
			post(t, url, "application/json", []byte(`{"type":`), true)

			warned := logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet("WITHOUT verifying").Len()
			if insecure {
				assert.Equal(t, 1, warned)
			} else {
				assert.Zero(t, warned)
			}
			for _, entry := range logs.All() {
				line := entry.Message
				for k, v := range entry.ContextMap() {
					line += fmt.Sprintf(" %s=%v", k, v)
				}
				assert.NotContains(t, line, testSecret, "a log line contains the secret")
			}
		})
	}
}
