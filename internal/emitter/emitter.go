// Package emitter turns the engine's metric state into pdata metrics: the
// counters and the rolling gauges through the mdatagen MetricsBuilder, the
// histograms with pdata directly (mdatagen v0.159.0 cannot generate
// histograms). METRICS.md defines every metric.
package emitter

import (
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// Names, units and descriptions of the histogram metrics; the counters' are
// in metadata.yaml.
const (
	LeadTimeMetric      = "platform.lead_time"
	LeadTimeStageMetric = "platform.lead_time.stage"
	RecoveryTimeMetric  = "platform.recovery_time"

	leadTimeDescription      = "Change lead time: from the commit to that commit running in production, recorded once per commit and service, at its first production deployment."
	leadTimeStageDescription = "Change lead time split into stages (coding: commit to change opened, review: to merged, build: to the deployment's start, deploy: to production), per commit, for the stages whose boundaries are known."
	recoveryTimeDescription  = "Failed deployment recovery time: from the failed deployment (or the incident it caused, whichever is first) to its recovery (the next successful deployment, the completed rollback or the incident's resolution, the first of those configured in recovery_on)."
)

// Attribute keys shared by every metric.
const (
	attrNamespace   = "namespace"
	attrDeployment  = "deployment"
	attrEnvironment = "environment"
	attrStage       = "stage"
	attrTeam        = "team"
)

// Emitter renders snapshots. It is not safe for concurrent use.
type Emitter struct {
	mb        *metadata.MetricsBuilder
	buildInfo component.BuildInfo
}

// New returns an emitter for the metrics enabled in cfg.
func New(cfg metadata.MetricsBuilderConfig, set receiver.Settings) *Emitter {
	return &Emitter{mb: metadata.NewMetricsBuilder(cfg, set), buildInfo: set.BuildInfo}
}

// Emit renders the whole cumulative state, stamped with now. Every series
// starts at the snapshot's start time, so a deployment counted once stays
// counted once however often this runs.
func (e *Emitter) Emit(s engine.Snapshot, now time.Time) pmetric.Metrics {
	ts := pcommon.NewTimestampFromTime(now)
	start := pcommon.NewTimestampFromTime(s.StartTime)
	e.mb.Reset(metadata.WithStartTime(start))

	for _, p := range s.Deployments {
		status := metadata.AttributeStatusSuccess
		if p.Label == engine.StatusFailure {
			status = metadata.AttributeStatusFailure
		}
		e.mb.RecordPlatformDeploymentsDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, status, team(p.Team)...)
	}
	for _, p := range s.Failures {
		e.mb.RecordPlatformDeploymentFailuresDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, p.Label, team(p.Team)...)
	}
	for _, p := range s.Rework {
		e.mb.RecordPlatformDeploymentsReworkDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, team(p.Team)...)
	}
	for _, p := range s.Incidents {
		e.mb.RecordPlatformIncidentsDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, metadata.MapAttributeAttributed[p.Label], team(p.Team)...)
	}
	for _, p := range s.LeadTimeDropped {
		e.mb.RecordPlatformLeadTimeDroppedDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, p.Label, team(p.Team)...)
	}
	e.recordRolling(s.Rolling, ts)
	md := e.mb.Emit()

	if len(s.LeadTime) == 0 && len(s.LeadTimeStages) == 0 && len(s.RecoveryTime) == 0 {
		return md
	}
	metrics := e.scopeMetrics(md).Metrics()
	appendHistogram(metrics, LeadTimeMetric, leadTimeDescription, "", s.LeadTime, start, ts)
	appendHistogram(metrics, LeadTimeStageMetric, leadTimeStageDescription, attrStage, s.LeadTimeStages, start, ts)
	appendHistogram(metrics, RecoveryTimeMetric, recoveryTimeDescription, "", s.RecoveryTime, start, ts)
	return md
}

// recordRolling records the rolling DORA gauges. The engine computes them
// for production services only; values without data (a ratio without
// deployments, a median without observations) are left out.
func (e *Emitter) recordRolling(points []engine.RollingPoint, ts pcommon.Timestamp) {
	for _, p := range points {
		ns, name, env := p.Service.Namespace, p.Service.Name, p.Service.Environment
		tm := team(p.Team)
		e.mb.RecordPlatformDoraDeploymentFrequencyDataPoint(ts, p.DeploymentFrequency, ns, name, env, p.Window, tm...)
		if p.LeadTimeMedian.OK {
			e.mb.RecordPlatformDoraLeadTimeMedianDataPoint(ts, p.LeadTimeMedian.V, ns, name, env, p.Window, tm...)
		}
		if p.ChangeFailureRate.OK {
			e.mb.RecordPlatformDoraChangeFailureRateDataPoint(ts, p.ChangeFailureRate.V, ns, name, env, p.Window, tm...)
		}
		if p.RecoveryTimeMedian.OK {
			e.mb.RecordPlatformDoraRecoveryTimeMedianDataPoint(ts, p.RecoveryTimeMedian.V, ns, name, env, p.Window, tm...)
		}
		if p.ReworkRate.OK {
			e.mb.RecordPlatformDoraReworkRateDataPoint(ts, p.ReworkRate.V, ns, name, env, p.Window, tm...)
		}
		for _, l := range p.Levels {
			metric, ok := metadata.MapAttributeMetric[l.Metric]
			if !ok {
				continue
			}
			e.mb.RecordPlatformDoraLevelDataPoint(ts, float64(l.Level), ns, name, env, p.Window, metric, l.TierSet, tm...)
		}
	}
}

// scopeMetrics returns the builder's scope, or adds the same scope when the
// builder emitted nothing (no counter has a value yet).
func (e *Emitter) scopeMetrics(md pmetric.Metrics) pmetric.ScopeMetrics {
	if md.ResourceMetrics().Len() > 0 {
		return md.ResourceMetrics().At(0).ScopeMetrics().At(0)
	}
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(metadata.ScopeName)
	sm.Scope().SetVersion(e.buildInfo.Version)
	return sm
}

// appendHistogram adds one histogram metric; labelKey, when set, is the
// attribute that carries each point's Label.
func appendHistogram(metrics pmetric.MetricSlice, name, description, labelKey string, points []engine.HistogramPoint, start, ts pcommon.Timestamp) {
	if len(points) == 0 {
		return
	}
	m := metrics.AppendEmpty()
	m.SetName(name)
	m.SetDescription(description)
	m.SetUnit("s")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dps := h.DataPoints()
	dps.EnsureCapacity(len(points))
	for _, p := range points {
		dp := dps.AppendEmpty()
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(ts)
		putService(dp.Attributes(), p.Service)
		if p.Team != "" {
			dp.Attributes().PutStr(attrTeam, p.Team)
		}
		if labelKey != "" {
			dp.Attributes().PutStr(labelKey, p.Label)
		}
		dp.ExplicitBounds().FromRaw(p.Histogram.Bounds)
		dp.BucketCounts().FromRaw(p.Histogram.Counts)
		dp.SetCount(p.Histogram.Count)
		dp.SetSum(p.Histogram.Sum)
		if p.Histogram.Count > 0 {
			dp.SetMin(p.Histogram.Min)
			dp.SetMax(p.Histogram.Max)
		}
	}
}

// team is the team attribute of a point: none when the team is unknown.
func team(name string) []metadata.MetricAttributeOption {
	if name == "" {
		return nil
	}
	return []metadata.MetricAttributeOption{metadata.WithTeamMetricAttribute(name)}
}

func putService(attrs pcommon.Map, svc event.Service) {
	attrs.EnsureCapacity(5)
	attrs.PutStr(attrNamespace, svc.Namespace)
	attrs.PutStr(attrDeployment, svc.Name)
	attrs.PutStr(attrEnvironment, svc.Environment)
}
