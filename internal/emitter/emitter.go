// Package emitter turns the engine's metric state into pdata metrics, built
// with pdata directly: the counters and rolling gauges as metadata.yaml
// declares them (names, descriptions and units taken from the mdatagen
// MetricsBuilder, not its recording, which is quadratic in the points),
// the histograms because mdatagen v0.159.0 cannot generate them. METRICS.md
// defines every metric.
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
	// attrCluster is set only when the service's cluster is (a
	// multi-cluster installation): absent, the series are the
	// single-cluster contract's.
	attrCluster = "cluster"
)

// Emitter renders snapshots. It is not safe for concurrent use.
type Emitter struct {
	buildInfo component.BuildInfo

	deployments, failures, rework, incidents, leadTimeDropped    *numberMetric
	frequency, leadTimeMedian, failureRate, recoveryMedian, rate *numberMetric
	level, coverage                                              *numberMetric
	// numbers are the metrics above in the generated builder's order.
	numbers []*numberMetric
	// levels are the level values last rendered, by series. A level changes
	// far less often than the values it classifies: EmitServices leaves an
	// unchanged one out (the exporter still holds it, and every full Emit
	// renders all of them), which halves what a change sends.
	levels map[levelSeries]engine.Level
}

// levelSeries names one platform.dora.level series.
type levelSeries struct {
	service               event.Service
	team, window, tierSet string
	metric                string
}

// New returns an emitter for the metrics enabled in cfg.
func New(cfg metadata.MetricsBuilderConfig, set receiver.Settings) *Emitter {
	templates := metricTemplates(set)
	mc := cfg.Metrics
	info := metadata.MetricsInfo
	e := &Emitter{buildInfo: set.BuildInfo, levels: map[levelSeries]engine.Level{}}
	add := func(name string, attrs, enabled []string, on bool, strategy string) *numberMetric {
		return newNumberMetric(templates[name], attrs, enabled, on, strategy)
	}
	e.failures = add(info.PlatformDeploymentFailures.Name, info.PlatformDeploymentFailures.Attributes, stringKeys(mc.PlatformDeploymentFailures.EnabledAttributes), mc.PlatformDeploymentFailures.Enabled, mc.PlatformDeploymentFailures.AggregationStrategy)
	e.deployments = add(info.PlatformDeployments.Name, info.PlatformDeployments.Attributes, stringKeys(mc.PlatformDeployments.EnabledAttributes), mc.PlatformDeployments.Enabled, mc.PlatformDeployments.AggregationStrategy)
	e.rework = add(info.PlatformDeploymentsRework.Name, info.PlatformDeploymentsRework.Attributes, stringKeys(mc.PlatformDeploymentsRework.EnabledAttributes), mc.PlatformDeploymentsRework.Enabled, mc.PlatformDeploymentsRework.AggregationStrategy)
	e.failureRate = add(info.PlatformDoraChangeFailureRate.Name, info.PlatformDoraChangeFailureRate.Attributes, stringKeys(mc.PlatformDoraChangeFailureRate.EnabledAttributes), mc.PlatformDoraChangeFailureRate.Enabled, mc.PlatformDoraChangeFailureRate.AggregationStrategy)
	e.frequency = add(info.PlatformDoraDeploymentFrequency.Name, info.PlatformDoraDeploymentFrequency.Attributes, stringKeys(mc.PlatformDoraDeploymentFrequency.EnabledAttributes), mc.PlatformDoraDeploymentFrequency.Enabled, mc.PlatformDoraDeploymentFrequency.AggregationStrategy)
	e.leadTimeMedian = add(info.PlatformDoraLeadTimeMedian.Name, info.PlatformDoraLeadTimeMedian.Attributes, stringKeys(mc.PlatformDoraLeadTimeMedian.EnabledAttributes), mc.PlatformDoraLeadTimeMedian.Enabled, mc.PlatformDoraLeadTimeMedian.AggregationStrategy)
	e.level = add(info.PlatformDoraLevel.Name, info.PlatformDoraLevel.Attributes, stringKeys(mc.PlatformDoraLevel.EnabledAttributes), mc.PlatformDoraLevel.Enabled, mc.PlatformDoraLevel.AggregationStrategy)
	e.recoveryMedian = add(info.PlatformDoraRecoveryTimeMedian.Name, info.PlatformDoraRecoveryTimeMedian.Attributes, stringKeys(mc.PlatformDoraRecoveryTimeMedian.EnabledAttributes), mc.PlatformDoraRecoveryTimeMedian.Enabled, mc.PlatformDoraRecoveryTimeMedian.AggregationStrategy)
	e.rate = add(info.PlatformDoraReworkRate.Name, info.PlatformDoraReworkRate.Attributes, stringKeys(mc.PlatformDoraReworkRate.EnabledAttributes), mc.PlatformDoraReworkRate.Enabled, mc.PlatformDoraReworkRate.AggregationStrategy)
	e.coverage = add(info.PlatformDoraWindowCoverage.Name, info.PlatformDoraWindowCoverage.Attributes, stringKeys(mc.PlatformDoraWindowCoverage.EnabledAttributes), mc.PlatformDoraWindowCoverage.Enabled, mc.PlatformDoraWindowCoverage.AggregationStrategy)
	e.incidents = add(info.PlatformIncidents.Name, info.PlatformIncidents.Attributes, stringKeys(mc.PlatformIncidents.EnabledAttributes), mc.PlatformIncidents.Enabled, mc.PlatformIncidents.AggregationStrategy)
	e.leadTimeDropped = add(info.PlatformLeadTimeDropped.Name, info.PlatformLeadTimeDropped.Attributes, stringKeys(mc.PlatformLeadTimeDropped.EnabledAttributes), mc.PlatformLeadTimeDropped.Enabled, mc.PlatformLeadTimeDropped.AggregationStrategy)
	e.numbers = []*numberMetric{e.failures, e.deployments, e.rework, e.failureRate, e.frequency, e.leadTimeMedian, e.level, e.recoveryMedian, e.rate, e.coverage, e.incidents, e.leadTimeDropped}
	return e
}

// metricTemplates returns the name, description, unit and type of every
// counter and gauge, as the generated MetricsBuilder renders them from
// metadata.yaml, so that they are declared in one place: it records one
// point per metric with every metric enabled and keeps the metrics.
func metricTemplates(set receiver.Settings) map[string]pmetric.Metric {
	cfg := metadata.NewDefaultMetricsBuilderConfig()
	mc := &cfg.Metrics
	mc.PlatformDeploymentFailures.Enabled = true
	mc.PlatformDeployments.Enabled = true
	mc.PlatformDeploymentsRework.Enabled = true
	mc.PlatformDoraChangeFailureRate.Enabled = true
	mc.PlatformDoraDeploymentFrequency.Enabled = true
	mc.PlatformDoraLeadTimeMedian.Enabled = true
	mc.PlatformDoraLevel.Enabled = true
	mc.PlatformDoraRecoveryTimeMedian.Enabled = true
	mc.PlatformDoraReworkRate.Enabled = true
	mc.PlatformDoraWindowCoverage.Enabled = true
	mc.PlatformIncidents.Enabled = true
	mc.PlatformLeadTimeDropped.Enabled = true
	mb := metadata.NewMetricsBuilder(cfg, set)
	var ts pcommon.Timestamp
	mb.RecordPlatformDeploymentFailuresDataPoint(ts, 0, "", "", "", "")
	mb.RecordPlatformDeploymentsDataPoint(ts, 0, "", "", "", metadata.AttributeStatusSuccess)
	mb.RecordPlatformDeploymentsReworkDataPoint(ts, 0, "", "", "")
	mb.RecordPlatformDoraChangeFailureRateDataPoint(ts, 0, "", "", "", "")
	mb.RecordPlatformDoraDeploymentFrequencyDataPoint(ts, 0, "", "", "", "")
	mb.RecordPlatformDoraLeadTimeMedianDataPoint(ts, 0, "", "", "", "")
	mb.RecordPlatformDoraLevelDataPoint(ts, 0, "", "", "", "", metadata.AttributeMetricOverall, "")
	mb.RecordPlatformDoraRecoveryTimeMedianDataPoint(ts, 0, "", "", "", "")
	mb.RecordPlatformDoraReworkRateDataPoint(ts, 0, "", "", "", "")
	mb.RecordPlatformDoraWindowCoverageDataPoint(ts, 0, "", "", "", "")
	mb.RecordPlatformIncidentsDataPoint(ts, 0, "", "", "", metadata.AttributeAttributedTrue)
	mb.RecordPlatformLeadTimeDroppedDataPoint(ts, 0, "", "", "", "")
	out := map[string]pmetric.Metric{}
	ms := mb.Emit().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := range ms.Len() {
		out[ms.At(i).Name()] = ms.At(i)
	}
	return out
}

// Emit renders the whole cumulative state, stamped with now. Every series
// starts at the snapshot's start time, so a deployment counted once stays
// counted once however often this runs.
func (e *Emitter) Emit(s engine.Snapshot, now time.Time) pmetric.Metrics {
	return e.emit(s, now, nil)
}

// NeedsEveryService reports whether EmitServices needs the points of every
// service in its snapshot: when a metric merges services (a service
// attribute disabled), its points are sums over services. Otherwise a
// snapshot of the listed services alone (engine.SnapshotServicesAt) renders
// the same.
func (e *Emitter) NeedsEveryService() bool {
	for _, m := range e.numbers {
		if m.enabled && m.mergesServices {
			return true
		}
	}
	return false
}

// EmitServices renders the series of the given services only: the points a
// full Emit of s at now has for them, identical (names, attributes, start
// times, values), and nothing for the other services, except the level
// gauges whose value has not changed since this emitter last rendered them
// (a full Emit renders them all). Every series belongs
// to one service, so there is no service-less series to add. A counter or
// gauge whose namespace, deployment or environment attribute is disabled
// merges the points of several services into one (team aggregates, for
// example): its points are all rendered, since a point built from some of
// its services would carry a wrong value.
func (e *Emitter) EmitServices(s engine.Snapshot, now time.Time, services map[event.Service]struct{}) pmetric.Metrics {
	if services == nil {
		services = map[event.Service]struct{}{}
	}
	return e.emit(s, now, services)
}

// emit renders s; a nil only renders every service.
func (e *Emitter) emit(s engine.Snapshot, now time.Time, only map[event.Service]struct{}) pmetric.Metrics {
	ts := pcommon.NewTimestampFromTime(now)
	start := pcommon.NewTimestampFromTime(s.StartTime)
	for _, m := range e.numbers {
		m.reset(start, ts)
	}
	// keep says whether m renders svc's point.
	keep := func(m *numberMetric, svc event.Service) bool {
		if only == nil || m.mergesServices {
			return true
		}
		_, ok := only[svc]
		return ok
	}

	for _, p := range s.Deployments {
		if !keep(e.deployments, p.Service) {
			continue
		}
		status := metadata.AttributeStatusSuccess
		if p.Label == engine.StatusFailure {
			status = metadata.AttributeStatusFailure
		}
		e.deployments.recordInt(int64(p.Value), p.Team, p.Service.Cluster, p.Service.Namespace, p.Service.Name, p.Service.Environment, status.String())
	}
	for _, p := range s.Failures {
		if keep(e.failures, p.Service) {
			e.failures.recordInt(int64(p.Value), p.Team, p.Service.Cluster, p.Service.Namespace, p.Service.Name, p.Service.Environment, p.Label)
		}
	}
	for _, p := range s.Rework {
		if keep(e.rework, p.Service) {
			e.rework.recordInt(int64(p.Value), p.Team, p.Service.Cluster, p.Service.Namespace, p.Service.Name, p.Service.Environment)
		}
	}
	for _, p := range s.Incidents {
		if keep(e.incidents, p.Service) {
			e.incidents.recordInt(int64(p.Value), p.Team, p.Service.Cluster, p.Service.Namespace, p.Service.Name, p.Service.Environment, metadata.MapAttributeAttributed[p.Label].String())
		}
	}
	for _, p := range s.LeadTimeDropped {
		if keep(e.leadTimeDropped, p.Service) {
			e.leadTimeDropped.recordInt(int64(p.Value), p.Team, p.Service.Cluster, p.Service.Namespace, p.Service.Name, p.Service.Environment, p.Label)
		}
	}
	e.recordRolling(s.Rolling, only)

	leadTime, stages, recovery := s.LeadTime, s.LeadTimeStages, s.RecoveryTime
	if only != nil {
		leadTime, stages, recovery = servicesOnly(leadTime, only), servicesOnly(stages, only), servicesOnly(recovery, only)
	}
	md := pmetric.NewMetrics()
	if !e.hasPoints() && len(leadTime) == 0 && len(stages) == 0 && len(recovery) == 0 {
		return md
	}
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(metadata.ScopeName)
	sm.Scope().SetVersion(e.buildInfo.Version)
	metrics := sm.Metrics()
	for _, m := range e.numbers {
		m.moveTo(metrics)
	}
	appendHistogram(metrics, LeadTimeMetric, leadTimeDescription, "", leadTime, start, ts)
	appendHistogram(metrics, LeadTimeStageMetric, leadTimeStageDescription, attrStage, stages, start, ts)
	appendHistogram(metrics, RecoveryTimeMetric, recoveryTimeDescription, "", recovery, start, ts)
	return md
}

// servicesOnly returns the histogram points of the given services, in
// their order.
func servicesOnly(points []engine.HistogramPoint, only map[event.Service]struct{}) []engine.HistogramPoint {
	var out []engine.HistogramPoint
	for _, p := range points {
		if _, ok := only[p.Service]; ok {
			out = append(out, p)
		}
	}
	return out
}

func (e *Emitter) hasPoints() bool {
	for _, m := range e.numbers {
		if m.enabled && m.dps.Len() > 0 {
			return true
		}
	}
	return false
}

// recordRolling records the rolling DORA gauges, of the services in only
// when it is not nil (see EmitServices). The engine computes them for
// production services only; values without data (a ratio without
// deployments, a median without observations) are left out, and so are
// the levels of a window too little observed (engine.RollingPoint.Levels).
func (e *Emitter) recordRolling(points []engine.RollingPoint, only map[event.Service]struct{}) {
	for _, p := range points {
		listed := true
		if only != nil {
			_, listed = only[p.Service]
		}
		// on says whether m renders this point.
		on := func(m *numberMetric) bool { return listed || m.mergesServices }
		ns, name, env, tm, cl := p.Service.Namespace, p.Service.Name, p.Service.Environment, p.Team, p.Service.Cluster
		if on(e.frequency) {
			e.frequency.recordDouble(p.DeploymentFrequency, tm, cl, ns, name, env, p.Window)
		}
		if p.LeadTimeMedian.OK && on(e.leadTimeMedian) {
			e.leadTimeMedian.recordDouble(p.LeadTimeMedian.V, tm, cl, ns, name, env, p.Window)
		}
		if p.ChangeFailureRate.OK && on(e.failureRate) {
			e.failureRate.recordDouble(p.ChangeFailureRate.V, tm, cl, ns, name, env, p.Window)
		}
		if p.RecoveryTimeMedian.OK && on(e.recoveryMedian) {
			e.recoveryMedian.recordDouble(p.RecoveryTimeMedian.V, tm, cl, ns, name, env, p.Window)
		}
		if p.ReworkRate.OK && on(e.rate) {
			e.rate.recordDouble(p.ReworkRate.V, tm, cl, ns, name, env, p.Window)
		}
		if on(e.coverage) {
			e.coverage.recordDouble(p.Coverage, tm, cl, ns, name, env, p.Window)
		}
		if !on(e.level) {
			continue
		}
		for _, l := range p.Levels {
			metric, ok := metadata.MapAttributeMetric[l.Metric]
			if !ok {
				continue
			}
			if !e.level.mergesServices {
				k := levelSeries{service: p.Service, team: tm, window: p.Window, tierSet: l.TierSet, metric: l.Metric}
				if last, seen := e.levels[k]; seen && last == l.Level && only != nil {
					continue
				}
				e.levels[k] = l.Level
			}
			e.level.recordDouble(float64(l.Level), tm, cl, ns, name, env, p.Window, metric.String(), l.TierSet)
		}
	}
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
		if p.Service.Cluster != "" {
			dp.Attributes().PutStr(attrCluster, p.Service.Cluster)
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

func putService(attrs pcommon.Map, svc event.Service) {
	attrs.EnsureCapacity(6)
	attrs.PutStr(attrNamespace, svc.Namespace)
	attrs.PutStr(attrDeployment, svc.Name)
	attrs.PutStr(attrEnvironment, svc.Environment)
}
