package ingest

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/cardinality"
	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Bounded series (issue 13): the events of a delivery pass the limiter
// (internal/cardinality) under c.mu, in the order they are applied, after
// their checks and before they are logged, so the saved log holds the
// folded values and replays to the same series. At start the limiter
// admits what the restored engine holds, so a value with series keeps
// them after a restart.

// Measured costs (BENCHMARKS.md, "Series and state cost"). A stored
// series (Stats.Series) costs about 450 bytes of engine heap
// (BenchmarkStateCost) but about 14 KiB of process RSS once emitted,
// exported by the Prometheus exporter and scraped (the 20,000-services
// probe through the binary, e2e TestTwentyThousandServicesThroughTheBinary):
// the guard counts what the process pays, so that max_state_bytes reads
// as memory the series make the process use. Pending changes and open
// incidents make no series: their engine heap is their cost.
const (
	CostPerSeries        = 16 << 10
	CostPerPendingChange = 200
	CostPerOpenIncident  = 300
)

// foldWarnEvery rate-limits the warning of each source and attribute.
const foldWarnEvery = time.Minute

type foldWarnKey struct{ source, attribute string }

type foldWarning struct {
	last   time.Time
	folded int64
}

// newLimiter returns the limiter of the engine's state: what it holds
// (restored) is admitted.
func (c *Core) newLimiter(restored bool) *cardinality.Limiter {
	lim := cardinality.New(c.set.Limits.Series,
		engine.ReasonRollback, engine.ReasonIncident, engine.ReasonFailed, engine.ReasonHotfix, engine.ReasonRevert)
	if !restored {
		return lim
	}
	st := c.engine.Export()
	for _, s := range st.Services {
		lim.Admit(event.Service(s.Service), "")
	}
	for _, f := range st.Failures {
		lim.Admit(event.Service(f.Service), f.Label)
	}
	return lim
}

// foldLocked folds the values of events past the limits, counts and warns;
// c.mu is held. It reports whether a new value was admitted.
func (c *Core) foldLocked(ctx context.Context, events []event.Event) bool {
	admitted := false
	for i := range events {
		ev := &events[i]
		if c.engine.Seen(*ev) {
			// A redelivery: applied (and folded) before, changes nothing.
			continue
		}
		origin := cardinality.Sender
		switch {
		case ev.Source == event.SourceKubernetes || ev.Source == event.SourceArgoRollouts || ev.Source == event.SourceFlagger:
			origin = cardinality.Cluster
		case c.set.Mapped[[2]string{ev.Service.Namespace, ev.Service.Name}]:
			origin = cardinality.Mapped
		}
		folds, adm := c.series.Apply(ev, origin)
		admitted = admitted || adm
		for _, f := range folds {
			if c.set.Folded != nil {
				c.set.Folded(ctx, ev.Source, f.Attribute)
			}
			c.warnFold(ev.Source, f)
		}
	}
	return admitted
}

// warnFold logs a fold, at most once per foldWarnEvery for each source and
// attribute, with the number folded since the last line; c.mu is held.
func (c *Core) warnFold(source string, f cardinality.Fold) {
	k := foldWarnKey{source, f.Attribute}
	w := c.foldWarned[k]
	if w == nil {
		w = &foldWarning{}
		c.foldWarned[k] = w
	}
	w.folded++
	now := time.Now()
	if !w.last.IsZero() && now.Sub(w.last) < foldWarnEvery {
		return
	}
	limit := map[string]string{
		cardinality.AttrService:     "limits::max_services",
		cardinality.AttrEnvironment: "limits::max_environments_per_service",
		cardinality.AttrReason:      "limits::max_reasons",
	}[f.Attribute]
	if c.series.Full() {
		limit = "limits::max_state_bytes"
	}
	c.set.Logger.Warn("Too many distinct values from a source: new ones are folded into the overflow value",
		zap.String("source", source), zap.String("attribute", f.Attribute), zap.String("value", f.Value),
		zap.String("overflow", cardinality.Overflow), zap.String("limit", limit),
		zap.Int64("folded_since_last_warning", w.folded))
	w.last, w.folded = now, 0
}

// stateBytes estimates the engine's state from its counts.
func stateBytes(st engine.Stats) int64 {
	return int64(st.Series)*CostPerSeries + int64(st.PendingChanges)*CostPerPendingChange + int64(st.OpenIncidents)*CostPerOpenIncident
}

// checkBudgetLocked is the memory guard: past limits::max_state_bytes
// every new value of a sender folds and the component status is a
// recoverable error, until the state is back under it; c.mu is held.
func (c *Core) checkBudgetLocked() {
	budget := c.set.Limits.MaxStateBytes
	if budget <= 0 || c.series == nil {
		return
	}
	st := c.engine.Stats()
	est := stateBytes(st)
	over := est > budget
	if over == c.series.Full() {
		return
	}
	c.series.SetFull(over)
	if over {
		err := fmt.Errorf("the DORA state (about %d bytes: %d series, %d pending changes, %d open incidents) is over limits::max_state_bytes (%d): new services, environments and reasons fold into %s",
			est, st.Series, st.PendingChanges, st.OpenIncidents, budget, cardinality.Overflow)
		c.set.Logger.Error("Memory guard: new series are folded", zap.Error(err))
		c.reportStatus(componentstatus.NewRecoverableErrorEvent(err))
		return
	}
	c.set.Logger.Info("Memory guard: the DORA state is back under limits::max_state_bytes; new values are admitted again",
		zap.Int64("bytes", est), zap.Int64("limit", budget))
	c.reportStatus(componentstatus.NewEvent(componentstatus.StatusOK))
}
