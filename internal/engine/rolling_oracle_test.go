package engine

import (
	"cmp"
	"slices"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// oracleRolling is the straightforward rolling computation the engine used
// before it cached and sped it up (every service, every window, recomputed
// from the whole history on each call): the reference the randomized test
// compares rolling with.
func (e *Engine) oracleRolling(now time.Time) []RollingPoint {
	var out []RollingPoint
	for svc, s := range e.services {
		if !s.production || !s.deployed {
			continue
		}
		for _, w := range e.cfg.RollingWindows {
			out = append(out, e.oracleRollingPoint(svc, s, now, w))
		}
	}
	slices.SortFunc(out, func(a, b RollingPoint) int {
		return cmp.Or(compareService(a.Service, b.Service), cmp.Compare(a.Duration, b.Duration))
	})
	return out
}

func (e *Engine) oracleRollingPoint(svc event.Service, s *serviceState, now time.Time, w time.Duration) RollingPoint {
	from := now.Add(-w)
	in := func(t time.Time) bool { return t.After(from) && !t.After(now) }

	var deployments, successes, failures, rework int
	for _, r := range s.history {
		if !in(r.at) {
			continue
		}
		deployments++
		if r.success {
			successes++
		}
		if r.changeFailure {
			failures++
		}
		if r.rework {
			rework++
		}
	}
	// The observed part of the window: after the history start.
	seen := w
	if from.Before(s.historyStart) {
		seen = max(now.Sub(s.historyStart), 0)
	}
	coverage := float64(seen) / float64(w)
	days := float64(max(seen, min(w, 24*time.Hour))) / float64(24*time.Hour)
	p := RollingPoint{
		Service:             svc,
		Window:              WindowLabel(w),
		Duration:            w,
		Coverage:            coverage,
		DeploymentFrequency: float64(successes) / days,
		LeadTimeMedian:      oracleMedian(s.leadTimes, in),
		RecoveryTimeMedian:  oracleMedian(s.recoveries, in),
	}
	if deployments > 0 {
		p.ChangeFailureRate = Value{float64(failures) / float64(deployments), true}
	}
	if successes > 0 {
		p.ReworkRate = Value{float64(rework) / float64(successes), true}
	}
	if coverage >= e.cfg.MinWindowCoverage {
		for _, ts := range e.cfg.TierSets {
			p.Levels = append(p.Levels, levels(ts, p)...)
		}
	}
	return p
}

func oracleMedian(samples []sample, in func(time.Time) bool) Value {
	var vs []float64
	for _, x := range samples {
		if in(x.at) {
			vs = append(vs, x.v)
		}
	}
	if len(vs) == 0 {
		return Value{}
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return Value{vs[n/2], true}
	}
	return Value{(vs[n/2-1] + vs[n/2]) / 2, true}
}
