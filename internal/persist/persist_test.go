package persist

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
)

var (
	updateFixture = flag.Bool("update-v1-fixture", false,
		"rewrite testdata/v1/store.json; only while the layout and the snapshot are version 1, never after: later versions must read it as it is")
	updateSnapshotV2Fixture = flag.Bool("update-snapshot-v2-fixture", false,
		"rewrite testdata/snapshot-v2/store.json; only while the snapshot is version 2")
)

var t0 = enginetest.T0

func newStore(t *testing.T, c *persisttest.Client) *Store {
	t.Helper()
	s := New(c)
	_, _, _, err := s.Load(context.Background())
	require.NoError(t, err)
	return s
}

func load(t *testing.T, c *persisttest.Client) (*engine.State, []event.Event, uint64) {
	t.Helper()
	snap, evs, seq, err := New(c).Load(context.Background())
	require.NoError(t, err)
	return snap, evs, seq
}

func commit(rev string, i int) event.Event {
	return event.Event{Kind: event.ChangeCommitted, Source: "github", ID: "push-" + rev, Time: t0.Add(time.Duration(i) * time.Minute), Revision: rev}
}

// TestAppendThenLoad: deliveries appended in order are loaded in that
// order, whole, by a new Store on the same storage (a restart).
func TestAppendThenLoad(t *testing.T) {
	c := persisttest.NewExtension().Client("dora")
	snap, evs, seq := load(t, c)
	assert.Nil(t, snap)
	assert.Empty(t, evs)
	assert.Zero(t, seq)

	s := newStore(t, c)
	var want []event.Event
	for i := range 5 {
		delivery := []event.Event{commit(fmt.Sprintf("a%d", i), i), commit(fmt.Sprintf("b%d", i), i)}
		last, err := s.Append(context.Background(), delivery)
		require.NoError(t, err)
		want = append(want, delivery...)
		assert.EqualValues(t, len(want), last)
	}
	snap, evs, seq = load(t, c)
	assert.Nil(t, snap)
	assert.Equal(t, want, evs)
	assert.EqualValues(t, 10, seq)
	assert.Contains(t, c.Keys(), KeyFormat)

	// Appending goes on after the last one.
	s2 := newStore(t, c)
	last, err := s2.Append(context.Background(), []event.Event{commit("c", 9)})
	require.NoError(t, err)
	assert.EqualValues(t, 11, last)
}

// TestAppendIsAtomic: a failing storage logs none of a delivery's events,
// and the log goes on at the same sequence number once it works again.
func TestAppendIsAtomic(t *testing.T) {
	x := persisttest.NewExtension()
	c := x.Client("dora")
	s := newStore(t, c)
	_, err := s.Append(context.Background(), []event.Event{commit("a", 0)})
	require.NoError(t, err)
	keys := c.Keys()

	boom := errors.New("disk full")
	x.Fail(boom)
	_, err = s.Append(context.Background(), []event.Event{commit("b", 1), commit("c", 2)})
	require.ErrorIs(t, err, boom)
	x.Fail(nil)
	assert.Equal(t, keys, c.Keys(), "nothing of the failed delivery is stored")

	last, err := s.Append(context.Background(), []event.Event{commit("d", 3)})
	require.NoError(t, err)
	assert.EqualValues(t, 2, last)
	_, evs, _ := load(t, c)
	assert.Equal(t, []event.Event{commit("a", 0), commit("d", 3)}, evs)
}

// TestSnapshotReplacesTheEventsItCovers: a snapshot at sequence n deletes
// events 1..n in the same batch; loading gives the snapshot and the events
// after it. Snapshots are idempotent and a failed one changes nothing.
func TestSnapshotReplacesTheEventsItCovers(t *testing.T) {
	x := persisttest.NewExtension()
	c := x.Client("dora")
	s := newStore(t, c)
	eng, err := engine.New(engine.DefaultConfig(), t0)
	require.NoError(t, err)
	var all []event.Event
	for i := range 10 {
		ev := commit(strconv.Itoa(i), i)
		_, err := s.Append(context.Background(), []event.Event{ev})
		require.NoError(t, err)
		if i < 6 {
			_, err = eng.Apply(ev)
			require.NoError(t, err)
		}
		all = append(all, ev)
	}
	st := eng.Export()

	x.Fail(errors.New("unavailable"))
	_, err = s.Snapshot(context.Background(), st, 6)
	require.Error(t, err)
	x.Fail(nil)
	_, evs, _ := load(t, c)
	require.Len(t, evs, 10, "a failed snapshot deletes nothing")

	n, err := s.Snapshot(context.Background(), st, 6)
	require.NoError(t, err)
	assert.Positive(t, n)
	for q := uint64(1); q <= 6; q++ {
		assert.NotContains(t, c.Keys(), EventKey(q))
	}
	snap, evs, seq := load(t, c)
	require.NotNil(t, snap)
	assert.Equal(t, st, *snap)
	assert.Equal(t, all[6:], evs)
	assert.EqualValues(t, 10, seq)

	// Again at the same point, then at the end.
	_, err = s.Snapshot(context.Background(), st, 6)
	require.NoError(t, err)
	_, err = s.Snapshot(context.Background(), st, 10)
	require.NoError(t, err)
	_, evs, _ = load(t, c)
	assert.Empty(t, evs)
	_, err = s.Snapshot(context.Background(), st, 11)
	assert.Error(t, err, "beyond the log")
	_, err = s.Snapshot(context.Background(), st, 5)
	assert.Error(t, err, "before the last snapshot")
}

// fullEvent has every field of event.Event set.
func fullEvent() event.Event {
	return event.Event{
		Kind: event.DeploymentRolledBack, Source: "argocd", ID: "id-1", Time: t0,
		Service:    event.Service{Namespace: "shop", Name: "api", Environment: "production", Cluster: "eu-1"},
		Repository: "acme/api", ServiceHint: "api-ci", DeploymentID: "d2", PreviousDeploymentID: "d1",
		Revision: "r2", ParentRevision: "r1", CommitTime: t0.Add(-time.Hour), Reason: "Degraded",
		IncidentID: "inc-1", Hotfix: true, Reverts: "r0", RevertsChange: "github/acme/api/pull/0", ChangeID: "github/acme/api/pull/1",
		Team: "payments", TeamFallback: true, Paths: []string{"a.go", "b/c.go"},
		Imported: true, ImportFrom: t0.Add(-30 * 24 * time.Hour),
	}
}

// TestEventCodecKeepsEveryField: a logged event comes back equal, every
// field included; a field added to event.Event fails the test until the
// codec carries it.
func TestEventCodecKeepsEveryField(t *testing.T) {
	ev := fullEvent()
	v := reflect.ValueOf(ev)
	for i := range v.NumField() {
		require.False(t, v.Field(i).IsZero(), "fullEvent leaves %s unset: set it, and carry it in eventJSON", v.Type().Field(i).Name)
	}
	b, err := encodeEvent(ev)
	require.NoError(t, err)
	got, err := decodeEvent(b)
	require.NoError(t, err)
	assert.Equal(t, ev, got)

	for k := event.DeploymentStarted; k.Valid(); k++ {
		ev.Kind = k
		b, err := encodeEvent(ev)
		require.NoError(t, err)
		got, err := decodeEvent(b)
		require.NoError(t, err)
		assert.Equal(t, k, got.Kind)
	}
	_, err = encodeEvent(event.Event{})
	assert.Error(t, err, "an event of no kind is not logged")

	// Every field of the service too (its cluster was added later).
	sv := reflect.ValueOf(fullEvent().Service)
	for i := range sv.NumField() {
		require.False(t, sv.Field(i).IsZero(), "fullEvent leaves Service.%s unset", sv.Type().Field(i).Name)
	}
}

// An event logged before clusters existed has no cluster key: it is a
// single-cluster installation's event, cluster "".
func TestEventLoggedWithoutCluster(t *testing.T) {
	old := `{"version":1,"event":{"kind":"deployment_succeeded","source":"kubernetes","id":"x","time":"2026-01-01T00:00:00Z","namespace":"shop","name":"api","environment":"production"}}`
	got, err := decodeEvent([]byte(old))
	require.NoError(t, err)
	assert.Equal(t, event.Service{Namespace: "shop", Name: "api", Environment: "production"}, got.Service)
	b, err := encodeEvent(got)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "cluster", "no cluster key for a single-cluster installation's event")
}

// TestLoadRefusesNewerVersions: state written by a newer build (the
// layout, the snapshot's codec, the engine state, a logged event, the
// tracker's values) is refused with ErrNewerVersion, not misread.
func TestLoadRefusesNewerVersions(t *testing.T) {
	base := func(t *testing.T) *persisttest.Client {
		c := persisttest.NewExtension().Client("dora")
		s := newStore(t, c)
		_, err := s.Append(context.Background(), []event.Event{commit("a", 0), commit("b", 1)})
		require.NoError(t, err)
		eng, err := engine.New(engine.DefaultConfig(), t0)
		require.NoError(t, err)
		_, err = s.Snapshot(context.Background(), eng.Export(), 1)
		require.NoError(t, err)
		require.NoError(t, s.SaveDeployments(context.Background(), t0, []k8s.DeploymentState{{Namespace: "shop", Name: "api", Rollout: k8s.RolloutState{Phase: k8s.PhasePending}}}, nil))
		return c
	}
	bump := func(c *persisttest.Client, key string, path ...string) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(c.Value(key), &m))
		inner := m
		for _, p := range path {
			inner = inner[p].(map[string]any)
		}
		inner["version"] = 99.0
		b, err := json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, c.Set(context.Background(), key, b))
	}
	for name, tc := range map[string]struct {
		key  string
		path []string
		k8s  bool
	}{
		"layout":          {key: KeyFormat},
		"snapshot codec":  {key: KeySnapshot},
		"engine state":    {key: KeySnapshot, path: []string{"state"}},
		"logged event":    {key: EventKey(2)},
		"tracker meta":    {key: KeyK8sMeta, k8s: true},
		"tracker element": {key: K8sDeploymentKey("shop", "api"), k8s: true},
	} {
		t.Run(name, func(t *testing.T) {
			c := base(t)
			bump(c, tc.key, tc.path...)
			var err error
			if tc.k8s {
				_, err = New(c).LoadDeployments(context.Background())
			} else {
				_, _, _, err = New(c).Load(context.Background())
			}
			require.ErrorIs(t, err, ErrNewerVersion)
			assert.Contains(t, err.Error(), "version 99")
			assert.Contains(t, err.Error(), "newer otelcol-dora")
		})
	}
}

// TestLoadRefusesABrokenLog: a hole in the event log is an error naming
// the missing key, not a silent loss.
func TestLoadRefusesABrokenLog(t *testing.T) {
	c := persisttest.NewExtension().Client("dora")
	s := newStore(t, c)
	_, err := s.Append(context.Background(), []event.Event{commit("a", 0), commit("b", 1), commit("c", 2)})
	require.NoError(t, err)
	require.NoError(t, c.Delete(context.Background(), EventKey(2)))
	_, _, _, err = New(c).Load(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), EventKey(2))
}

// TestK8sStateSavedAndLoaded: the tracker's Deployments are saved one by
// one, deleted, and listed by the meta key, which is rewritten only when
// the list or since changes.
func TestK8sStateSavedAndLoaded(t *testing.T) {
	x := persisttest.NewExtension()
	c := x.Client("dora")
	s := New(c)
	saved, err := s.LoadDeployments(context.Background())
	require.NoError(t, err)
	assert.Equal(t, k8s.SavedState{}, saved)

	api := k8s.DeploymentState{Namespace: "shop", Name: "api", UID: "u1", Generation: 3, TemplateHash: 1<<63 + 5, History: []uint64{1, 2},
		Rollout: k8s.RolloutState{ID: "shop/api/u1@3", Started: t0, Phase: k8s.PhaseSucceeded}}
	web := k8s.DeploymentState{Namespace: "shop", Name: "web", UID: "u2", Generation: 1, TemplateHash: 7,
		Rollout: k8s.RolloutState{ID: "shop/web/u2@1", Started: t0, Phase: k8s.PhaseSucceeded, Preexisting: true}}
	require.NoError(t, s.SaveDeployments(context.Background(), t0, []k8s.DeploymentState{api, web}, nil))
	meta := c.Value(KeyK8sMeta)

	api.Generation, api.Rollout.Phase = 4, k8s.PhasePending
	require.NoError(t, s.SaveDeployments(context.Background(), t0, []k8s.DeploymentState{api}, nil))
	assert.Equal(t, meta, c.Value(KeyK8sMeta), "same Deployments: the meta key is not rewritten")

	saved, err = New(c).LoadDeployments(context.Background())
	require.NoError(t, err)
	assert.True(t, saved.Since.Equal(t0))
	assert.Equal(t, []k8s.DeploymentState{api, web}, saved.Deployments)

	require.NoError(t, s.SaveDeployments(context.Background(), t0, nil, []types.NamespacedName{{Namespace: "shop", Name: "web"}}))
	assert.NotContains(t, c.Keys(), K8sDeploymentKey("shop", "web"))
	saved, err = New(c).LoadDeployments(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []k8s.DeploymentState{api}, saved.Deployments)
}

// fixtureScenario is the scenario the version 1 fixture holds.
const fixtureScenario = "a reviewed change and its revert"

func scenario(t *testing.T, name string) enginetest.Scenario {
	t.Helper()
	for _, sc := range enginetest.Scenarios() {
		if sc.Name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %q", name)
	return enginetest.Scenario{}
}

var fixturePath = filepath.Join("testdata", "v1", "store.json")

// fixtureDeployments is the tracker state the fixture holds.
var fixtureDeployments = []k8s.DeploymentState{
	{Namespace: "shop", Name: "api", UID: "0f5c9a4e-1b2d-4c3e-8f90-a1b2c3d4e5f6", Generation: 4, TemplateHash: 0xfedcba9876543210, History: []uint64{11, 12},
		Rollout: k8s.RolloutState{ID: "shop/api/0f5c9a4e-1b2d-4c3e-8f90-a1b2c3d4e5f6@4", Started: enginetest.At(time.Hour), Phase: k8s.PhaseSucceeded}},
	{Namespace: "shop", Name: "legacy", UID: "9e8d7c6b-5a49-4838-a7b6-c5d4e3f2a1b0", Generation: 1, TemplateHash: 42,
		Rollout: k8s.RolloutState{ID: "shop/legacy/9e8d7c6b-5a49-4838-a7b6-c5d4e3f2a1b0@1", Started: t0, Phase: k8s.PhaseSucceeded, Preexisting: true}},
}

// writeFixture stores the fixture scenario the way the receiver would:
// its first half applied and snapshotted, its second half in the log, and
// the tracker state.
func writeFixture(t *testing.T, c *persisttest.Client) {
	sc := scenario(t, fixtureScenario)
	s := newStore(t, c)
	eng, err := engine.New(engine.DefaultConfig(), t0)
	require.NoError(t, err)
	half := len(sc.Events) / 2
	for _, ev := range sc.Events[:half] {
		_, err := s.Append(context.Background(), []event.Event{ev})
		require.NoError(t, err)
		_, err = eng.Apply(ev)
		require.NoError(t, err)
	}
	_, err = s.Snapshot(context.Background(), eng.Export(), uint64(half))
	require.NoError(t, err)
	_, err = s.Append(context.Background(), sc.Events[half:])
	require.NoError(t, err)
	require.NoError(t, s.SaveDeployments(context.Background(), t0, fixtureDeployments, nil))
}

// TestLoadVersion1Fixture loads testdata/v1/store.json, a version 1 store
// committed with the code that wrote it: a snapshot, logged events after it
// and the tracker state of two Deployments. Every later build must load it
// and get the same metrics: a new version of the layout or of a codec
// reads version 1 too. (Regenerate it with -update-v1-fixture only while
// FormatVersion is 1.)
func TestLoadVersion1Fixture(t *testing.T) {
	if *updateFixture {
		require.Equal(t, 1, FormatVersion, "the version 1 fixture is only written by version 1")
		require.Equal(t, 1, snapshotVersion, "the version 1 fixture is only written by version 1")
		c := persisttest.NewExtension().Client("fixture")
		writeFixture(t, c)
		dump, err := c.Dump()
		require.NoError(t, err)
		b, err := json.MarshalIndent(dump, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(fixturePath), 0o755))
		require.NoError(t, os.WriteFile(fixturePath, append(b, '\n'), 0o644))
	}
	b, err := os.ReadFile(fixturePath)
	require.NoError(t, err)
	var dump map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &dump))
	c := persisttest.NewExtension().Client("fixture")
	c.Load(dump)
	checkFixture(t, c)
}

var snapshotV2FixturePath = filepath.Join("testdata", "snapshot-v2", "store.json")

// TestLoadSnapshotVersion2Fixture loads testdata/snapshot-v2/store.json,
// the same store as the version 1 fixture written with snapshot version 2
// (commits in binary after the JSON; values base64 in the file), committed
// with the code that wrote it: later builds must load it too.
func TestLoadSnapshotVersion2Fixture(t *testing.T) {
	if *updateSnapshotV2Fixture {
		require.Equal(t, 2, snapshotVersion, "the snapshot version 2 fixture is only written by version 2")
		c := persisttest.NewExtension().Client("fixture")
		writeFixture(t, c)
		b, err := json.MarshalIndent(c.DumpBytes(), "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(snapshotV2FixturePath), 0o755))
		require.NoError(t, os.WriteFile(snapshotV2FixturePath, append(b, '\n'), 0o644))
	}
	b, err := os.ReadFile(snapshotV2FixturePath)
	require.NoError(t, err)
	var dump map[string][]byte
	require.NoError(t, json.Unmarshal(b, &dump))
	require.Contains(t, string(dump[KeySnapshot]), `{"version":2,`)
	c := persisttest.NewExtension().Client("fixture")
	c.LoadBytes(dump)
	checkFixture(t, c)
}

// checkFixture checks that a fixture store loads into the fixture scenario.
func checkFixture(t *testing.T, c *persisttest.Client) {
	sc := scenario(t, fixtureScenario)
	snap, evs, seq, err := New(c).Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, snap)
	assert.EqualValues(t, len(sc.Events), seq)
	assert.Equal(t, sc.Events[len(sc.Events)/2:], evs, "the logged events")

	eng, err := engine.New(engine.DefaultConfig(), time.Now())
	require.NoError(t, err)
	require.NoError(t, eng.Import(*snap))
	for _, ev := range evs {
		_, err := eng.Apply(ev)
		require.NoError(t, err)
	}
	assert.Equal(t, t0, eng.StartTime(), "the counters' start time")
	ref, err := engine.New(engine.DefaultConfig(), t0)
	require.NoError(t, err)
	for _, ev := range sc.Events {
		_, err := ref.Apply(ev)
		require.NoError(t, err)
	}
	assert.Equal(t, ref.SnapshotAt(sc.Now), eng.SnapshotAt(sc.Now), "the restored engine equals one that saw every event")
	// And the metrics are the scenario's, computed by hand.
	s := eng.Snapshot()
	assert.Equal(t, sc.Want.Counters[enginetest.Deployments][enginetest.Series{Service: enginetest.API, Label: "success"}],
		counter(s.Deployments, enginetest.API, "success"))
	assert.Equal(t, sc.Want.Counters[enginetest.DeploymentFailures][enginetest.Series{Service: enginetest.API, Label: "revert"}],
		counter(s.Failures, enginetest.API, "revert"))

	saved, err := New(c).LoadDeployments(context.Background())
	require.NoError(t, err)
	assert.True(t, saved.Since.Equal(t0))
	require.Len(t, saved.Deployments, len(fixtureDeployments))
	for i := range fixtureDeployments {
		want, got := fixtureDeployments[i], saved.Deployments[i]
		assert.True(t, want.Rollout.Started.Equal(got.Rollout.Started))
		want.Rollout.Started, got.Rollout.Started = time.Time{}, time.Time{}
		assert.Equal(t, want, got)
	}
}

func counter(ps []engine.CounterPoint, svc event.Service, label string) uint64 {
	i := slices.IndexFunc(ps, func(p engine.CounterPoint) bool { return p.Service == svc && p.Label == label })
	if i < 0 {
		return 0
	}
	return ps[i].Value
}

// TestK8sStatePerCluster: each cluster of kubernetes::clusters keeps its
// tracker's state under keys of its own, so that two clusters' Deployments
// of the same namespace and name never overwrite each other, and the
// single-cluster form keeps its keys.
func TestK8sStatePerCluster(t *testing.T) {
	x := persisttest.NewExtension()
	c := x.Client("dora")
	s := New(c)
	ctx := context.Background()
	eu, us, single := s.ClusterStore("eu-1"), s.ClusterStore("us-1"), s.ClusterStore("")
	for _, st := range []k8s.Store{eu, us, single} {
		saved, err := st.LoadDeployments(ctx)
		require.NoError(t, err)
		assert.Equal(t, k8s.SavedState{}, saved)
	}
	apiEU := k8s.DeploymentState{Namespace: "shop", Name: "api", UID: "u-eu", Generation: 3, TemplateHash: 5,
		Rollout: k8s.RolloutState{ID: "shop/api/u-eu@3", Started: t0, Phase: k8s.PhaseSucceeded}}
	apiUS := k8s.DeploymentState{Namespace: "shop", Name: "api", UID: "u-us", Generation: 1, TemplateHash: 9,
		Rollout: k8s.RolloutState{ID: "shop/api/u-us@1", Started: t0.Add(time.Hour), Phase: k8s.PhasePending}}
	web := k8s.DeploymentState{Namespace: "shop", Name: "web", UID: "u-web", Generation: 1, TemplateHash: 7,
		Rollout: k8s.RolloutState{ID: "shop/web/u-web@1", Started: t0, Phase: k8s.PhaseSucceeded}}
	require.NoError(t, eu.SaveDeployments(ctx, t0, []k8s.DeploymentState{apiEU, web}, nil))
	require.NoError(t, us.SaveDeployments(ctx, t0.Add(time.Minute), []k8s.DeploymentState{apiUS}, nil))

	assert.Contains(t, c.Keys(), K8sClusterDeploymentKey("eu-1", "shop", "api"))
	assert.Contains(t, c.Keys(), K8sClusterDeploymentKey("us-1", "shop", "api"))
	assert.NotContains(t, c.Keys(), KeyK8sMeta, "the single-cluster form's keys are not used")
	assert.Equal(t, K8sDeploymentKey("shop", "api"), K8sClusterDeploymentKey("", "shop", "api"))

	// Deleting web in eu-1 leaves us-1 alone; each loads its own.
	require.NoError(t, eu.SaveDeployments(ctx, t0, nil, []types.NamespacedName{{Namespace: "shop", Name: "web"}}))
	fresh := New(c)
	savedEU, err := fresh.ClusterStore("eu-1").LoadDeployments(ctx)
	require.NoError(t, err)
	savedUS, err := fresh.ClusterStore("us-1").LoadDeployments(ctx)
	require.NoError(t, err)
	assert.Equal(t, []k8s.DeploymentState{apiEU}, savedEU.Deployments)
	assert.True(t, savedEU.Since.Equal(t0))
	assert.Equal(t, []k8s.DeploymentState{apiUS}, savedUS.Deployments)
	assert.True(t, savedUS.Since.Equal(t0.Add(time.Minute)))
	savedSingle, err := fresh.LoadDeployments(ctx)
	require.NoError(t, err)
	assert.Empty(t, savedSingle.Deployments)
}

// TestAppendWithSavesValuesInTheSameBatch: the history import's progress
// is written with the events of its batch, atomically (a failing storage
// keeps neither); imported events are logged as version 2, live ones still
// as version 1; Fresh tells a first start.
func TestAppendWithSavesValuesInTheSameBatch(t *testing.T) {
	x := persisttest.NewExtension()
	c := x.Client("dora")
	s := newStore(t, c)
	assert.True(t, s.Fresh())
	imp := commit("a", 0)
	imp.Imported, imp.ImportFrom = true, t0.Add(-time.Hour)

	x.Fail(errors.New("disk full"))
	_, err := s.AppendWith(context.Background(), []event.Event{imp}, map[string][]byte{HistoryKey("pagerduty"): []byte(`{"cursor":"1"}`)})
	require.Error(t, err)
	x.Fail(nil)
	assert.Nil(t, c.Value(HistoryKey("pagerduty")))

	_, err = s.AppendWith(context.Background(), []event.Event{imp, commit("b", 1)}, map[string][]byte{HistoryKey("pagerduty"): []byte(`{"cursor":"1"}`)})
	require.NoError(t, err)
	got, err := s.Get(context.Background(), HistoryKey("pagerduty"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"cursor":"1"}`, string(got))
	assert.JSONEq(t, `{"version":2,"event":{"kind":"change_committed","source":"github","id":"push-a","time":"2026-11-02T09:00:00Z","revision":"a","imported":true,"import_from":"2026-11-02T08:00:00Z"}}`, string(c.Value(EventKey(1))))
	assert.Contains(t, string(c.Value(EventKey(2))), `"version":1,`)

	again := New(c)
	_, evs, _, err := again.Load(context.Background())
	require.NoError(t, err)
	assert.False(t, again.Fresh())
	assert.Equal(t, []event.Event{imp, commit("b", 1)}, evs)
}
