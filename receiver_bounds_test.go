package dorareceiver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
	"github.com/otelcol-dora/dorareceiver/internal/persist"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// startStoredReceiverWith is startStoredReceiver with the given settings
// (a logger to observe).
func startStoredReceiverWith(t *testing.T, host component.Host, set receiver.Settings) *storedReceiver {
	t.Helper()
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	cfg.Services = []ServiceMapping{{Repository: "acme/api", Namespace: "shop", Deployment: "api"}}
	id := storageID
	cfg.Storage = &id
	require.NoError(t, cfg.Validate())
	next := &flakyConsumer{}
	rcv, err := NewFactory().CreateMetrics(context.Background(), set, cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host), "the receiver starts")
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	return &storedReceiver{url: "http://" + wc.ServerConfig.NetAddr.Endpoint + "/events", next: next, rcv: rcv}
}

// TestOverLongValueRefusedBeforeStorage: a signed generic delivery whose
// service is over its limit is answered 400 with the field named, and
// nothing of it is logged to the storage or counted.
func TestOverLongValueRefusedBeforeStorage(t *testing.T) {
	ext := persisttest.NewExtension()
	host := extensionHost{storageID: ext}
	rcv := startStoredReceiver(t, host, nil)
	now := time.Now().UTC().Truncate(time.Second)

	long := strings.Repeat("a", 254)
	body := fmt.Appendf(nil, `{"type":"deployment","id":"d1","time":%q,"service":%q,"namespace":"shop","environment":"production","status":"success","deployment_id":"d1","revision":"c3"}`,
		now.Format(time.RFC3339), long)
	r := rcv.deliver(t, body)
	require.Equal(t, http.StatusBadRequest, r.status, r.body)
	assert.Equal(t, "service", r.body["field"])
	assert.Contains(t, r.body["error"], "254 bytes, above the limit of 253")
	for _, c := range ext.Clients() {
		assert.Nil(t, c.Value(persist.KeySeq), "nothing was logged")
	}

	// The same delivery at the limit is taken.
	body = []byte(strings.Replace(string(body), long, long[:253], 1))
	r = rcv.deliver(t, body)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.EqualValues(t, 1, r.body["accepted"])
}

// TestFutureAndMillisecondTimesRefused: an event dated past the skew, or
// in milliseconds read as seconds, is refused with the field named.
func TestFutureAndMillisecondTimesRefused(t *testing.T) {
	next := &flakyConsumer{}
	base := startWebhookReceiver(t, next, nil)
	now := time.Now().UTC()
	for name, tc := range map[string]struct {
		at   time.Time
		want string
	}{
		"year 9999":    {time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "is more than 10m0s after it was received"},
		"an hour away": {now.Add(time.Hour), "is more than 10m0s after it was received"},
	} {
		t.Run(name, func(t *testing.T) {
			r := post(t, base+"/events", "application/json", deploymentJSON("f-"+name, "success", tc.at), true)
			require.Equal(t, http.StatusBadRequest, r.status, r.body)
			assert.Equal(t, "time", r.body["field"])
			assert.Contains(t, r.body["error"], tc.want)
		})
	}
	assert.Empty(t, next.AllMetrics(), "nothing was counted")

	// X-Dora-Timestamp in milliseconds.
	body := deploymentJSON("ms", "success", now)
	stamp := strconv.FormatInt(now.UnixMilli(), 10)
	req, err := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Dora-Timestamp", stamp)
	req.Header.Set("X-Signature-256", "sha256="+webhook.SignHMACSHA256(testSecret, []byte(stamp+"."+string(body))))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
	assert.Contains(t, m["error"], "looks like milliseconds")
}

// ciSpans is an OTLP export of n successful deployment task spans, each
// its own run, of the service api in shop (name overrides the
// k8s.deployment.name).
func ciSpans(t *testing.T, n int, name string, end time.Time) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("k8s.namespace.name", "shop")
	rs.Resource().Attributes().PutStr("k8s.deployment.name", name)
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		s := spans.AppendEmpty()
		s.SetName("deploy")
		var tid pcommon.TraceID
		tid[0], tid[1], tid[2], tid[15] = byte(i>>16), byte(i>>8), byte(i), 1
		s.SetTraceID(tid)
		s.SetSpanID(pcommon.SpanID{1, byte(i >> 16), byte(i >> 8), byte(i)})
		s.SetParentSpanID(pcommon.SpanID{9})
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Minute)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		s.Attributes().PutStr("cicd.pipeline.task.type", "deploy")
		s.Attributes().PutStr("cicd.pipeline.task.run.result", "success")
		s.Attributes().PutStr("cicd.pipeline.task.run.id", strconv.Itoa(i))
		s.Attributes().PutStr("deployment.environment.name", "production")
		s.Attributes().PutStr("vcs.ref.head.revision", fmt.Sprintf("%040x", i))
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	return b
}

// TestSpansBounds: an OTLP export with an over-long k8s.deployment.name
// is refused 400 naming the field; one with more events than
// max_events_per_delivery is refused 413 with the count; nothing is
// counted from either, and an export within both limits is taken.
func TestSpansBounds(t *testing.T) {
	next := &flakyConsumer{}
	base := startWebhookReceiver(t, next, func(cfg *Config) {
		cfg.Webhooks.Get().ServerConfig.MaxRequestBodySize = 16 << 20
		cfg.Webhooks.Get().Spans.GetOrInsertDefault()
		cfg.Limits.MaxEventsPerDelivery = 10
	})
	now := time.Now().UTC()
	traces := base + "/v1/traces"
	// The answers are google.rpc.Status in protobuf: their message is
	// readable in the bytes.
	status := func(body []byte) (int, string) {
		resp, err := http.Post(traces, "application/x-protobuf", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(raw)
	}

	code, msg := status(ciSpans(t, 1, strings.Repeat("x", 9<<20), now))
	assert.Equal(t, http.StatusBadRequest, code, msg)
	assert.Contains(t, msg, "service: 9437184 bytes, above the limit of 253")

	code, msg = status(ciSpans(t, 11, "api", now))
	assert.Equal(t, http.StatusRequestEntityTooLarge, code, msg)
	assert.Contains(t, msg, "11 events, above the limit of 10")
	assert.Empty(t, next.AllMetrics(), "nothing was counted")

	code, msg = status(ciSpans(t, 10, "api", now))
	require.Equal(t, http.StatusOK, code, msg)
	require.Eventually(t, func() bool {
		v, _ := counterValue(latest(next), "platform.deployments", map[string]string{"namespace": "shop", "deployment": "api", "status": "success"})
		return v == 10
	}, 5*time.Second, 10*time.Millisecond)
}

// TestPoisonEventsSetAsideAtStart: events in the saved log that a
// delivery could not carry (an over-long label, an unknown kind, a time
// in the far future) do not keep the receiver from starting: they are set
// aside under their own keys, logged, and the good events are replayed.
func TestPoisonEventsSetAsideAtStart(t *testing.T) {
	ext := persisttest.NewExtension()
	host := extensionHost{storageID: ext}
	now := time.Now().UTC().Truncate(time.Second)

	first := startStoredReceiver(t, host, nil)
	r := first.deliver(t, deployJSON("d0", "success", "r0", now.Add(-time.Hour)))
	require.Equal(t, http.StatusOK, r.status, r.body)
	first.stop()

	// Written as an older build (or a hand) would have: three bad events
	// after a good one, appended to the log.
	client := ext.Client(component.KindReceiver.String() + "/" + storedSettings().ID.String() + "/")
	store := persist.New(client)
	_, _, _, err := store.Load(context.Background())
	require.NoError(t, err)
	good := event.Event{Kind: event.DeploymentSucceeded, Source: "generic", ID: "d1", Time: now.Add(-30 * time.Minute),
		Service: event.Service{Namespace: "shop", Name: "api", Environment: "production"}, DeploymentID: "d1", Revision: "r1"}
	long := good
	long.ID, long.DeploymentID, long.Service.Name = "d2", "d2", strings.Repeat("x", 1<<20)
	// (A time in milliseconds cannot be logged: JSON has no year past 9999.)
	future := good
	future.ID, future.DeploymentID, future.Time = "d3", "d3", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	last, err := store.Append(context.Background(), []event.Event{long, good, future})
	require.NoError(t, err)
	// An unknown kind cannot be encoded: it is written as its JSON.
	last++
	require.NoError(t, client.Set(context.Background(), persist.EventKey(last),
		[]byte(`{"version":1,"event":{"kind":"deployment_exploded","source":"generic","time":"2026-11-03T00:00:00Z"}}`)))
	require.NoError(t, client.Set(context.Background(), persist.KeySeq, []byte(strconv.FormatUint(last, 10))))

	core, logs := observer.New(zap.InfoLevel)
	set := storedSettings()
	set.Logger = zap.New(core)
	second := startStoredReceiverWith(t, host, set)
	second.waitCounters(t, counters{success: 2})

	setAside := logs.FilterMessageSnippet("set aside").All()
	require.Len(t, setAside, 3, "each bad event is logged")
	for _, seq := range []uint64{last - 3, last - 1, last} {
		v := client.Value(persist.SetAsideKey(seq))
		require.NotNil(t, v, "event %d is kept for inspection", seq)
		assert.Nil(t, client.Value(persist.EventKey(seq)), "and out of the log after the start's snapshot")
	}
	assert.Contains(t, string(client.Value(persist.SetAsideKey(last-3))), "service: 1048576 bytes")
	assert.Contains(t, string(client.Value(persist.SetAsideKey(last-1))), "is more than 10m0s after it was received")
	assert.Contains(t, string(client.Value(persist.SetAsideKey(last))), "deployment_exploded")
	restored := logs.FilterMessage("DORA state restored from storage").All()
	require.Len(t, restored, 1)
	assert.EqualValues(t, 3, restored[0].ContextMap()["events_set_aside"])
}

// TestRefusalsCountedAndLogged: each refused delivery is counted by
// source and reason in the receiver's own telemetry, and its log line
// carries the client's address.
func TestRefusalsCountedAndLogged(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	reader := sdkmetric.NewManualReader()
	set := receivertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	set.TelemetrySettings.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	require.NoError(t, cfg.Validate())
	rcv, err := NewFactory().CreateMetrics(context.Background(), set, cfg, &flakyConsumer{})
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, rcv.Shutdown(context.Background())) }()

	url := "http://" + wc.ServerConfig.NetAddr.Endpoint + "/events"
	long := fmt.Appendf(nil, `{"type":"deployment","id":"d1","time":%q,"service":%q,"namespace":"shop","environment":"production","status":"success","deployment_id":"d1"}`,
		time.Now().UTC().Format(time.RFC3339), strings.Repeat("a", 300))
	for range 2 {
		r := post(t, url, "application/json", long, true)
		require.Equal(t, http.StatusBadRequest, r.status, r.body)
		require.Equal(t, "service", r.body["field"], r.body)
	}
	require.Equal(t, http.StatusUnauthorized, post(t, url, "application/json", long, false).status)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != metricRefused {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				src, _ := dp.Attributes.Value("source")
				reason, _ := dp.Attributes.Value("reason")
				got[src.AsString()+"/"+reason.AsString()] = dp.Value
			}
		}
	}
	assert.Equal(t, map[string]int64{"generic/value_too_long": 2, "generic/unauthorized": 1}, got)

	refused := logs.FilterMessage("Webhook delivery refused").All()
	require.Len(t, refused, 3)
	for _, e := range refused {
		assert.Contains(t, e.ContextMap()["client"], "127.0.0.1:")
	}
}

// TestStartWarnings: a short secret and a disabled timeout are each named
// at start; the defaults with a long secret draw none.
func TestStartWarnings(t *testing.T) {
	wc := defaultWebhooksConfig()
	wc.Generic.GetOrInsertDefault().Secret = "0123456789abcdef" // 16 bytes
	assert.Empty(t, startWarnings(&wc))

	wc.Generic.Get().Secret = "0123456789abcde" // 15
	wc.Flux.GetOrInsertDefault().Secret = "x"
	wc.ServerConfig.ReadHeaderTimeout = 0
	var keys []string
	for _, w := range startWarnings(&wc) {
		keys = append(keys, w.key)
	}
	assert.ElementsMatch(t, []string{"flux::secret", "generic::secret", "read_header_timeout"}, keys)
}
