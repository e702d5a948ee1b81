package dorareceiver

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-dora/dorareceiver/internal/cardinality"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
)

// servicesJSON is one generic delivery of a successful production
// deployment of each service, ids prefixed with prefix.
func servicesJSON(prefix string, at time.Time, services ...string) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, s := range services {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"deployment","id":"%s-%d","time":%q,"service":%q,"namespace":"shop","environment":"production","status":"success","deployment_id":"%s-%d","revision":"c%d"}`,
			prefix, i, at.UTC().Format(time.RFC3339), s, prefix, i, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// ownCounts collects the receiver's own counter name by its source and
// attribute (or reason) attributes.
func ownCounts(t *testing.T, reader *sdkmetric.ManualReader, name, key string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				src, _ := dp.Attributes.Value("source")
				v, _ := dp.Attributes.Value(attributeKey(key))
				got[src.AsString()+"/"+v.AsString()] = dp.Value
			}
		}
	}
	return got
}

// deploymentsByService sums platform.deployments of md by deployment.
func deploymentsByService(md pmetric.Metrics) map[string]int64 {
	out := map[string]int64{}
	forEachMetric(md, "platform.deployments", func(m pmetric.Metric) {
		dps := m.Sum().DataPoints()
		for i := range dps.Len() {
			d, _ := dps.At(i).Attributes().Get("deployment")
			out[d.Str()] += dps.At(i).IntValue()
		}
	})
	return out
}

// TestTwentyThousandServicesInOneDelivery is the probe of issue 13: one
// delivery naming 20,000 services. The first max_services keep their
// names, the rest are counted under _overflow, each fold is counted in
// the receiver's telemetry and one warning names the source and the
// attribute.
func TestTwentyThousandServicesInOneDelivery(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	reader := sdkmetric.NewManualReader()
	set := receivertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	set.TelemetrySettings.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.ServerConfig.MaxRequestBodySize = 16 << 20
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	cfg.Limits.MaxEventsPerDelivery = 20000
	require.NoError(t, cfg.Validate())
	limit := cfg.Limits.MaxServices
	require.Less(t, limit, 20000, "the default limit is what is tested")
	next := &flakyConsumer{}
	rcv, err := NewFactory().CreateMetrics(context.Background(), set, cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), &statusHost{}))
	defer func() { require.NoError(t, rcv.Shutdown(context.Background())) }()

	services := make([]string, 20000)
	for i := range services {
		services[i] = fmt.Sprintf("svc-%05d", i)
	}
	r := post(t, "http://"+wc.ServerConfig.NetAddr.Endpoint+"/events", "application/json", servicesJSON("d", time.Now(), services...), true)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.EqualValues(t, 20000, r.body["accepted"])

	got := deploymentsByService(latest(next))
	assert.Len(t, got, limit+1, "the limit's services and the overflow")
	assert.EqualValues(t, 20000-limit, got[cardinality.Overflow])
	assert.EqualValues(t, 1, got[services[limit-1]])
	assert.NotContains(t, got, services[limit])
	// Every series of the emission, not only the deployments: 28 for a
	// production service with one deployment (counters, histograms and the
	// rolling values and levels of three windows).
	assert.LessOrEqual(t, latest(next).DataPointCount(), 28*(limit+1))

	assert.Equal(t, map[string]int64{"generic/service": int64(20000 - limit)}, ownCounts(t, reader, metricFolded, "attribute"))
	warned := logs.FilterMessageSnippet("folded into the overflow value").All()
	require.Len(t, warned, 1, "rate-limited")
	assert.Equal(t, "generic", warned[0].ContextMap()["source"])
	assert.Equal(t, "service", warned[0].ContextMap()["attribute"])
	assert.Equal(t, "limits::max_services", warned[0].ContextMap()["limit"])
}

// TestFoldingSurvivesRestart: a service folded before a restart still
// folds after it, one admitted keeps its name, and a mapped service is
// admitted past the limit.
func TestFoldingSurvivesRestart(t *testing.T) {
	ext := persisttest.NewExtension()
	host := extensionHost{storageID: ext}
	now := time.Now().UTC().Truncate(time.Second)
	small := func(cfg *Config) { cfg.Limits.MaxServices = 2 }

	first := startStoredReceiver(t, host, small)
	r := first.deliver(t, servicesJSON("a", now.Add(-time.Hour), "one", "two", "three"))
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.Equal(t, map[string]int64{"one": 1, "two": 1, cardinality.Overflow: 1}, deploymentsByService(latest(first.next)))
	first.stop()

	second := startStoredReceiver(t, host, small)
	r = second.deliver(t, servicesJSON("b", now, "three", "one", "four"))
	require.Equal(t, http.StatusOK, r.status, r.body)
	// (The emission carries the services the delivery touched.)
	assert.Equal(t, map[string]int64{"one": 2, cardinality.Overflow: 3}, deploymentsByService(latest(second.next)))

	// The mapped service (acme/api: shop/api) is never folded.
	r = second.deliver(t, deployJSON("m1", "success", "r1", now))
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.EqualValues(t, 1, deploymentsByService(latest(second.next))["api"])
}

// TestMemoryGuard: past limits::max_state_bytes, new services of a sender
// fold, admitted ones do not, and the component status says why.
func TestMemoryGuard(t *testing.T) {
	host := &statusHost{}
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	// Under the estimate of one service's series: the first is admitted
	// (the guard looks after each new value), the state is then over.
	cfg.Limits.MaxStateBytes = ingest.CostPerSeries
	require.NoError(t, cfg.Validate())
	next := &flakyConsumer{}
	rcv, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host))
	defer func() { require.NoError(t, rcv.Shutdown(context.Background())) }()
	url := "http://" + wc.ServerConfig.NetAddr.Endpoint + "/events"
	now := time.Now()

	require.Equal(t, http.StatusOK, post(t, url, "application/json", servicesJSON("a", now, "one"), true).status)
	r := post(t, url, "application/json", servicesJSON("b", now, "two", "one"), true)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, map[string]int64{"one": 2, cardinality.Overflow: 1}, deploymentsByService(latest(next)))

	var guard *componentstatus.Event
	for _, e := range host.since(0) {
		if e.Status() == componentstatus.StatusRecoverableError {
			guard = e
		}
	}
	require.NotNil(t, guard, "the status reports the guard")
	assert.Contains(t, guard.Err().Error(), "limits::max_state_bytes")
}

func attributeKey(k string) attribute.Key { return attribute.Key(k) }
