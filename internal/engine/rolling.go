package engine

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// rolling computes the DORA values of every production service that has
// had a deployment, over each window ending at now. An entry is in the
// window (now-w, now] by the time it was recorded: a deployment by its
// outcome, a lead time by the deployment that recorded it, a recovery time
// by the recovery.
//
// The receiver emits after nearly every event, so each service keeps its
// values (rollingCache) until its rolling inputs change or now crosses a
// time where an entry enters or leaves a window; only such services are
// recomputed.
func (e *Engine) rolling(now time.Time, only map[event.Service]struct{}) []RollingPoint {
	at := nanos(now)
	var out []RollingPoint
	add := func(svc event.Service, s *serviceState) {
		if !s.production || !s.deployed {
			return
		}
		// The points are copied; their Levels are shared with the cache
		// and earlier snapshots, read only.
		out = append(out, e.rollingPoints(svc, s, at)...)
	}
	if only == nil {
		for svc, s := range e.services {
			add(svc, s)
		}
	} else {
		for svc := range only {
			if s, ok := e.services[svc]; ok {
				add(svc, s)
			}
		}
	}
	slices.SortFunc(out, func(a, b RollingPoint) int {
		return cmp.Or(compareService(a.Service, b.Service), cmp.Compare(a.Duration, b.Duration))
	})
	return out
}

// rollingPoints returns the points of s at now, one per configured window
// in their order, recomputing only the stale parts.
func (e *Engine) rollingPoints(svc event.Service, s *serviceState, now int64) []RollingPoint {
	c := &s.rolling
	windows := e.cfg.RollingWindows
	changed := false
	if c.counts.current(now) && len(c.counts.vals) == len(windows) {
		// Right for every now in span but the records added since.
		c.countAdded(windows, now)
	} else {
		c.countDeployments(s.history, windows, now)
		changed = true
	}
	if !c.leadTimes.current(now) {
		medians(&c.leadTimes, &c.leadByValue, s.leadTimes, windows, now)
		changed = true
	}
	if !c.recoveries.current(now) {
		medians(&c.recoveries, &c.recoveriesByValue, s.recoveries, windows, now)
		changed = true
	}
	c.counts.ref, c.leadTimes.ref, c.recoveries.ref = now, now, now
	// Coverage and frequency move with now (and the history start) until
	// every window lies after the history start; from then on they stay
	// put, also when an older event moves the start further back.
	start := nanos(s.historyStart)
	full := coveredFrom(start, windows) <= now
	if !changed && c.assembled && c.assembledFull && full {
		return c.points
	}
	// New Levels slices every time: earlier snapshots hold the old ones.
	c.points, c.assembled, c.assembledFull = c.points[:0], true, full
	for i, w := range windows {
		k := c.counts.vals[i]
		coverage, days := observed(start, now, int64(w))
		p := RollingPoint{
			Service:             svc,
			Window:              WindowLabel(w),
			Duration:            w,
			Coverage:            coverage,
			DeploymentFrequency: float64(k.successes) / days,
			LeadTimeMedian:      c.leadTimes.vals[i],
			RecoveryTimeMedian:  c.recoveries.vals[i],
		}
		if k.deployments > 0 {
			p.ChangeFailureRate = Value{float64(k.failures) / float64(k.deployments), true}
		}
		if k.successes > 0 {
			p.ReworkRate = Value{float64(k.rework) / float64(k.successes), true}
		}
		if coverage >= e.cfg.MinWindowCoverage {
			for _, ts := range e.cfg.TierSets {
				p.Levels = append(p.Levels, levels(ts, p)...)
			}
		}
		c.points = append(c.points, p)
	}
	return c.points
}

// observed returns the share of the window of w ending at now, (now-w,
// now], that lies after start (the service's history start), and the
// days a rate over the window divides by: the observed part, since the
// receiver cannot tell the days before start from days without
// deployments, but no less than a day (or the window, when shorter), so
// that a rate per day is not extrapolated from a few minutes.
func observed(start, now, w int64) (coverage, days float64) {
	seen := min(max(now-max(start, now-w), 0), w)
	const day = int64(24 * time.Hour)
	return float64(seen) / float64(w), float64(max(seen, min(w, day))) / float64(day)
}

// coveredFrom is the first now at which every window lies after start.
func coveredFrom(start int64, windows []time.Duration) int64 {
	return start + int64(slices.Max(windows))
}

// rollingCache holds a service's rolling values between snapshots. It is
// not saved: its zero value is stale and recomputed from the history.
type rollingCache struct {
	// counts (from the history), leadTimes and recoveries (medians) are
	// per configured window; points are assembled from them, again when
	// assembled is false.
	counts     rollingPart[windowCounts]
	leadTimes  rollingPart[Value]
	recoveries rollingPart[Value]
	points     []RollingPoint
	assembled  bool
	// assembledFull is set when the points were assembled at a now at which
	// every window was wholly covered (coverage 1, see observed): only
	// then are they right for every later now with the same inputs.
	assembledFull bool
	// added are the history records added since counts were last right
	// (at counts.ref), at most maxAddedDeployments.
	added []*deployRecord
	// The samples ordered by value, built on first use and then kept in
	// step with leadTimes and recoveries: a median is a walk to the middle
	// of the in-window ones, no sort per window.
	leadByValue       sortedSamples
	recoveriesByValue sortedSamples
}

// maxAddedDeployments bounds rollingCache.added.
const maxAddedDeployments = 64

// rollingPart is one part of the rolling values, fresh until its inputs
// change, and then valid for every now in span.
type rollingPart[T any] struct {
	fresh bool
	span  nowSpan
	// ref is a now (in span) at which vals were computed or reused: the
	// reference for updating them in place.
	ref  int64
	vals []T
}

func (p *rollingPart[T]) current(now int64) bool { return p.fresh && p.span.covers(now) }

// stale marks the part for recomputation: its inputs changed.
func (p *rollingPart[T]) stale() { p.fresh = false }

// windowCounts are the deployments of one window.
type windowCounts struct{ deployments, successes, failures, rework int }

func (k *windowCounts) add(r *deployRecord, n int) {
	k.deployments += n
	if r.success {
		k.successes += n
	}
	if r.changeFailure {
		k.failures += n
	}
	if r.rework {
		k.rework += n
	}
}

func (c *rollingCache) countDeployments(history []*deployRecord, windows []time.Duration, now int64) {
	p := &c.counts
	p.vals = resize(p.vals, len(windows))
	p.span = anyNow
	clear(c.added)
	c.added = c.added[:0]
	for _, r := range history {
		at := nanos(r.at)
		for i, w := range windows {
			if p.span.place(at, now, int64(w)) {
				p.vals[i].add(r, 1)
			}
		}
	}
	p.fresh = true
}

// addDeployment notes r, a record just added to the history, for the
// counts: it is counted at the next rollingPoints, against that now.
func (c *rollingCache) addDeployment(r *deployRecord) {
	if !c.counts.fresh {
		return
	}
	if len(c.added) == maxAddedDeployments {
		// No snapshot for a while: recomputing is as cheap.
		c.counts.stale()
		return
	}
	c.added = append(c.added, r)
}

// forgetDeployment takes r, a record the history forgot, out of the counts.
func (c *rollingCache) forgetDeployment(r *deployRecord, windows []time.Duration) {
	p := &c.counts
	if !p.fresh {
		return
	}
	if i := slices.Index(c.added, r); i >= 0 {
		c.added = slices.Delete(c.added, i, i+1)
		return
	}
	// The counts are right at ref: r leaves the windows it is in at ref.
	// Placing it narrows span more than needed, which only costs a
	// recompute.
	c.countAt(r, -1, p.ref, windows)
}

// countAdded counts the records added since the counts were last right,
// at now, which span covers.
func (c *rollingCache) countAdded(windows []time.Duration, now int64) {
	for _, r := range c.added {
		c.countAt(r, 1, now, windows)
	}
	clear(c.added)
	c.added = c.added[:0]
}

// countAt adds n times r to the counts of the windows r is in at now, and
// narrows span to the nows for which that stays so.
func (c *rollingCache) countAt(r *deployRecord, n int, now int64, windows []time.Duration) {
	p := &c.counts
	at := nanos(r.at)
	for i, w := range windows {
		if p.span.place(at, now, int64(w)) {
			p.vals[i].add(r, n)
			c.assembled = false
		}
	}
}

// medians computes the median of the samples in each window.
func medians(p *rollingPart[Value], byValue *sortedSamples, samples []sample, windows []time.Duration, now int64) {
	p.vals = resize(p.vals, len(windows))
	if !byValue.built {
		byValue.build(samples)
	}
	var countsBuf [8]int
	counts := resize(countsBuf[:0], len(windows))
	p.span = anyNow
	for _, x := range byValue.s {
		for i, w := range windows {
			if p.span.place(x.at, now, int64(w)) {
				counts[i]++
			}
		}
	}
	for i, w := range windows {
		p.vals[i] = byValue.median(counts[i], now-int64(w), now)
	}
	p.fresh = true
}

// nowSpan is the range of now [from, until) over which every entry stays
// in or out of the windows it was placed in.
type nowSpan struct{ from, until int64 }

var anyNow = nowSpan{math.MinInt64, math.MaxInt64}

func (sp nowSpan) covers(now int64) bool { return sp.from <= now && now < sp.until }

// place reports whether an entry recorded at at is in the window of w
// ending at now, (now-w, now], and narrows sp to the nows for which that
// stays so: an entry enters at at and leaves at at+w.
func (sp *nowSpan) place(at, now, w int64) bool {
	switch {
	case at > now:
		sp.until = min(sp.until, at)
		return false
	case at > now-w:
		sp.from = max(sp.from, at)
		sp.until = min(sp.until, at+w)
		return true
	default:
		sp.from = max(sp.from, at+w)
		return false
	}
}

// valueSample is a sample in sortedSamples.
type valueSample struct {
	v  float64
	at int64
}

// sortedSamples holds samples ordered by value (cmp.Compare, the order of
// slices.Sort).
type sortedSamples struct {
	built bool
	s     []valueSample
}

func (ss *sortedSamples) build(samples []sample) {
	ss.s = ss.s[:0]
	for _, x := range samples {
		ss.s = append(ss.s, valueSample{x.v, nanos(x.at)})
	}
	slices.SortFunc(ss.s, func(a, b valueSample) int { return cmp.Compare(a.v, b.v) })
	ss.built = true
}

func (ss *sortedSamples) insert(x sample) {
	if !ss.built {
		return
	}
	v := valueSample{x.v, nanos(x.at)}
	i, _ := slices.BinarySearchFunc(ss.s, v.v, func(a valueSample, t float64) int { return cmp.Compare(a.v, t) })
	ss.s = slices.Insert(ss.s, i, v)
}

func (ss *sortedSamples) remove(x sample) {
	if !ss.built {
		return
	}
	at := nanos(x.at)
	i, _ := slices.BinarySearchFunc(ss.s, x.v, func(a valueSample, t float64) int { return cmp.Compare(a.v, t) })
	for ; i < len(ss.s) && cmp.Compare(ss.s[i].v, x.v) == 0; i++ {
		if ss.s[i].at == at {
			ss.s = slices.Delete(ss.s, i, i+1)
			return
		}
	}
	// Not found cannot happen while the two stay in step; rebuild then.
	ss.built = false
}

// median of the n samples in (from, to]: the middle value, or the mean of
// the two middle values of an even count.
func (ss *sortedSamples) median(n int, from, to int64) Value {
	if n == 0 {
		return Value{}
	}
	lo, hi := (n-1)/2, n/2
	var a, b float64
	k := 0
	for _, x := range ss.s {
		if x.at <= from || x.at > to {
			continue
		}
		if k == lo {
			a = x.v
		}
		if k == hi {
			b = x.v
			break
		}
		k++
	}
	if n%2 == 1 {
		return Value{b, true}
	}
	return Value{(a + b) / 2, true}
}

// resize returns s with n zero elements, reusing its array.
func resize[T any](s []T, n int) []T {
	s = slices.Grow(s[:0], n)[:n]
	clear(s)
	return s
}

// Times as Unix nanoseconds for the rolling windows, clamped so that the
// far past and future (a zero time, year 1) keep their order against a
// sane now and a window added or subtracted does not overflow.
const (
	nanosLimitSec = 9_000_000_000 // about the years 1685 to 2255
	nanosLimit    = nanosLimitSec * 1e9
)

func nanos(t time.Time) int64 {
	switch s := t.Unix(); {
	case s < -nanosLimitSec:
		return -nanosLimit
	case s >= nanosLimitSec:
		return nanosLimit
	default:
		return s*1e9 + int64(t.Nanosecond())
	}
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
