package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// importFrom is the start of the import window of these tests: 30 days
// before t0, the longest default rolling window.
var importFrom = t0.Add(-30 * 24 * time.Hour)

func imported(ev event.Event) event.Event {
	ev.Imported, ev.ImportFrom = true, importFrom
	return ev
}

// monthOfHistory is 40 production deployments of api over the 30 days
// before t0 (more than the deployments a service remembers,
// maxDeploymentsPerService, and most older than the dedup window), each
// shipping a commit made two hours before, one of them failing through an
// incident resolved three hours later.
func monthOfHistory() []event.Event {
	var evs []event.Event
	for i := range 40 {
		t := -30*24*time.Hour + 3*time.Hour + time.Duration(i)*18*time.Hour
		id, rev := fmt.Sprintf("d%d", i), fmt.Sprintf("rev%d", i)
		evs = append(evs, withCommitTime(started(api, id, rev, t-time.Hour), t-2*time.Hour), withCommitTime(succeeded(api, id, rev, t), t-2*time.Hour))
		if i == 20 {
			evs = append(evs, incident(event.IncidentOpened, api, "inc-1", t+time.Hour), incident(event.IncidentResolved, api, "inc-1", t+4*time.Hour))
		}
	}
	return evs
}

func applyAll(t *testing.T, e *Engine, evs []event.Event) {
	t.Helper()
	for _, ev := range evs {
		_, err := e.Apply(ev)
		require.NoError(t, err)
	}
}

func rollingAt(e *Engine, svc event.Service, now time.Time) map[string]RollingPoint {
	m := map[string]RollingPoint{}
	for _, p := range e.SnapshotAt(now).Rolling {
		if p.Service == svc {
			p.Levels = nil // compared separately where it matters
			m[p.Window] = p
		}
	}
	return m
}

func importAll(evs []event.Event) []event.Event {
	out := make([]event.Event, len(evs))
	for i, ev := range evs {
		out[i] = imported(ev)
	}
	return out
}

// TestImportedEventsFeedRollingNotCounters: an imported month gives the
// same rolling values as the same month delivered live (with the history
// starting at the window's start), and changes no cumulative counter or
// histogram.
func TestImportedEventsFeedRollingNotCounters(t *testing.T) {
	month := monthOfHistory()
	live, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	applyAll(t, live, month)
	// The live engine saw the service from the window's start too.
	live.services[api].noteObserved(importFrom)

	imp, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	applyAll(t, imp, importAll(month))

	want := rollingAt(live, api, t0)
	require.Len(t, want, 3)
	assert.Equal(t, want, rollingAt(imp, api, t0))
	w30 := rollingAt(imp, api, t0)["30d"]
	assert.InDelta(t, 40.0/30, w30.DeploymentFrequency, 1e-9)
	assert.True(t, w30.LeadTimeMedian.OK)
	assert.True(t, w30.ChangeFailureRate.OK)
	assert.InDelta(t, 1.0/40, w30.ChangeFailureRate.V, 1e-9)
	assert.True(t, w30.RecoveryTimeMedian.OK)
	assert.NotEmpty(t, imp.SnapshotAt(t0).Rolling[0].Levels, "the imported month gives levels at once")

	// The live engine counted everything; the imported one nothing.
	ls := live.Snapshot()
	require.Equal(t, uint64(40), counters(ls.Deployments)["api success"])
	require.NotEmpty(t, ls.LeadTime)
	s := imp.Snapshot()
	assert.Empty(t, s.Deployments)
	assert.Empty(t, s.Failures)
	assert.Empty(t, s.Incidents)
	assert.Empty(t, s.Rework)
	assert.Empty(t, s.LeadTimeDropped)
	assert.Empty(t, s.LeadTime)
	assert.Empty(t, s.LeadTimeStages)
	assert.Empty(t, s.RecoveryTime)
}

// TestImportMovesHistoryStartToTheWindowStart: a service whose only
// imported deployment is two days old has been observed for the whole
// import window, so its 30-day window is covered and gets a level.
func TestImportMovesHistoryStartToTheWindowStart(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	applyAll(t, e, []event.Event{imported(succeeded(api, "d1", "r1", -48*time.Hour))})
	w := rollingAt(e, api, t0)["30d"]
	assert.InDelta(t, 1.0, w.Coverage, 1e-9)
	assert.InDelta(t, 1.0/30, w.DeploymentFrequency, 1e-9)
	assert.Equal(t, importFrom, e.services[api].historyStart)
	var levels int
	for _, p := range e.SnapshotAt(t0).Rolling {
		if p.Window == "30d" {
			levels = len(p.Levels)
		}
	}
	assert.NotZero(t, levels, "a covered window gets levels")
}

// TestImportThenLiveCountedOnce: a deployment imported as finished and
// then delivered live (under the live source's own event ids) is one
// deployment in the rolling history and none in the counters (it happened
// before the import); one imported as started that finishes live counts
// when it finishes, once.
func TestImportThenLiveCountedOnce(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	applyAll(t, e, []event.Event{
		imported(withID(started(api, "done", "r1", -3*time.Hour), "import/start/done")),
		imported(withID(succeeded(api, "done", "r1", -2*time.Hour), "import/ok/done")),
		imported(withID(started(api, "rolling", "r2", -10*time.Minute), "import/start/rolling")),
	})
	applyAll(t, e, []event.Event{
		started(api, "done", "r1", -3*time.Hour),
		succeeded(api, "done", "r1", -2*time.Hour),
		started(api, "rolling", "r2", -10*time.Minute),
		succeeded(api, "rolling", "r2", 0),
	})
	assert.Equal(t, map[string]uint64{"api success": 1}, counters(e.Snapshot().Deployments), "only the deployment that finished live is counted")
	w := rollingAt(e, api, t0.Add(time.Minute))["1d"]
	assert.InDelta(t, 2.0, w.DeploymentFrequency, 1e-9, "each deployment once in the rolling history")
}

// TestImportTwiceCountedOnce: importing the same month again, or resuming
// an import after a crash (the engine restored from its saved state), adds
// nothing, although most events are older than the dedup window and the
// service remembers only its latest deployments.
func TestImportTwiceCountedOnce(t *testing.T) {
	month := importAll(monthOfHistory())
	for i := range month {
		month[i].ID = "import/" + month[i].ID
	}
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	applyAll(t, e, month)
	want := rollingAt(e, api, t0)

	applyAll(t, e, month)
	assert.Equal(t, want, rollingAt(e, api, t0), "imported again")

	restored := restore(t, DefaultConfig(), encode(t, e))
	for _, ev := range month {
		out, err := restored.Apply(ev)
		require.NoError(t, err)
		assert.True(t, out.Duplicate, "%s is recognized after a restart", ev.ID)
	}
	assert.Equal(t, want, rollingAt(restored, api, t0), "resumed after a restart")
	assert.Empty(t, restored.Snapshot().Deployments)
}

// TestImportedIncidentsAfterTheirDeployments: an import reads a source's
// deployments before another source's incidents (history.Phased), so an
// incident may be older than the deployments the service remembers; it
// is attributed through the rolling history all the same, and a second
// incident of the same deployment joins its failure.
func TestImportedIncidentsAfterTheirDeployments(t *testing.T) {
	var deployments, incidents []event.Event
	for _, ev := range monthOfHistory() {
		if ev.IncidentID == "" {
			deployments = append(deployments, ev)
		}
	}
	for _, i := range []int{0, 20} {
		t := -30*24*time.Hour + 3*time.Hour + time.Duration(i)*18*time.Hour
		for n, id := range []string{fmt.Sprintf("inc-%d", i), fmt.Sprintf("inc-%d-again", i)} {
			incidents = append(incidents, incident(event.IncidentOpened, api, id, t+time.Hour+time.Duration(n)*time.Minute),
				incident(event.IncidentResolved, api, id, t+4*time.Hour))
		}
	}
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	applyAll(t, e, importAll(deployments))
	applyAll(t, e, importAll(incidents))
	w := rollingAt(e, api, t0)["30d"]
	assert.InDelta(t, 2.0/40, w.ChangeFailureRate.V, 1e-9, "both deployments failed, each once")
	assert.True(t, w.RecoveryTimeMedian.OK)
	assert.InDelta(t, 4*3600.0, w.RecoveryTimeMedian.V, 1e-9, "recovered when the last incident of each was resolved")
	assert.Empty(t, e.Snapshot().Failures)
}
