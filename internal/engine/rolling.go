package engine

import (
	"cmp"
	"slices"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// rolling computes the DORA values of every production service that has
// had a deployment, over each window ending at now. An entry is in the
// window (now-w, now] by the time it was recorded: a deployment by its
// outcome, a lead time by the deployment that recorded it, a recovery time
// by the recovery.
func (e *Engine) rolling(now time.Time) []RollingPoint {
	var out []RollingPoint
	for svc, s := range e.services {
		if !s.production || !s.deployed {
			continue
		}
		for _, w := range e.cfg.RollingWindows {
			out = append(out, e.rollingPoint(svc, s, now, w))
		}
	}
	slices.SortFunc(out, func(a, b RollingPoint) int {
		return cmp.Or(compareService(a.Service, b.Service), cmp.Compare(a.Duration, b.Duration))
	})
	return out
}

func (e *Engine) rollingPoint(svc event.Service, s *serviceState, now time.Time, w time.Duration) RollingPoint {
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
	p := RollingPoint{
		Service:             svc,
		Window:              WindowLabel(w),
		Duration:            w,
		DeploymentFrequency: float64(successes) / (w.Hours() / 24),
		LeadTimeMedian:      median(s.leadTimes, in),
		RecoveryTimeMedian:  median(s.recoveries, in),
	}
	if deployments > 0 {
		p.ChangeFailureRate = Value{float64(failures) / float64(deployments), true}
	}
	if successes > 0 {
		p.ReworkRate = Value{float64(rework) / float64(successes), true}
	}
	for _, ts := range e.cfg.TierSets {
		p.Levels = append(p.Levels, levels(ts, p)...)
	}
	return p
}

// levels classifies the key metrics of p that have a value; overall is the
// lowest of their levels.
func levels(ts TierSet, p RollingPoint) []LevelPoint {
	values := []struct {
		metric string
		v      Value
	}{
		{MetricDeploymentFrequency, Value{p.DeploymentFrequency, true}},
		{MetricLeadTime, p.LeadTimeMedian},
		{MetricChangeFailureRate, p.ChangeFailureRate},
		{MetricRecoveryTime, p.RecoveryTimeMedian},
	}
	var out []LevelPoint
	overall := LevelElite
	for _, x := range values {
		if !x.v.OK {
			continue
		}
		l := ts.Classify(x.metric, x.v.V)
		overall = min(overall, l)
		out = append(out, LevelPoint{TierSet: ts.Name, Metric: x.metric, Level: l})
	}
	return append(out, LevelPoint{TierSet: ts.Name, Metric: MetricOverall, Level: overall})
}

// median of the samples in the window: the middle value, or the mean of
// the two middle values of an even count.
func median(samples []sample, in func(time.Time) bool) Value {
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
