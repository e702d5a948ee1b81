package dorareceiver

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// heapAfterGC is the live heap.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkStateCost measures the live heap the engine's state costs per
// series, per pending change and per open incident: the per-item costs of
// the memory guard (CostPerSeries, CostPerPendingChange,
// CostPerOpenIncident in internal/ingest/series.go; BENCHMARKS.md "Series
// and state cost"). Run: go test -run '^$' -bench BenchmarkStateCost -benchtime 3x .
//
// A series is measured as production services do it: each service has a
// history of deployments (success, a failure with its recovery, lead
// times through pending commits) so that all of its series exist; the
// heap of the services divided by their series is the cost per series.
func BenchmarkStateCost(b *testing.B) {
	const services, commits, incidents = 2000, 50000, 20000
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var perSeries, perChange, perIncident, seriesPerService float64
	for range b.N {
		cfg := createDefaultConfig().engineConfig()
		base := heapAfterGC()
		eng, err := engine.New(cfg, t0)
		if err != nil {
			b.Fatal(err)
		}
		apply := func(ev event.Event) {
			if _, err := eng.Apply(ev); err != nil {
				b.Fatal(err)
			}
		}
		at := t0
		for i := range services {
			svc := event.Service{Namespace: "shop", Name: fmt.Sprintf("service-%05d", i), Environment: "production"}
			for d := range 4 {
				at = at.Add(time.Second)
				rev := fmt.Sprintf("%040x", i*8+d)
				apply(event.Event{Kind: event.ChangeCommitted, Source: "github", Time: at.Add(-time.Hour), Revision: rev, Service: svc})
				kind := event.DeploymentSucceeded
				if d == 2 {
					kind = event.DeploymentFailed
				}
				id := fmt.Sprintf("%s-%d", svc.Name, d)
				apply(event.Event{Kind: kind, Source: "generic", ID: id, Time: at, Service: svc, DeploymentID: id, Revision: rev, Reason: "ProgressDeadlineExceeded"})
			}
			apply(event.Event{Kind: event.IncidentOpened, Source: "pagerduty", ID: svc.Name + "-i", Time: at, Service: svc, IncidentID: svc.Name + "-i"})
			apply(event.Event{Kind: event.IncidentResolved, Source: "pagerduty", ID: svc.Name + "-r", Time: at.Add(time.Minute), Service: svc, IncidentID: svc.Name + "-i"})
		}
		// The commits the deployments shipped stay in the graph as
		// pending changes: counted apart, below.
		st := eng.Stats()
		withServices := heapAfterGC()
		commitHeap := float64(0)
		{
			// What the services' own commits cost, measured alone.
			other, _ := engine.New(cfg, t0)
			h0 := heapAfterGC()
			for i := range st.PendingChanges {
				other.Apply(event.Event{Kind: event.ChangeCommitted, Source: "github", Time: t0, Revision: fmt.Sprintf("%040x", i)})
			}
			commitHeap = float64(heapAfterGC()-h0) * float64(st.PendingChanges) / float64(max(other.Stats().PendingChanges, 1))
			runtime.KeepAlive(other)
		}
		perSeries = (float64(withServices-base) - commitHeap) / float64(st.Series)
		seriesPerService = float64(st.Series) / services

		before := heapAfterGC()
		for i := range commits {
			at = at.Add(time.Millisecond)
			apply(event.Event{Kind: event.ChangeCommitted, Source: "github", Time: at, Revision: fmt.Sprintf("%040x", 1<<40+i), ParentRevision: fmt.Sprintf("%040x", 1<<40+i-1)})
		}
		perChange = float64(heapAfterGC()-before) / float64(eng.Stats().PendingChanges-st.PendingChanges)

		before = heapAfterGC()
		for i := range incidents {
			svc := event.Service{Namespace: "shop", Name: fmt.Sprintf("service-%05d", i%services), Environment: "production"}
			id := fmt.Sprintf("inc-%d", i)
			apply(event.Event{Kind: event.IncidentOpened, Source: "pagerduty", ID: id, Time: at, Service: svc, IncidentID: id})
		}
		perIncident = float64(heapAfterGC()-before) / float64(eng.Stats().OpenIncidents)
		runtime.KeepAlive(eng)
	}
	b.ReportMetric(perSeries, "B/series")
	b.ReportMetric(seriesPerService, "series/service")
	b.ReportMetric(perChange, "B/pending-change")
	b.ReportMetric(perIncident, "B/open-incident")
}
