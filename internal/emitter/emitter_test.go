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

// scenario drives a real engine through a small history: api's first
// deployment starts its history (its commit's lead time is dropped), then
// it ships a reviewed change (commit 20m, opened 25m, merged 30m, rollout
// 50m to 1h), fails a rollout, is rolled back (rework) and recovers; web
// (staging) deploys once and has an incident. The snapshot is taken at 4h,
// with the rolling values: api's history started at 10m, so 3h50m of each
// window is observed (coverage 230/1440 of 1d, 0.16): min_window_coverage
// 0.1 gives the 1d window levels, the 7d and 30d windows none.
func scenario(t *testing.T) engine.Snapshot {
	cfg := engine.DefaultConfig()
	cfg.MinWindowCoverage = 0.1
	e, err := engine.New(cfg, start)
	require.NoError(t, err)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	for _, ev := range []event.Event{
		{Kind: event.DeploymentSucceeded, Time: at(10 * time.Minute), Service: api, DeploymentID: "api-0", Revision: "0000001", CommitTime: at(0)},
		{Kind: event.ChangeCommitted, Time: at(20 * time.Minute), Revision: "abc1234", ParentRevision: "0000001"},
		{Kind: event.ChangeOpened, Time: at(25 * time.Minute), ChangeID: "pr-1"},
		{Kind: event.ChangeMerged, Time: at(30 * time.Minute), Revision: "abc1234", ChangeID: "pr-1"},
		{Kind: event.DeploymentStarted, Time: at(50 * time.Minute), Service: api, DeploymentID: "api-1", Revision: "abc1234"},
		{Kind: event.DeploymentSucceeded, Time: at(time.Hour), Service: api, DeploymentID: "api-1", Revision: "abc1234"},
		{Kind: event.DeploymentStarted, Time: at(2 * time.Hour), Service: api, DeploymentID: "api-2"},
		{Kind: event.DeploymentFailed, Time: at(2*time.Hour + 10*time.Minute), Service: api, DeploymentID: "api-2", Reason: "ProgressDeadlineExceeded"},
		{Kind: event.DeploymentRolledBack, Time: at(2*time.Hour + 35*time.Minute), Service: api, DeploymentID: "api-3", PreviousDeploymentID: "api-2"},
		{Kind: event.DeploymentSucceeded, Time: at(2*time.Hour + 40*time.Minute), Service: api, DeploymentID: "api-3"},
		{Kind: event.DeploymentSucceeded, Time: at(3 * time.Hour), Service: web, DeploymentID: "web-1"},
		{Kind: event.IncidentOpened, Time: at(3*time.Hour + 5*time.Minute), Service: web, IncidentID: "inc-1"},
	} {
		_, err := e.Apply(ev)
		require.NoError(t, err)
	}
	return e.SnapshotAt(start.Add(4 * time.Hour))
}

func TestEmitGolden(t *testing.T) {
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
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
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
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
		case pmetric.MetricTypeGauge:
			for j := range m.Gauge().DataPoints().Len() {
				dp := m.Gauge().DataPoints().At(j)
				assert.Equal(t, start.Add(5*time.Hour), dp.Timestamp().AsTime(), m.Name())
			}
		default:
			t.Errorf("unexpected metric type %s for %s", m.Type(), m.Name())
		}
	}
}

func TestEmitHistogramsWithoutCounters(t *testing.T) {
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
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
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	md := em.Emit(engine.Snapshot{StartTime: start}, start)
	assert.Equal(t, 0, md.DataPointCount())
}

func TestEmitRollingLeavesOutUndefinedValues(t *testing.T) {
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	snap := engine.Snapshot{StartTime: start, Rolling: []engine.RollingPoint{{
		Service: api, Window: "1d", Duration: 24 * time.Hour,
		Coverage:            1,
		DeploymentFrequency: 0,
		Levels: []engine.LevelPoint{
			{TierSet: "dora-2024", Metric: engine.MetricDeploymentFrequency, Level: engine.LevelLow},
			{TierSet: "dora-2024", Metric: engine.MetricOverall, Level: engine.LevelLow},
		},
	}, {
		// A window too little observed: no levels, its coverage says why.
		Service: api, Window: "7d", Duration: 7 * 24 * time.Hour,
		Coverage:            1.0 / 7,
		DeploymentFrequency: 0,
	}}}
	md := em.Emit(snap, start.Add(time.Hour))
	got := map[string]int{}
	coverage := map[string]float64{}
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := range ms.Len() {
		m := ms.At(i)
		require.Equal(t, pmetric.MetricTypeGauge, m.Type(), m.Name())
		for j := range m.Gauge().DataPoints().Len() {
			dp := m.Gauge().DataPoints().At(j)
			window, _ := dp.Attributes().Get("window")
			got[m.Name()+" "+window.Str()]++
			if m.Name() == "platform.dora.window_coverage" {
				coverage[window.Str()] = dp.DoubleValue()
			}
		}
	}
	// No deployment in the window: the frequency is 0 and its level low; a
	// rate or a median without data is absent, not 0. The 7d window has
	// its frequency and coverage but no level.
	assert.Equal(t, map[string]int{
		"platform.dora.deployment_frequency 1d": 1, "platform.dora.level 1d": 2, "platform.dora.window_coverage 1d": 1,
		"platform.dora.deployment_frequency 7d": 1, "platform.dora.window_coverage 7d": 1,
	}, got)
	assert.Equal(t, map[string]float64{"1d": 1, "7d": 1.0 / 7}, coverage)
}

func TestEmitStageAttribute(t *testing.T) {
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	snap := scenario(t)
	md := em.Emit(snap, start.Add(4*time.Hour))
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	stages := map[string]float64{}
	for i := range ms.Len() {
		if m := ms.At(i); m.Name() == LeadTimeStageMetric {
			assert.Equal(t, "s", m.Unit())
			for j := range m.Histogram().DataPoints().Len() {
				dp := m.Histogram().DataPoints().At(j)
				stage, ok := dp.Attributes().Get("stage")
				require.True(t, ok)
				stages[stage.Str()] = dp.Sum()
			}
		}
	}
	// commit 20m, opened 25m, merged 30m, rollout started 50m, done 1h.
	assert.Equal(t, map[string]float64{"coding": 300, "review": 300, "build": 1200, "deploy": 600}, stages)
}
