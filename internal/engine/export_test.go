package engine

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// scenarioConfig is the configuration TestScenarios runs a scenario with.
func scenarioConfig(t *testing.T, sc enginetest.Scenario) Config {
	t.Helper()
	dora2024, err := ReportTierSet(2024)
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.RollingWindows = []time.Duration{24 * time.Hour, 7 * 24 * time.Hour}
	cfg.TierSets = []TierSet{dora2024}
	if len(sc.ServicePaths) > 0 {
		cfg.ServicePaths = map[ServiceKey][]string{}
		for _, p := range sc.ServicePaths {
			cfg.ServicePaths[ServiceKey{Namespace: p.Namespace, Name: p.Name}] = p.Paths
		}
	}
	return cfg
}

// encode is the JSON of an engine's exported state.
func encode(t *testing.T, e *Engine) []byte {
	t.Helper()
	b, err := json.Marshal(e.Export())
	require.NoError(t, err)
	return b
}

// restore builds a new engine with cfg from the JSON of a state, as the
// receiver does at start (the start time passed to New is replaced).
func restore(t *testing.T, cfg Config, b []byte) *Engine {
	t.Helper()
	var st State
	require.NoError(t, json.Unmarshal(b, &st))
	e, err := New(cfg, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	require.NoError(t, e.Import(st))
	return e
}

// TestExportImportRoundTrip: the state of every scenario survives
// Export, JSON and Import unchanged: the second export is byte for byte the
// first, and the restored engine shows the same metrics, rolling values and
// start time.
func TestExportImportRoundTrip(t *testing.T) {
	for _, sc := range enginetest.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			cfg := scenarioConfig(t, sc)
			e := apply(t, cfg, sc.Events...)
			first := encode(t, e)
			r := restore(t, cfg, first)
			assert.JSONEq(t, string(first), string(encode(t, r)))
			assert.Equal(t, string(first), string(encode(t, r)), "byte for byte")
			assert.Equal(t, e.SnapshotAt(sc.Now), r.SnapshotAt(sc.Now))
			assert.Equal(t, t0, r.StartTime(), "the counters keep their start time")
		})
	}
}

// TestRestoreMidScenario: an engine stopped after any event of a scenario,
// restored from its exported state and fed the rest ends exactly like one
// that never stopped: the same state, the same metrics, and the same outcome
// (changed, duplicate, deployment report) for every later event. The events
// of the scenario are then all redelivered: the restored engine knows them.
func TestRestoreMidScenario(t *testing.T) {
	for _, sc := range enginetest.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			cfg := scenarioConfig(t, sc)
			for cut := 0; cut <= len(sc.Events); cut++ {
				ref := apply(t, cfg, sc.Events[:cut]...)
				stopped := apply(t, cfg, sc.Events[:cut]...)
				r := restore(t, cfg, encode(t, stopped))
				for i, ev := range sc.Events[cut:] {
					want, err := ref.Apply(ev)
					require.NoError(t, err)
					got, err := r.Apply(ev)
					require.NoError(t, err)
					require.Equal(t, want, got, "cut %d, event %d (%s)", cut, cut+i, ev.ID)
				}
				require.Equal(t, string(encode(t, ref)), string(encode(t, r)), "cut %d", cut)
				require.Equal(t, ref.SnapshotAt(sc.Now), r.SnapshotAt(sc.Now), "cut %d", cut)
				checkExpected(t, r.SnapshotAt(sc.Now), sc.Want)
				for _, ev := range sc.Events {
					want, err := ref.Apply(ev)
					require.NoError(t, err)
					out, err := r.Apply(ev)
					require.NoError(t, err)
					require.Equal(t, want, out, "cut %d: redelivery of %s", cut, ev.ID)
					require.False(t, out.Changed, "cut %d: redelivery of %s changed a metric", cut, ev.ID)
				}
			}
		})
	}
}

// TestRestoreAllScenariosInOneEngine: one engine holding every scenario's
// state at once (many services, failures, incidents, commits, change
// requests, teams and path filters) round-trips too.
func TestRestoreAllScenariosInOneEngine(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ServicePaths = map[ServiceKey][]string{}
	var events []event.Event
	for i, sc := range enginetest.Scenarios() {
		for _, p := range sc.ServicePaths {
			cfg.ServicePaths[ServiceKey{Namespace: p.Namespace, Name: p.Name}] = p.Paths
		}
		for _, ev := range sc.Events {
			// Each scenario's events as another source, so that ids and
			// deployments do not collide; teams on some of them.
			ev.Source = ev.Source + "-" + string(rune('a'+i))
			if ev.Service.Name != "" && i%2 == 0 {
				ev.Team, ev.TeamFallback = "team-"+ev.Service.Name, i%4 == 0
			}
			events = append(events, ev)
		}
	}
	slices.SortStableFunc(events, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
	e := apply(t, cfg, events...)
	b := encode(t, e)
	r := restore(t, cfg, b)
	assert.Equal(t, string(b), string(encode(t, r)))
	now := enginetest.At(5 * 24 * time.Hour)
	assert.Equal(t, e.SnapshotAt(now), r.SnapshotAt(now))
	t.Logf("state of %d events: %d bytes of JSON", len(events), len(b))
}

// TestImportPathFiltersRemapped: commits name the path filters by their
// index in the exporting engine; a restore with a changed services
// configuration maps them to the filters it has now, and forgets those it
// does not have.
func TestImportPathFiltersRemapped(t *testing.T) {
	api := ServiceKey{Namespace: "shop", Name: "api"}
	web := ServiceKey{Namespace: "shop", Name: "web"}
	cfg := DefaultConfig()
	cfg.ServicePaths = map[ServiceKey][]string{api: {"api/**"}, web: {"web/**"}}
	e := apply(t, cfg, event.Event{Kind: event.ChangeCommitted, Source: "s", ID: "c1", Time: t0, Revision: "r1", Paths: []string{"web/x.go"}})
	st := e.Export()
	require.Equal(t, []ServiceKey{api, web}, st.PathFilters)
	require.Equal(t, []int32{1}, st.Commits[0].Touches)

	// Now only web has filters: it is index 0.
	cfg.ServicePaths = map[ServiceKey][]string{web: {"web/**"}}
	r, err := New(cfg, t0)
	require.NoError(t, err)
	require.NoError(t, r.Import(st))
	got := r.Export()
	assert.Equal(t, []int32{0}, got.Commits[0].Touches)
	assert.True(t, got.Commits[0].PathsKnown)
}

func TestImportRefusesOtherVersions(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	for _, v := range []int{0, StateVersion + 1} {
		st := e.Export()
		st.Version = v
		err := e.Import(st)
		require.ErrorIs(t, err, ErrStateVersion, "version %d", v)
		assert.Contains(t, err.Error(), "newer otelcol-dora")
	}
}

// TestImportRefusesInconsistentState: a state whose references do not hold
// is refused and leaves the engine as it was.
func TestImportRefusesInconsistentState(t *testing.T) {
	sc := enginetest.Scenarios()[1] // rollback: failures and history
	cfg := scenarioConfig(t, sc)
	e := apply(t, cfg, sc.Events...)
	before := encode(t, e)
	for name, breakIt := range map[string]func(*State){
		"history index":     func(st *State) { st.Services[0].Deployments[0].History = 99 },
		"failure reference": func(st *State) { st.Services[0].Failures = []FailureState{{Deployment: 42}} },
		"outcome":           func(st *State) { st.Services[0].Deployments[0].Outcome = "maybe" },
		"event kind":        func(st *State) { st.Services[0].Deployments[0].Events[0].Kind = "teleported" },
		"histogram counts":  func(st *State) { st.LeadTime[0].Counts = st.LeadTime[0].Counts[1:] },
		"duplicate id":      func(st *State) { st.Dedup.IDs = append(st.Dedup.IDs, st.Dedup.IDs[0]) },
		"touches":           func(st *State) { st.Commits[0].PathsKnown, st.Commits[0].Touches = true, []int32{3} },
	} {
		st := e.Export()
		breakIt(&st)
		assert.Error(t, e.Import(st), name)
		assert.Equal(t, string(before), string(encode(t, e)), "%s: the engine is unchanged", name)
	}
}

func TestSeen(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	ev := event.Event{Kind: event.ChangeCommitted, Source: "github", ID: "d1", Time: t0, Revision: "r1"}
	assert.False(t, e.Seen(ev))
	_, err = e.Apply(ev)
	require.NoError(t, err)
	assert.True(t, e.Seen(ev))
	other := ev
	other.Source = "gitlab"
	assert.False(t, e.Seen(other), "ids are per source")
	noID := ev
	noID.ID = ""
	assert.False(t, e.Seen(noID), "an event without id is never a duplicate")
}

// TestStateCoversEngine fails when a field is added to the engine's state
// types without a decision about Export and Import: add it to State (and
// to the lists below), or to the lists with a reason it needs no saving.
func TestStateCoversEngine(t *testing.T) {
	fields := func(v any) []string {
		var out []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			out = append(out, typ.Field(i).Name)
		}
		return out
	}
	for _, x := range []struct {
		v    any
		want []string
	}{
		// cfg, retention and filters come from the configuration; report,
		// imported and importFrom are about the event being applied.
		{Engine{}, []string{"cfg", "start", "version", "newest", "retention", "seen", "services", "commits", "changes", "importedSeen", "imported", "importFrom",
			"deployments", "failures", "dropped", "incidents", "rework", "leadTime", "stages", "recovery", "teams", "filters", "report",
			// clusters is derived from services (load rebuilds it).
			"clusters"}},
		// production comes from the configuration; rolling is a cache of
		// values computed from history, leadTimes and recoveries.
		{serviceState{}, []string{"production", "deployments", "deployedRevisions", "revisionOrder", "historyStarted", "historyStart", "failures",
			"incidents", "history", "leadTimes", "recoveries", "deployed", "rolling"}},
		{deploymentState{}, []string{"id", "source", "revision", "started", "startSeen", "finished", "outcome", "rollback", "hotfix",
			"failureCounted", "history", "aliases", "events"}},
		{failureState{}, []string{"deployment", "since", "detected", "incidents"}},
		{incidentState{}, []string{"id", "opened", "resolved", "attributed"}},
		{deployRecord{}, []string{"at", "success", "changeFailure", "rework"}},
		{sample{}, []string{"at", "v"}},
		// head is where order's live part starts (exported from there).
		{dedup{}, []string{"ids", "order", "head", "newest"}},
		// max comes from the configuration; index, ring, head, n and first
		// are the layout of the commits, exported in order.
		{commitGraph{}, []string{"max", "index", "ring", "head", "n", "first"}},
		{commit{}, []string{"rev", "parent", "time", "extra"}},
		{commitExtra{}, []string{"merged", "opened", "reverts", "hotfix", "pathsKnown", "touches"}},
		{changeIndex{}, []string{"max", "changes", "order"}},
		{changeInfo{}, []string{"opened", "mergeRevision"}},
		{teamInfo{}, []string{"name", "fallback"}},
		{Histogram{}, []string{"Bounds", "Counts", "Count", "Sum", "Min", "Max"}},
		{EventRef{}, []string{"Source", "ID", "Kind"}},
	} {
		assert.Equal(t, x.want, fields(x.v), "%T", x.v)
	}
}

// TestImportStateWithoutHistoryStart: a state saved before history_start
// existed still loads; the service's history then starts at the earliest
// time its state holds (here the first deployment), so a commit known only
// from a later deployment and older than that stays before_history, and a
// newer one counts.
func TestImportStateWithoutHistoryStart(t *testing.T) {
	const first, second = time.Hour, 2 * time.Hour
	e := apply(t, DefaultConfig(), incident(event.IncidentOpened, api, "inc-0", -days(3)), succeeded(api, "d1", "", first))
	st := e.Export()
	require.Len(t, st.Services, 1)
	require.Equal(t, at(-days(3)), st.Services[0].HistoryStart, "the incident started the history")
	b, err := json.Marshal(st)
	require.NoError(t, err)
	old := strings.Replace(string(b), `"history_start":"`+at(-days(3)).Format(time.RFC3339Nano)+`",`, "", 1)
	require.NotEqual(t, string(b), old, "history_start removed from the saved state")
	var oldState State
	require.NoError(t, json.Unmarshal([]byte(old), &oldState))
	require.True(t, oldState.Services[0].HistoryStart.IsZero())

	r, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	require.NoError(t, r.Import(oldState))
	// The earliest time held is the incident's opening.
	assert.Equal(t, at(-days(3)), r.Export().Services[0].HistoryStart)

	// Without the incident, the deployment is the earliest time held.
	oldState.Services[0].Incidents = nil
	r, err = New(DefaultConfig(), t0)
	require.NoError(t, err)
	require.NoError(t, r.Import(oldState))
	assert.Equal(t, at(first), r.Export().Services[0].HistoryStart)
	for _, ev := range []event.Event{
		withCommitTime(succeeded(api, "d2", "old", second), first-time.Minute),
		withCommitTime(succeeded(api, "d3", "new", second+time.Hour), first+time.Minute),
	} {
		_, err := r.Apply(ev)
		require.NoError(t, err)
	}
	s := r.Snapshot()
	assert.Equal(t, map[string]uint64{"api before_history": 1}, counters(s.LeadTimeDropped))
	assert.Equal(t, map[string][2]float64{"api": {(second + time.Hour - first - time.Minute).Seconds(), 1}}, observations(s.LeadTime))
}

// Event ids are scoped by cluster: the same rollout id from two clusters
// is two events, each recognized again after a restore (a redelivery of a
// retried export at the gateway), and the clusters' services survive the
// state's trip through JSON.
func TestSeenPerClusterAcrossRestore(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	evs := []event.Event{}
	for _, c := range []string{"eu-1", "us-1"} {
		evs = append(evs, event.Event{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: "shop/api/r1/succeeded", Time: t0,
			Service: event.Service{Namespace: "shop", Name: "api", Environment: "production", Cluster: c}, DeploymentID: "shop/api/1"})
	}
	for _, ev := range evs {
		out, err := e.Apply(ev)
		require.NoError(t, err)
		assert.False(t, out.Duplicate, "%s: not a redelivery of the other cluster's", ev.Service.Cluster)
	}
	r := restore(t, DefaultConfig(), encode(t, e))
	for _, ev := range evs {
		assert.True(t, r.Seen(ev), ev.Service.Cluster)
		out, err := r.Apply(ev)
		require.NoError(t, err)
		assert.True(t, out.Duplicate, ev.Service.Cluster)
	}
	single := evs[0]
	single.Service.Cluster = ""
	assert.False(t, r.Seen(single), "a single-cluster installation's id is another")
	var clusters []string
	for _, p := range r.SnapshotAt(t0).Deployments {
		clusters = append(clusters, p.Service.Cluster)
	}
	assert.Equal(t, []string{"eu-1", "us-1"}, clusters)
}
