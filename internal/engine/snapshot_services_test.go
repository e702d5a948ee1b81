package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// TestSnapshotServicesAt: the snapshot of some services is the full
// snapshot's points of those services, and none of the others, for every
// scenario and every service in it (and for none: an empty snapshot).
func TestSnapshotServicesAt(t *testing.T) {
	for _, sc := range enginetest.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			cfg := DefaultConfig()
			if len(sc.ServicePaths) > 0 {
				cfg.ServicePaths = map[ServiceKey][]string{}
				for _, p := range sc.ServicePaths {
					cfg.ServicePaths[ServiceKey{Namespace: p.Namespace, Name: p.Name}] = p.Paths
				}
			}
			e := apply(t, cfg, sc.Events...)
			full := e.SnapshotAt(sc.Now)
			services := map[event.Service]struct{}{}
			for _, p := range full.Deployments {
				services[p.Service] = struct{}{}
			}
			for svc := range services {
				only := map[event.Service]struct{}{svc: {}}
				assert.Equal(t, filterSnapshot(full, only), e.SnapshotServicesAt(sc.Now, only), "%v", svc)
			}
			empty := e.SnapshotServicesAt(sc.Now, nil)
			assert.Equal(t, filterSnapshot(full, map[event.Service]struct{}{}), empty)
		})
	}
}

func filterSnapshot(s Snapshot, only map[event.Service]struct{}) Snapshot {
	in := func(svc event.Service) bool { _, ok := only[svc]; return ok }
	counters := func(ps []CounterPoint) []CounterPoint {
		var out []CounterPoint
		for _, p := range ps {
			if in(p.Service) {
				out = append(out, p)
			}
		}
		return out
	}
	histograms := func(ps []HistogramPoint) []HistogramPoint {
		var out []HistogramPoint
		for _, p := range ps {
			if in(p.Service) {
				out = append(out, p)
			}
		}
		return out
	}
	out := Snapshot{StartTime: s.StartTime}
	out.Deployments, out.Failures = counters(s.Deployments), counters(s.Failures)
	out.LeadTimeDropped, out.Incidents, out.Rework = counters(s.LeadTimeDropped), counters(s.Incidents), counters(s.Rework)
	out.LeadTime, out.LeadTimeStages, out.RecoveryTime = histograms(s.LeadTime), histograms(s.LeadTimeStages), histograms(s.RecoveryTime)
	for _, p := range s.Rolling {
		if in(p.Service) {
			out.Rolling = append(out.Rolling, p)
		}
	}
	return out
}
