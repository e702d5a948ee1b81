package persist

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
)

// workload is n events of a busy platform: services services, each
// deploying every few hours over the last 30 days, two commits per
// deployment, one deployment in ten failed, one incident in twenty.
func workload(n, services int) []event.Event {
	var out []event.Event
	step := 30 * 24 * time.Hour / time.Duration(n/4+1)
	at := t0.Add(-30 * 24 * time.Hour)
	for i := 0; len(out) < n; i++ {
		svc := event.Service{Namespace: "ns", Name: fmt.Sprintf("svc-%d", i%services), Environment: "production"}
		repo := "acme/" + svc.Name
		parent := fmt.Sprintf("%s-r%d", svc.Name, i/services-1)
		for c := range 2 {
			rev := fmt.Sprintf("%s-r%d-%d", svc.Name, i/services, c)
			out = append(out, event.Event{Kind: event.ChangeCommitted, Source: "github", ID: "push-" + rev, Time: at, Repository: repo,
				Revision: rev, ParentRevision: parent, Paths: []string{"main.go"}})
			parent = rev
		}
		rev := fmt.Sprintf("%s-r%d", svc.Name, i/services)
		out = append(out, event.Event{Kind: event.ChangeCommitted, Source: "github", ID: "push-" + rev, Time: at, Repository: repo, Revision: rev, ParentRevision: parent})
		kind := event.DeploymentSucceeded
		if i%10 == 9 {
			kind = event.DeploymentFailed
		}
		at = at.Add(step)
		out = append(out, event.Event{Kind: kind, Source: "kubernetes", ID: fmt.Sprintf("ns/%s/%d/%s", svc.Name, i, kind), Time: at,
			Service: svc, DeploymentID: fmt.Sprintf("ns/%s@%d", svc.Name, i), Revision: rev, Team: "team-" + svc.Name[len(svc.Name)-1:]})
		if i%20 == 19 {
			out = append(out, event.Event{Kind: event.IncidentOpened, Source: "alertmanager", ID: fmt.Sprintf("inc-%d", i), Time: at.Add(time.Minute), Service: svc, IncidentID: fmt.Sprintf("inc-%d", i)})
		}
	}
	return out[:n]
}

// TestSizes logs the size of the stored state and how long saving and
// loading it take, for a few workloads (go test -run TestSizes -v).
func TestSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("measures")
	}
	for _, tc := range []struct{ events, services int }{{1000, 20}, {10000, 100}, {100000, 500}} {
		evs := workload(tc.events, tc.services)
		eng, err := engine.New(engine.DefaultConfig(), t0)
		require.NoError(t, err)
		c := persisttest.NewExtension().Client("dora")
		s := newStore(t, c)
		began := time.Now()
		for i := 0; i < len(evs); i += 10 {
			_, err := s.Append(context.Background(), evs[i:min(i+10, len(evs))])
			require.NoError(t, err)
		}
		appendTook := time.Since(began)
		logSize := c.Size()
		for _, ev := range evs {
			_, err := eng.Apply(ev)
			require.NoError(t, err)
		}

		began = time.Now()
		size, err := s.Snapshot(context.Background(), eng.Export(), uint64(len(evs)))
		require.NoError(t, err)
		snapTook := time.Since(began)

		began = time.Now()
		snap, rest, _, err := New(c).Load(context.Background())
		require.NoError(t, err)
		require.Empty(t, rest)
		restored, err := engine.New(engine.DefaultConfig(), time.Now())
		require.NoError(t, err)
		require.NoError(t, restored.Import(*snap))
		loadTook := time.Since(began)

		// A restart after a crash replays the log since the last snapshot:
		// at most snapshot_every events. Here: all of them, the worst case
		// without snapshots.
		began = time.Now()
		_, logged, _, err := New(persistLogOnly(t, evs)).Load(context.Background())
		require.NoError(t, err)
		replay, err := engine.New(engine.DefaultConfig(), t0)
		require.NoError(t, err)
		for _, ev := range logged {
			_, err := replay.Apply(ev)
			require.NoError(t, err)
		}
		replayTook := time.Since(began)

		t.Logf("%6d events, %3d services: log %5.1f MB (%4.0f B/event, appended in %v by 10); snapshot %5.2f MB, saved in %v, loaded and imported in %v; replaying the whole log %v",
			tc.events, tc.services, float64(logSize)/1e6, float64(logSize)/float64(tc.events), appendTook.Round(time.Millisecond),
			float64(size)/1e6, snapTook.Round(time.Millisecond), loadTook.Round(time.Millisecond), replayTook.Round(time.Millisecond))
	}
}

func persistLogOnly(t *testing.T, evs []event.Event) *persisttest.Client {
	c := persisttest.NewExtension().Client("log")
	s := newStore(t, c)
	_, err := s.Append(context.Background(), evs)
	require.NoError(t, err)
	return c
}
