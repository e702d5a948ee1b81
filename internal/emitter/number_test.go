package emitter

import (
	"fmt"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// referenceEmit renders the counters and gauges of a snapshot through the
// generated MetricsBuilder, as the emitter did before it built them with
// pdata: the reference the linear builder must match, config included.
func referenceEmit(cfg metadata.MetricsBuilderConfig, s engine.Snapshot, now time.Time) pmetric.Metrics {
	mb := metadata.NewMetricsBuilder(cfg, receivertest.NewNopSettings(metadata.Type))
	ts := pcommon.NewTimestampFromTime(now)
	mb.Reset(metadata.WithStartTime(pcommon.NewTimestampFromTime(s.StartTime)))
	team := func(name string) []metadata.MetricAttributeOption {
		if name == "" {
			return nil
		}
		return []metadata.MetricAttributeOption{metadata.WithTeamMetricAttribute(name)}
	}
	for _, p := range s.Deployments {
		mb.RecordPlatformDeploymentsDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, metadata.MapAttributeStatus[p.Label], team(p.Team)...)
	}
	for _, p := range s.Failures {
		mb.RecordPlatformDeploymentFailuresDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, p.Label, team(p.Team)...)
	}
	for _, p := range s.Rework {
		mb.RecordPlatformDeploymentsReworkDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, team(p.Team)...)
	}
	for _, p := range s.Incidents {
		mb.RecordPlatformIncidentsDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, metadata.MapAttributeAttributed[p.Label], team(p.Team)...)
	}
	for _, p := range s.LeadTimeDropped {
		mb.RecordPlatformLeadTimeDroppedDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, p.Label, team(p.Team)...)
	}
	for _, p := range s.Rolling {
		ns, name, env, tm := p.Service.Namespace, p.Service.Name, p.Service.Environment, team(p.Team)
		mb.RecordPlatformDoraDeploymentFrequencyDataPoint(ts, p.DeploymentFrequency, ns, name, env, p.Window, tm...)
		if p.LeadTimeMedian.OK {
			mb.RecordPlatformDoraLeadTimeMedianDataPoint(ts, p.LeadTimeMedian.V, ns, name, env, p.Window, tm...)
		}
		if p.ChangeFailureRate.OK {
			mb.RecordPlatformDoraChangeFailureRateDataPoint(ts, p.ChangeFailureRate.V, ns, name, env, p.Window, tm...)
		}
		if p.RecoveryTimeMedian.OK {
			mb.RecordPlatformDoraRecoveryTimeMedianDataPoint(ts, p.RecoveryTimeMedian.V, ns, name, env, p.Window, tm...)
		}
		if p.ReworkRate.OK {
			mb.RecordPlatformDoraReworkRateDataPoint(ts, p.ReworkRate.V, ns, name, env, p.Window, tm...)
		}
		mb.RecordPlatformDoraWindowCoverageDataPoint(ts, p.Coverage, ns, name, env, p.Window, tm...)
		for _, l := range p.Levels {
			if metric, ok := metadata.MapAttributeMetric[l.Metric]; ok {
				mb.RecordPlatformDoraLevelDataPoint(ts, float64(l.Level), ns, name, env, p.Window, metric, l.TierSet, tm...)
			}
		}
	}
	return mb.Emit()
}

// countersAndGauges drops the histograms, which the reference does not build.
func countersAndGauges(md pmetric.Metrics) pmetric.Metrics {
	out := pmetric.NewMetrics()
	md.CopyTo(out)
	for i := range out.ResourceMetrics().Len() {
		for j := range out.ResourceMetrics().At(i).ScopeMetrics().Len() {
			out.ResourceMetrics().At(i).ScopeMetrics().At(j).Metrics().RemoveIf(func(m pmetric.Metric) bool {
				return m.Type() == pmetric.MetricTypeHistogram
			})
		}
	}
	return out
}

// manyServices is a history of n services in three environments, with
// failures, rework and incidents, some with a team and some without. Its
// windows are little observed (hours of history); min_window_coverage 0
// gives them levels all the same.
func manyServices(t testing.TB, n int) engine.Snapshot {
	cfg := engine.DefaultConfig()
	cfg.MinWindowCoverage = 0
	e, err := engine.New(cfg, start)
	require.NoError(t, err)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	for s := range n {
		team := ""
		if s%3 != 0 {
			team = fmt.Sprintf("team-%d", s%4)
		}
		for e2, env := range []string{"development", "staging", "production"} {
			svc := event.Service{Namespace: fmt.Sprintf("ns-%d", s%5), Name: fmt.Sprintf("svc-%d", s), Environment: env}
			base := time.Duration(e2) * time.Hour
			evs := []event.Event{
				{Kind: event.DeploymentSucceeded, Time: at(base), Service: svc, DeploymentID: fmt.Sprintf("%d-%s-0", s, env), Team: team},
				{Kind: event.DeploymentStarted, Time: at(base + 10*time.Minute), Service: svc, DeploymentID: fmt.Sprintf("%d-%s-1", s, env), Team: team},
			}
			if s%2 == 0 {
				evs = append(evs,
					event.Event{Kind: event.DeploymentFailed, Time: at(base + 20*time.Minute), Service: svc, DeploymentID: fmt.Sprintf("%d-%s-1", s, env), Reason: "ProgressDeadlineExceeded", Team: team},
					event.Event{Kind: event.DeploymentSucceeded, Time: at(base + 40*time.Minute), Service: svc, DeploymentID: fmt.Sprintf("%d-%s-2", s, env), Team: team})
			} else {
				evs = append(evs,
					event.Event{Kind: event.DeploymentSucceeded, Time: at(base + 20*time.Minute), Service: svc, DeploymentID: fmt.Sprintf("%d-%s-1", s, env), Team: team},
					event.Event{Kind: event.IncidentOpened, Time: at(base + 25*time.Minute), Service: svc, IncidentID: fmt.Sprintf("inc-%d-%s", s, env)})
			}
			for _, ev := range evs {
				_, err := e.Apply(ev)
				require.NoError(t, err)
			}
		}
	}
	return e.SnapshotAt(at(4 * time.Hour))
}

// The linear builder renders exactly what the generated MetricsBuilder
// renders, with the default config and with configs that disable metrics
// and attributes (so points merge) under every aggregation strategy.
func TestEmitMatchesGeneratedBuilder(t *testing.T) {
	snap := manyServices(t, 40)
	now := start.Add(4 * time.Hour)
	mergeAll := func(strategy string) metadata.MetricsBuilderConfig {
		cfg := metadata.NewDefaultMetricsBuilderConfig()
		cfg.Metrics.PlatformDeployments.EnabledAttributes = []metadata.PlatformDeploymentsMetricAttributeKey{metadata.PlatformDeploymentsMetricAttributeKeyEnvironment, metadata.PlatformDeploymentsMetricAttributeKeyStatus}
		cfg.Metrics.PlatformDeployments.AggregationStrategy = strategy
		cfg.Metrics.PlatformDoraLevel.EnabledAttributes = []metadata.PlatformDoraLevelMetricAttributeKey{metadata.PlatformDoraLevelMetricAttributeKeyWindow, metadata.PlatformDoraLevelMetricAttributeKeyMetric}
		cfg.Metrics.PlatformDoraLevel.AggregationStrategy = strategy
		cfg.Metrics.PlatformDoraDeploymentFrequency.EnabledAttributes = []metadata.PlatformDoraDeploymentFrequencyMetricAttributeKey{metadata.PlatformDoraDeploymentFrequencyMetricAttributeKeyNamespace}
		cfg.Metrics.PlatformDoraDeploymentFrequency.AggregationStrategy = strategy
		cfg.Metrics.PlatformDoraWindowCoverage.EnabledAttributes = []metadata.PlatformDoraWindowCoverageMetricAttributeKey{metadata.PlatformDoraWindowCoverageMetricAttributeKeyWindow}
		cfg.Metrics.PlatformDoraWindowCoverage.AggregationStrategy = strategy
		cfg.Metrics.PlatformIncidents.Enabled = false
		return cfg
	}
	for name, cfg := range map[string]metadata.MetricsBuilderConfig{
		"default": metadata.NewDefaultMetricsBuilderConfig(),
		"sum":     mergeAll(metadata.AggregationStrategySum),
		"avg":     mergeAll(metadata.AggregationStrategyAvg),
		"min":     mergeAll(metadata.AggregationStrategyMin),
		"max":     mergeAll(metadata.AggregationStrategyMax),
	} {
		t.Run(name, func(t *testing.T) {
			em := New(cfg, receivertest.NewNopSettings(metadata.Type))
			got := countersAndGauges(em.Emit(snap, now))
			want := referenceEmit(cfg, snap, now)
			require.Positive(t, want.DataPointCount())
			require.NoError(t, pmetrictest.CompareMetrics(want, got))
		})
	}
}
