package emitter

// Benchmark of issue 7, item 5: metric emission with 3,000 series (1,000
// services x 3 environments) per export. scripts/bench.sh runs it.

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

func BenchmarkEmit3000Series(b *testing.B) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	eng, err := engine.New(engine.DefaultConfig(), t0)
	if err != nil {
		b.Fatal(err)
	}
	envs := []string{"development", "staging", "production"}
	for s := range 1000 {
		rev := fmt.Sprintf("svc-%d-c0", s)
		evs := []event.Event{{Kind: event.ChangeCommitted, Source: "github", Time: t0, Repository: fmt.Sprintf("acme/svc-%d", s), Revision: rev}}
		for e, env := range envs {
			svc := event.Service{Namespace: "ns", Name: fmt.Sprintf("svc-%d", s), Environment: env}
			id := fmt.Sprintf("%d/%s", s, env)
			at := t0.Add(time.Duration(e+1) * time.Hour)
			evs = append(evs,
				event.Event{Kind: event.DeploymentStarted, Source: "kubernetes", Time: at, Service: svc, DeploymentID: id, Revision: rev, Team: "team-a"},
				event.Event{Kind: event.DeploymentSucceeded, Source: "kubernetes", Time: at.Add(time.Minute), Service: svc, DeploymentID: id, Revision: rev, Team: "team-a"})
		}
		for _, ev := range evs {
			if _, err := eng.Apply(ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	now := t0.Add(6 * time.Hour)
	snap := eng.SnapshotAt(now)
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	points := em.Emit(snap, now).DataPointCount()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = em.Emit(snap, now)
	}
	b.ReportMetric(float64(points), "points")
}
