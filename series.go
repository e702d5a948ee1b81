package dorareceiver

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
// (internal/cardinality) under r.mu, in the order they are applied, after
// their checks and before they are logged, so the saved log holds the
// folded values and replays to the same series. At start the limiter
// admits what the restored engine holds, so a value with series keeps
// them after a restart.

// Default limits: an organisation with a couple of thousand services, each
// in a handful of environments (with room for preview environments), and
// the failure reasons of a few CI systems and Kubernetes. At 2000
// production services the collector holds about 56,000 exported series
// and peaks near 360 MiB RSS (BENCHMARKS.md, "Series and state cost").
const (
	defaultMaxServices     = 2000
	defaultMaxEnvironments = 20
	defaultMaxReasons      = 100
	// defaultMaxStateBytes is 512 MiB of estimated state: above the
	// default series limits' estimate (2000 services of 11 stored series:
	// about 360 MiB), under a 1 GiB container with the collector's own.
	defaultMaxStateBytes = 512 << 20
)

// Measured costs (BENCHMARKS.md, "Series and state cost"). A stored
// series (Stats.Series) costs about 450 bytes of engine heap
// (BenchmarkStateCost) but about 14 KiB of process RSS once emitted,
// exported by the Prometheus exporter and scraped (the 20,000-services
// probe through the binary, e2e TestTwentyThousandServicesThroughTheBinary):
// the guard counts what the process pays, so that max_state_bytes reads
// as memory the series make the process use. Pending changes and open
// incidents make no series: their engine heap is their cost.
const (
	costPerSeries        = 16 << 10
	costPerPendingChange = 200
	costPerOpenIncident  = 300
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
func (r *doraReceiver) newLimiter(restored bool) *cardinality.Limiter {
	l := r.cfg.Limits
	lim := cardinality.New(cardinality.Limits{Services: l.MaxServices, EnvironmentsPerService: l.MaxEnvironmentsPerService, Reasons: l.MaxReasons},
		engine.ReasonRollback, engine.ReasonIncident, engine.ReasonFailed, engine.ReasonHotfix, engine.ReasonRevert)
	if !restored {
		return lim
	}
	st := r.engine.Export()
	for _, s := range st.Services {
		lim.Admit(event.Service(s.Service), "")
	}
	for _, c := range st.Failures {
		lim.Admit(event.Service(c.Service), c.Label)
	}
	return lim
}

// mappedServices are the services of the services mapping, by namespace
// and name: never folded.
func mappedServices(m []ServiceMapping) map[[2]string]bool {
	out := map[[2]string]bool{}
	for _, s := range m {
		out[[2]string{s.Namespace, s.Deployment}] = true
	}
	return out
}

// foldLocked folds the values of events past the limits, counts and warns;
// r.mu is held. It reports whether a new value was admitted.
func (r *doraReceiver) foldLocked(ctx context.Context, events []event.Event) bool {
	admitted := false
	for i := range events {
		ev := &events[i]
		if r.engine.Seen(*ev) {
			// A redelivery: applied (and folded) before, changes nothing.
			continue
		}
		origin := cardinality.Sender
		switch {
		case ev.Source == event.SourceKubernetes:
			origin = cardinality.Cluster
		case r.mapped[[2]string{ev.Service.Namespace, ev.Service.Name}]:
			origin = cardinality.Mapped
		}
		folds, adm := r.series.Apply(ev, origin)
		admitted = admitted || adm
		for _, f := range folds {
			r.tel.foldedValue(ctx, ev.Source, f.Attribute)
			r.warnFold(ev.Source, f)
		}
	}
	return admitted
}

// warnFold logs a fold, at most once per foldWarnEvery for each source and
// attribute, with the number folded since the last line; r.mu is held.
func (r *doraReceiver) warnFold(source string, f cardinality.Fold) {
	k := foldWarnKey{source, f.Attribute}
	w := r.foldWarned[k]
	if w == nil {
		w = &foldWarning{}
		r.foldWarned[k] = w
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
	if r.series.Full() {
		limit = "limits::max_state_bytes"
	}
	r.logger.Warn("Too many distinct values from a source: new ones are folded into the overflow value",
		zap.String("source", source), zap.String("attribute", f.Attribute), zap.String("value", f.Value),
		zap.String("overflow", cardinality.Overflow), zap.String("limit", limit),
		zap.Int64("folded_since_last_warning", w.folded))
	w.last, w.folded = now, 0
}

// stateBytes estimates the engine's state from its counts.
func stateBytes(st engine.Stats) int64 {
	return int64(st.Series)*costPerSeries + int64(st.PendingChanges)*costPerPendingChange + int64(st.OpenIncidents)*costPerOpenIncident
}

// checkBudgetLocked is the memory guard: past limits::max_state_bytes
// every new value of a sender folds and the component status is a
// recoverable error, until the state is back under it; r.mu is held.
func (r *doraReceiver) checkBudgetLocked() {
	budget := r.cfg.Limits.MaxStateBytes
	if budget <= 0 || r.series == nil {
		return
	}
	st := r.engine.Stats()
	est := stateBytes(st)
	over := est > budget
	if over == r.series.Full() {
		return
	}
	r.series.SetFull(over)
	if over {
		err := fmt.Errorf("the DORA state (about %d bytes: %d series, %d pending changes, %d open incidents) is over limits::max_state_bytes (%d): new services, environments and reasons fold into %s",
			est, st.Series, st.PendingChanges, st.OpenIncidents, budget, cardinality.Overflow)
		r.logger.Error("Memory guard: new series are folded", zap.Error(err))
		if r.host != nil {
			componentstatus.ReportStatus(r.host, componentstatus.NewRecoverableErrorEvent(err))
		}
		return
	}
	r.logger.Info("Memory guard: the DORA state is back under limits::max_state_bytes; new values are admitted again",
		zap.Int64("bytes", est), zap.Int64("limit", budget))
	if r.host != nil {
		componentstatus.ReportStatus(r.host, componentstatus.NewEvent(componentstatus.StatusOK))
	}
}
