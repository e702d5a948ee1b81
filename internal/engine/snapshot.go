package engine

import (
	"cmp"
	"slices"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Histogram is a cumulative explicit-bucket histogram of seconds.
type Histogram struct {
	// Bounds are the upper bounds of all buckets but the last, which is
	// unbounded; Counts has len(Bounds)+1 entries.
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
	Min    float64
	Max    float64
}

func newHistogram(bounds []float64) *Histogram {
	return &Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
}

func (h *Histogram) observe(v float64) {
	i, _ := slices.BinarySearch(h.Bounds, v)
	// Buckets are upper-inclusive (le), as in Prometheus and OTLP.
	h.Counts[i]++
	if h.Count == 0 || v < h.Min {
		h.Min = v
	}
	if h.Count == 0 || v > h.Max {
		h.Max = v
	}
	h.Count++
	h.Sum += v
}

func (h *Histogram) clone() Histogram {
	c := *h
	c.Counts = slices.Clone(h.Counts)
	return c
}

// CounterPoint is one cumulative counter series. Label is the status of a
// deployments series, the reason of a failures or dropped lead times
// series, "true" or "false" for an incidents series (attributed), empty for
// rework.
type CounterPoint struct {
	Service event.Service
	Label   string
	Value   uint64
	// Team is the service's team attribute, empty when unknown.
	Team string
}

// HistogramPoint is one cumulative histogram series. Label is the stage of
// a lead time stage series, empty otherwise.
type HistogramPoint struct {
	Service   event.Service
	Label     string
	Histogram Histogram
	// Team is the service's team attribute, empty when unknown.
	Team string
}

// Value is a rolling value that may be undefined (a ratio without
// deployments, a median without observations).
type Value struct {
	V  float64
	OK bool
}

// LevelPoint is the performance level of one key metric (or overall) by
// one tier set.
type LevelPoint struct {
	TierSet string
	// Metric is one of the Metric* names.
	Metric string
	Level  Level
}

// RollingPoint holds the DORA values of one production service over the
// window (now-Window, now].
type RollingPoint struct {
	Service event.Service
	// Team is the service's team attribute, empty when unknown.
	Team string
	// Window is the window attribute ("1d", "7d", ...); Duration its length.
	Window   string
	Duration time.Duration
	// Coverage is the share of the window (0..1) that lies after the
	// service's history start: the part of it the receiver has observed.
	Coverage float64
	// DeploymentFrequency is successful deployments per day of the
	// observed part of the window, at least a day (see observed).
	DeploymentFrequency float64
	// LeadTimeMedian is the median of the lead times recorded in the window
	// (seconds).
	LeadTimeMedian Value
	// ChangeFailureRate is change failures / deployments (successful or
	// failed), for the deployments that had their outcome in the window.
	ChangeFailureRate Value
	// RecoveryTimeMedian is the median of the recovery times recorded in
	// the window (seconds).
	RecoveryTimeMedian Value
	// ReworkRate is rework deployments / successful deployments.
	ReworkRate Value
	// Levels holds, per tier set, the level of each key metric that has a
	// value, then overall: the lowest of those. It is empty when Coverage
	// is below Config.MinWindowCoverage.
	Levels []LevelPoint
}

// Snapshot is a copy of the metric state, sorted so that output is stable.
type Snapshot struct {
	StartTime       time.Time
	Deployments     []CounterPoint
	Failures        []CounterPoint
	LeadTimeDropped []CounterPoint
	Incidents       []CounterPoint
	Rework          []CounterPoint
	LeadTime        []HistogramPoint
	LeadTimeStages  []HistogramPoint
	RecoveryTime    []HistogramPoint
	// Rolling is filled by SnapshotAt only.
	Rolling []RollingPoint
}

// Snapshot copies the current cumulative metric state, without the rolling
// values (they depend on the current time; see SnapshotAt).
func (e *Engine) Snapshot() Snapshot { return e.snapshot(nil) }

// snapshot is Snapshot of the services in only; nil: of every service.
func (e *Engine) snapshot(only map[event.Service]struct{}) Snapshot {
	in := func(svc event.Service) bool {
		if only == nil {
			return true
		}
		_, ok := only[svc]
		return ok
	}
	s := Snapshot{StartTime: e.start}
	for k, v := range e.deployments {
		if in(k.svc) {
			s.Deployments = append(s.Deployments, CounterPoint{Service: k.svc, Label: k.status, Value: v})
		}
	}
	s.Failures = counterPoints(e.failures, in)
	s.LeadTimeDropped = counterPoints(e.dropped, in)
	s.Incidents = counterPoints(e.incidents, in)
	for svc, v := range e.rework {
		if in(svc) {
			s.Rework = append(s.Rework, CounterPoint{Service: svc, Value: v})
		}
	}
	for svc, h := range e.leadTime {
		if in(svc) {
			s.LeadTime = append(s.LeadTime, HistogramPoint{Service: svc, Histogram: h.clone()})
		}
	}
	for k, h := range e.stages {
		if in(k.svc) {
			s.LeadTimeStages = append(s.LeadTimeStages, HistogramPoint{Service: k.svc, Label: k.reason, Histogram: h.clone()})
		}
	}
	for svc, h := range e.recovery {
		if in(svc) {
			s.RecoveryTime = append(s.RecoveryTime, HistogramPoint{Service: svc, Histogram: h.clone()})
		}
	}
	slices.SortFunc(s.Deployments, compareCounter)
	slices.SortFunc(s.Rework, compareCounter)
	slices.SortFunc(s.LeadTime, compareHistogram)
	slices.SortFunc(s.LeadTimeStages, compareHistogram)
	slices.SortFunc(s.RecoveryTime, compareHistogram)
	e.putTeams(&s)
	return s
}

// putTeams sets the team attribute of every point: the team its service
// has now (teams are not part of a service's identity).
func (e *Engine) putTeams(s *Snapshot) {
	if len(e.teams) == 0 {
		return
	}
	for _, ps := range [][]CounterPoint{s.Deployments, s.Failures, s.LeadTimeDropped, s.Incidents, s.Rework} {
		for i := range ps {
			ps[i].Team = e.teamOf(ps[i].Service)
		}
	}
	for _, ps := range [][]HistogramPoint{s.LeadTime, s.LeadTimeStages, s.RecoveryTime} {
		for i := range ps {
			ps[i].Team = e.teamOf(ps[i].Service)
		}
	}
	for i := range s.Rolling {
		s.Rolling[i].Team = e.teamOf(s.Rolling[i].Service)
	}
}

// SnapshotAt copies the cumulative state and computes the rolling values
// over the windows that end at now. now comes from the caller, keeping the
// engine free of clock reads.
func (e *Engine) SnapshotAt(now time.Time) Snapshot {
	s := e.Snapshot()
	s.Rolling = e.rolling(now, nil)
	e.putTeams(&s)
	return s
}

// SnapshotServicesAt is SnapshotAt of the services in only: every point of
// those services, none of the others. It costs what those services hold,
// not what the engine holds, so an emission of the services a delivery
// touched does not grow with the number of services (BENCHMARKS.md,
// "Ingest rate at the limit").
func (e *Engine) SnapshotServicesAt(now time.Time, only map[event.Service]struct{}) Snapshot {
	if only == nil {
		only = map[event.Service]struct{}{}
	}
	s := e.snapshot(only)
	s.Rolling = e.rolling(now, only)
	e.putTeams(&s)
	return s
}

func counterPoints(m map[reasonKey]uint64, in func(event.Service) bool) []CounterPoint {
	var out []CounterPoint
	for k, v := range m {
		if in(k.svc) {
			out = append(out, CounterPoint{Service: k.svc, Label: k.reason, Value: v})
		}
	}
	slices.SortFunc(out, compareCounter)
	return out
}

func compareService(a, b event.Service) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Environment, b.Environment), cmp.Compare(a.Cluster, b.Cluster))
}

func compareCounter(a, b CounterPoint) int {
	return cmp.Or(compareService(a.Service, b.Service), cmp.Compare(a.Label, b.Label))
}

func compareHistogram(a, b HistogramPoint) int {
	return cmp.Or(compareService(a.Service, b.Service), cmp.Compare(a.Label, b.Label))
}
