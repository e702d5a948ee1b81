package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/persist"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// boundsCollector runs otelcol-dora with the generic and otlp sources,
// file_storage on dir and the collector's own metrics on a Prometheus
// endpoint; it returns the webhook base URL, the DORA metrics URL and the
// collector's own metrics URL.
func boundsCollector(t *testing.T, bin, dir string) (webhookURL, metricsURL, ownURL string, p *collectorProcess) {
	t.Helper()
	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ownPort := freePort(t)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    storage: file_storage/dora
    webhooks:
      endpoint: %s
      generic:
        secret: %s
      otlp:
        # The bounds, not the authentication, are under test here
        # (e2e/otlp_test.go tests the authenticators).
        insecure_skip_verify: true
exporters:
  prometheus:
    endpoint: %s
    without_scope_info: true
extensions:
  health_check:
    endpoint: %s
  file_storage/dora:
    directory: %s
service:
  extensions: [health_check, file_storage/dora]
  telemetry:
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, webhookAddr, genericSecret, promAddr, healthAddr, dir, ownPort), 0o600))
	p = runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, "http://" + promAddr + "/metrics", fmt.Sprintf("http://127.0.0.1:%d/metrics", ownPort), p
}

// ownCounter sums the samples of the collector's own metric family name
// (with or without _total) whose labels include every one of labels.
func ownCounter(t *testing.T, url, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+"_total{") && !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"_total ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		require.NoError(t, err, line)
		sum += v
	}
	return sum
}

func deploymentBody(id string, at time.Time, service string) []byte {
	return fmt.Appendf(nil, `{"type":"deployment","id":%q,"time":%q,"service":%q,"namespace":"shop","environment":"production","status":"success","deployment_id":%q,"revision":"c3"}`,
		id, at.UTC().Format(time.RFC3339), service, id)
}

// deploySpans is an OTLP/protobuf export of n successful deployment task
// spans of shop/api, each its own run.
func deploySpans(t *testing.T, n int, end time.Time) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("k8s.namespace.name", "shop")
	rs.Resource().Attributes().PutStr("k8s.deployment.name", "api")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		s := spans.AppendEmpty()
		s.SetName("deploy")
		s.SetTraceID(pcommon.TraceID{byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
		s.SetSpanID(pcommon.SpanID{1, byte(i >> 16), byte(i >> 8), byte(i)})
		s.SetParentSpanID(pcommon.SpanID{9})
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Minute)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		s.Attributes().PutStr("cicd.pipeline.task.type", "deploy")
		s.Attributes().PutStr("cicd.pipeline.task.run.result", "success")
		s.Attributes().PutStr("cicd.pipeline.task.run.id", strconv.Itoa(i))
		s.Attributes().PutStr("deployment.environment.name", "production")
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	return b
}

// TestBoundsThroughTheBinary replays the probes of issue 13 against the
// built binary: a 9 MiB label, an export with more events than the limit,
// far-future and millisecond timestamps are refused and counted; then
// poison events are written into the stopped collector's storage and a
// new collector on it starts, sets them aside and says so.
func TestBoundsThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	dir := t.TempDir()
	webhookURL, metricsURL, ownURL, p := boundsCollector(t, bin, dir)
	now := time.Now()

	// A signed delivery with a 9 MiB service.
	a := sendGeneric(t, webhookURL, deploymentBody("big", now, strings.Repeat("x", 9<<20)))
	assert.Equal(t, http.StatusBadRequest, a.status, a.body)
	assert.Equal(t, "service", a.body["field"])
	assert.Contains(t, a.body["error"], "9437184 bytes, above the limit of 253")

	// Far in the future, and X-Dora-Timestamp in milliseconds.
	a = sendGeneric(t, webhookURL, deploymentBody("future", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "api"))
	assert.Equal(t, http.StatusBadRequest, a.status, a.body)
	assert.Equal(t, "time", a.body["field"])
	body := deploymentBody("ms", now, "api")
	stamp := strconv.FormatInt(now.UnixMilli(), 10)
	req, err := http.NewRequest(http.MethodPost, webhookURL+"/events", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(generic.TimestampHeader, stamp)
	req.Header.Set(generic.SignatureHeader, "sha256="+webhook.SignHMACSHA256(genericSecret, []byte(stamp+"."+string(body))))
	a = deliver(t, req)
	assert.Equal(t, http.StatusBadRequest, a.status, a.body)
	assert.Contains(t, a.body["error"], "looks like milliseconds")

	// More spans in one export than max_events_per_delivery (5000).
	resp, err := http.Post(webhookURL+"/v1/traces", "application/x-protobuf", bytes.NewReader(deploySpans(t, 6000, now)))
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s", raw)
	assert.Contains(t, string(raw), "6000 events, above the limit of 5000")

	// One good delivery, counted.
	a = sendGeneric(t, webhookURL, deploymentBody("ok", now, "api"))
	require.Equal(t, http.StatusOK, a.status, a.body)
	waitMetric(t, metricsURL, "platform_deployments_total", map[string]string{"deployment": "api", "status": "success"}, 1)
	assert.Zero(t, scrape(t, metricsURL).sum("platform_deployments_total", map[string]string{"deployment": strings.Repeat("x", 9<<20)}))

	assert.Equal(t, 1.0, ownCounter(t, ownURL, "otelcol_dora_refused_deliveries", `source="generic"`, `reason="value_too_long"`))
	assert.Equal(t, 1.0, ownCounter(t, ownURL, "otelcol_dora_refused_deliveries", `source="generic"`, `reason="time_in_future"`))
	assert.Equal(t, 1.0, ownCounter(t, ownURL, "otelcol_dora_refused_deliveries", `source="otlp_spans"`, `reason="too_large"`))
	assert.Contains(t, p.log(), `"client": "127.0.0.1:`, "refusal lines carry the client address")
	p.kill(t)

	// Poison in the stopped collector's storage: an over-long label and an
	// unknown kind, as an older build or a hand could have left them.
	writePoison(t, dir, now)

	_, metricsURL, ownURL, p = boundsCollector(t, bin, dir)
	log := p.log()
	assert.Contains(t, log, "was set aside")
	assert.Contains(t, log, `"events_set_aside": 2`)
	assert.Equal(t, 2.0, ownCounter(t, ownURL, "otelcol_dora_set_aside_events"))
	waitMetric(t, metricsURL, "platform_deployments_total", map[string]string{"deployment": "api", "status": "success"}, 1)
}

// writePoison appends two events that no delivery could carry to the log
// in dir's file_storage, through the same extension the binary uses.
func writePoison(t *testing.T, dir string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	ext, err := f.Create(ctx, extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(ctx, componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(ctx)) }()
	client, err := ext.(storage.Extension).GetClient(ctx, component.KindReceiver, component.MustNewID("dora"), "")
	require.NoError(t, err)
	defer func() { require.NoError(t, client.Close(ctx)) }()

	store := persist.New(client)
	_, _, _, err = store.Load(ctx)
	require.NoError(t, err)
	long := event.Event{Kind: event.DeploymentSucceeded, Source: "generic", ID: "poison", Time: now.Add(-time.Minute),
		Service: event.Service{Namespace: "shop", Name: strings.Repeat("x", 9<<20), Environment: "production"}, DeploymentID: "poison"}
	last, err := store.Append(ctx, []event.Event{long})
	require.NoError(t, err)
	last++
	require.NoError(t, client.Set(ctx, persist.EventKey(last),
		[]byte(`{"version":1,"event":{"kind":"deployment_exploded","source":"generic","time":"2026-11-03T00:00:00Z"}}`)))
	require.NoError(t, client.Set(ctx, persist.KeySeq, []byte(strconv.FormatUint(last, 10))))
}
