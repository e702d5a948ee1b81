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
// deployments series or the reason of a failures series.
type CounterPoint struct {
	Service event.Service
	Label   string
	Value   uint64
}

// HistogramPoint is one cumulative histogram series.
type HistogramPoint struct {
	Service   event.Service
	Histogram Histogram
}

// Snapshot is a copy of the metric state, sorted so that output is stable.
type Snapshot struct {
	StartTime    time.Time
	Deployments  []CounterPoint
	Failures     []CounterPoint
	LeadTime     []HistogramPoint
	RecoveryTime []HistogramPoint
}

// Snapshot copies the current metric state.
func (e *Engine) Snapshot() Snapshot {
	s := Snapshot{StartTime: e.start}
	for k, v := range e.deployments {
		s.Deployments = append(s.Deployments, CounterPoint{k.svc, k.status, v})
	}
	for k, v := range e.failures {
		s.Failures = append(s.Failures, CounterPoint{k.svc, k.reason, v})
	}
	for svc, h := range e.leadTime {
		s.LeadTime = append(s.LeadTime, HistogramPoint{svc, h.clone()})
	}
	for svc, h := range e.recovery {
		s.RecoveryTime = append(s.RecoveryTime, HistogramPoint{svc, h.clone()})
	}
	slices.SortFunc(s.Deployments, compareCounter)
	slices.SortFunc(s.Failures, compareCounter)
	slices.SortFunc(s.LeadTime, compareHistogram)
	slices.SortFunc(s.RecoveryTime, compareHistogram)
	return s
}

func compareService(a, b event.Service) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Environment, b.Environment))
}

func compareCounter(a, b CounterPoint) int {
	return cmp.Or(compareService(a.Service, b.Service), cmp.Compare(a.Label, b.Label))
}

func compareHistogram(a, b HistogramPoint) int { return compareService(a.Service, b.Service) }
