package emitter

import (
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

var (
	start = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	api   = event.Service{Namespace: "shop", Name: "api", Environment: "production"}
	web   = event.Service{Namespace: "shop", Name: "web", Environment: "staging"}
)

// scenario drives a real engine through a small history: api deploys with a
// known commit time, fails a rollout, recovers; web deploys once.
func scenario(t *testing.T) engine.Snapshot {
	e, err := engine.New(engine.DefaultConfig(), start)
	require.NoError(t, err)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	for _, ev := range []event.Event{
		{Kind: event.DeploymentSucceeded, Time: at(time.Hour), Service: api, DeploymentID: "api-1", Revision: "abc1234", CommitTime: at(20 * time.Minute)},
		{Kind: event.DeploymentStarted, Time: at(2 * time.Hour), Service: api, DeploymentID: "api-2"},
		{Kind: event.DeploymentFailed, Time: at(2*time.Hour + 10*time.Minute), Service: api, DeploymentID: "api-2", Reason: "ProgressDeadlineExceeded"},
		{Kind: event.DeploymentSucceeded, Time: at(2*time.Hour + 40*time.Minute), Service: api, DeploymentID: "api-3"},
		{Kind: event.DeploymentSucceeded, Time: at(3 * time.Hour), Service: web, DeploymentID: "web-1"},
	} {
		_, err := e.Apply(ev)
		require.NoError(t, err)
	}
	return e.Snapshot()
}

func TestEmitGolden(t *testing.T) {
	em := New(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	got := em.Emit(scenario(t), start.Add(4*time.Hour))

	path := filepath.Join("testdata", "expected.yaml")
	if *update {
		require.NoError(t, golden.WriteMetrics(t, path, got))
	}
	want, err := golden.ReadMetrics(path)
	require.NoError(t, err)
	// The golden writer normalizes timestamps; TestEmitIsCumulativeAcrossCalls
	// checks them.
	require.NoError(t, pmetrictest.CompareMetrics(want, got, pmetrictest.IgnoreTimestamp(), pmetrictest.IgnoreStartTimestamp(),
		pmetrictest.IgnoreMetricDataPointsOrder(), pmetrictest.IgnoreMetricsOrder()))
}

func TestEmitIsCumulativeAcrossCalls(t *testing.T) {
	em := New(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	snap := scenario(t)
	first := em.Emit(snap, start.Add(4*time.Hour))
	second := em.Emit(snap, start.Add(5*time.Hour))
	// The same state emitted twice gives the same values with the same start
	// time: exporters see one cumulative series, not new deployments.
	require.NoError(t, pmetrictest.CompareMetrics(first, second, pmetrictest.IgnoreTimestamp(),
		pmetrictest.IgnoreMetricDataPointsOrder(), pmetrictest.IgnoreMetricsOrder()))
	ms := second.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := range ms.Len() {
		m := ms.At(i)
		switch m.Type() {
		case pmetric.MetricTypeSum:
			assert.True(t, m.Sum().IsMonotonic(), m.Name())
			assert.Equal(t, pmetric.AggregationTemporalityCumulative, m.Sum().AggregationTemporality(), m.Name())
			for j := range m.Sum().DataPoints().Len() {
				dp := m.Sum().DataPoints().At(j)
				assert.Equal(t, start, dp.StartTimestamp().AsTime(), m.Name())
				assert.Equal(t, start.Add(5*time.Hour), dp.Timestamp().AsTime(), m.Name())
			}
		case pmetric.MetricTypeHistogram:
			assert.Equal(t, pmetric.AggregationTemporalityCumulative, m.Histogram().AggregationTemporality(), m.Name())
			for j := range m.Histogram().DataPoints().Len() {
				dp := m.Histogram().DataPoints().At(j)
				assert.Equal(t, start, dp.StartTimestamp().AsTime(), m.Name())
				assert.Equal(t, start.Add(5*time.Hour), dp.Timestamp().AsTime(), m.Name())
			}
		default:
			t.Errorf("unexpected metric type %s for %s", m.Type(), m.Name())
		}
	}
}

func TestEmitHistogramsWithoutCounters(t *testing.T) {
	em := New(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	snap := engine.Snapshot{StartTime: start, RecoveryTime: []engine.HistogramPoint{{
		Service:   api,
		Histogram: engine.Histogram{Bounds: []float64{60}, Counts: []uint64{0, 1}, Count: 1, Sum: 90, Min: 90, Max: 90},
	}}}
	md := em.Emit(snap, start.Add(time.Hour))
	require.Equal(t, 1, md.ResourceMetrics().Len())
	sm := md.ResourceMetrics().At(0).ScopeMetrics().At(0)
	assert.Equal(t, metadata.ScopeName, sm.Scope().Name())
	require.Equal(t, 1, sm.Metrics().Len())
	m := sm.Metrics().At(0)
	assert.Equal(t, RecoveryTimeMetric, m.Name())
	assert.Equal(t, pmetric.MetricTypeHistogram, m.Type())
	assert.Equal(t, []uint64{0, 1}, m.Histogram().DataPoints().At(0).BucketCounts().AsRaw())
}

func TestEmitEmptyState(t *testing.T) {
	em := New(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	md := em.Emit(engine.Snapshot{StartTime: start}, start)
	assert.Equal(t, 0, md.DataPointCount())
}
