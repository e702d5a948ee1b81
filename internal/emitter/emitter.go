// Package emitter turns the engine's metric state into pdata metrics: the
// counters through the mdatagen MetricsBuilder, the histograms with pdata
// directly (mdatagen v0.159.0 cannot generate histograms).
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
	LeadTimeMetric     = "platform.lead_time"
	RecoveryTimeMetric = "platform.recovery_time"

	leadTimeDescription     = "Change lead time: from the commit to that commit running in production, recorded once per change."
	recoveryTimeDescription = "Failed deployment recovery time: from the change failure to the next successful deployment or the resolution of the incident it caused."
)

// Attribute keys shared by every metric.
const (
	attrNamespace   = "namespace"
	attrDeployment  = "deployment"
	attrEnvironment = "environment"
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
		e.mb.RecordPlatformDeploymentsDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, status)
	}
	for _, p := range s.Failures {
		e.mb.RecordPlatformDeploymentFailuresDataPoint(ts, int64(p.Value), p.Service.Namespace, p.Service.Name, p.Service.Environment, p.Label)
	}
	md := e.mb.Emit()

	if len(s.LeadTime) == 0 && len(s.RecoveryTime) == 0 {
		return md
	}
	metrics := e.scopeMetrics(md).Metrics()
	appendHistogram(metrics, LeadTimeMetric, leadTimeDescription, s.LeadTime, start, ts)
	appendHistogram(metrics, RecoveryTimeMetric, recoveryTimeDescription, s.RecoveryTime, start, ts)
	return md
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

func appendHistogram(metrics pmetric.MetricSlice, name, description string, points []engine.HistogramPoint, start, ts pcommon.Timestamp) {
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

func putService(attrs pcommon.Map, svc event.Service) {
	attrs.EnsureCapacity(3)
	attrs.PutStr(attrNamespace, svc.Namespace)
	attrs.PutStr(attrDeployment, svc.Name)
	attrs.PutStr(attrEnvironment, svc.Environment)
}
