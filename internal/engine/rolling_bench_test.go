package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// BenchmarkDeployThenSnapshotAt mimics the CI/CD spans load through the
// receiver: one production service with a full rolling history (4,096
// deployments, each with a lead time) receives a new deployment shipping a
// new commit, then the receiver emits (SnapshotAt). Each op is a commit, a
// deployment and a snapshot.
func BenchmarkDeployThenSnapshotAt(b *testing.B) {
	eng, err := engine.New(engine.DefaultConfig(), benchT0)
	if err != nil {
		b.Fatal(err)
	}
	svc := event.Service{Namespace: "ns", Name: "api", Environment: "production"}
	at := benchT0
	n := 0
	deploy := func() {
		rev := fmt.Sprintf("c%d", n)
		parent := ""
		if n > 0 {
			parent = fmt.Sprintf("c%d", n-1)
		}
		for _, ev := range []event.Event{
			{Kind: event.ChangeCommitted, Source: "github", ID: "push-" + rev, Time: at.Add(-10 * time.Minute), Repository: "acme/api", Revision: rev, ParentRevision: parent},
			{Kind: event.DeploymentSucceeded, Source: "github", ID: "deploy-" + rev, Time: at, Service: svc, DeploymentID: "d-" + rev, Revision: rev},
		} {
			if _, err := eng.Apply(ev); err != nil {
				b.Fatal(err)
			}
		}
		n++
		at = at.Add(time.Minute)
	}
	for range 4096 {
		deploy()
	}
	if s := eng.SnapshotAt(at); len(s.LeadTime) != 1 || s.LeadTime[0].Histogram.Count < 4000 {
		b.Fatalf("warm state has no lead times: %+v", s.LeadTime)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		deploy()
		_ = eng.SnapshotAt(at)
	}
}
