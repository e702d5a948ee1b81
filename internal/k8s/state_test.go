package k8s

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// memStore is a Store in memory.
type memStore struct {
	since time.Time
	deps  map[types.NamespacedName]DeploymentState
	saves int
}

func newMemStore() *memStore { return &memStore{deps: map[types.NamespacedName]DeploymentState{}} }

func (m *memStore) LoadDeployments(context.Context) (SavedState, error) {
	out := SavedState{Since: m.since}
	keys := slices.SortedFunc(maps.Keys(m.deps), func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		out.Deployments = append(out.Deployments, m.deps[k])
	}
	return out, nil
}

func (m *memStore) SaveDeployments(_ context.Context, since time.Time, put []DeploymentState, deleted []types.NamespacedName) error {
	m.since = since
	for _, d := range put {
		m.deps[types.NamespacedName{Namespace: d.Namespace, Name: d.Name}] = d
	}
	for _, k := range deleted {
		delete(m.deps, k)
	}
	m.saves++
	return nil
}

// run is one run of the receiver: a tracker restored from store at start,
// fed steps one minute apart from start, and saved at the end.
func run(t *testing.T, store *memStore, start time.Time, steps []step) []event.Event {
	t.Helper()
	cfg := DefaultConfig()
	tr := newTracker(&cfg.Environment)
	saved, err := store.LoadDeployments(context.Background())
	require.NoError(t, err)
	require.NoError(t, tr.restore(saved, start))
	var all []event.Event
	for i, s := range steps {
		evs := tr.observe(compact(s.d, &cfg), s.initial, start.Add(time.Duration(i)*time.Minute))
		assert.Equal(t, s.want, kinds(evs), "step %d: %s", i, s.name)
		all = append(all, evs...)
	}
	since, put, deleted, _, changed := tr.changes()
	if changed {
		require.NoError(t, store.SaveDeployments(context.Background(), since, put, deleted))
	}
	return all
}

// completedAt is d rolled out, the controller having said so at at.
func completedAt(d *appsv1.Deployment, at time.Time) *appsv1.Deployment {
	return with(d, func(d *appsv1.Deployment) {
		d.Status = complete(d.Generation, *d.Spec.Replicas)
		d.Status.Conditions[0].LastUpdateTime = metav1.NewTime(at)
	})
}

func createdAt(d *appsv1.Deployment, uid types.UID, at time.Time) *appsv1.Deployment {
	return with(d, func(d *appsv1.Deployment) {
		d.UID = uid
		d.CreationTimestamp = metav1.NewTime(at)
	})
}

// TestTrackerAcrossRestarts: with a store, the first list after a restart
// is compared with what the previous run saw. What was counted is not
// counted again; what happened while the receiver was down is counted once,
// at the times the cluster recorded.
func TestTrackerAcrossRestarts(t *testing.T) {
	down := now0.Add(time.Hour)        // the first run ends before
	restart := now0.Add(2 * time.Hour) // the second begins
	during := now0.Add(90 * time.Minute)

	v1 := fakeDeployment("api", "registry.local/api:1.0", 1)
	v2pending := with(fakeDeployment("api", "registry.local/api:2.0", 2), func(d *appsv1.Deployment) { d.Status = progressing(2) })
	v2done := fakeDeployment("api", "registry.local/api:2.0", 2)
	v2doneDuring := completedAt(v2done, during)
	v2failed := with(v2pending, func(d *appsv1.Deployment) { d.Status = deadlineExceeded(2, during) })
	v1backDuring := completedAt(fakeDeployment("api", "registry.local/api:1.0", 3), during)
	scaled := with(fakeDeployment("api", "registry.local/api:1.0", 2), func(d *appsv1.Deployment) {
		n := int32(5)
		d.Spec.Replicas = &n
		d.Status = complete(2, 5)
	})
	web := completedAt(createdAt(fakeDeployment("web", "registry.local/web:1.0", 1), "uid-web", during), during)
	oldWeb := createdAt(fakeDeployment("web", "registry.local/web:1.0", 1), "uid-web", now0.Add(-24*time.Hour))

	tests := []struct {
		name          string
		first, second []step
		check         func(t *testing.T, second []event.Event)
	}{
		{name: "nothing changed while down counts nothing",
			first:  []step{{"initial list", v1, true, nil}},
			second: []step{{"initial list", v1, true, nil}, {"resync", v1, false, nil}}},
		{name: "counted before the restart is not counted again",
			first:  []step{{"initial list", v1, true, nil}, {"v2", v2done, false, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}}},
			second: []step{{"initial list", v2done, true, nil}}},
		{name: "rollout completed while down is counted once",
			first:  []step{{"initial list", v1, true, nil}},
			second: []step{{"initial list", v2doneDuring, true, []event.Kind{event.DeploymentSucceeded}}, {"seen again", v2doneDuring, false, nil}},
			check: func(t *testing.T, evs []event.Event) {
				assert.Equal(t, during, evs[0].Time, "at the Progressing condition's time, not the restart")
				assert.Equal(t, "shop/api/uid-name@2", evs[0].DeploymentID)
			}},
		{name: "rollout started while down is counted when it completes",
			first: []step{{"initial list", v1, true, nil}},
			second: []step{
				{"initial list", v2pending, true, []event.Kind{event.DeploymentStarted}},
				{"complete", v2done, false, []event.Kind{event.DeploymentSucceeded}},
			},
			check: func(t *testing.T, evs []event.Event) { assert.Equal(t, restart, evs[0].Time, "started when seen") }},
		{name: "rollout failed while down",
			first:  []step{{"initial list", v1, true, nil}},
			second: []step{{"initial list", v2failed, true, []event.Kind{event.DeploymentFailed}}},
			check:  func(t *testing.T, evs []event.Event) { assert.Equal(t, during, evs[0].Time) }},
		{name: "rollback completed while down",
			first:  []step{{"initial list", v1, true, nil}, {"v2", v2done, false, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}}},
			second: []step{{"initial list", v1backDuring, true, []event.Kind{event.DeploymentRolledBack, event.DeploymentSucceeded}}},
			check: func(t *testing.T, evs []event.Event) {
				assert.Equal(t, "shop/api/uid-name@2", evs[0].PreviousDeploymentID)
				// The rollback must not come after its completion, or the
				// engine would not end the failure's recovery with it.
				assert.Equal(t, during, evs[0].Time)
				assert.Equal(t, during, evs[1].Time)
			}},
		{name: "rollout pending at the restart and completed while down",
			first:  []step{{"initial list", v1, true, nil}, {"v2", v2pending, false, []event.Kind{event.DeploymentStarted}}},
			second: []step{{"initial list", v2doneDuring, true, []event.Kind{event.DeploymentSucceeded}}},
			check:  func(t *testing.T, evs []event.Event) { assert.Equal(t, during, evs[0].Time) }},
		{name: "scale while down is not a rollout",
			first:  []step{{"initial list", v1, true, nil}},
			second: []step{{"initial list", scaled, true, nil}}},
		{name: "Deployment created while down is a deployment",
			first:  []step{{"initial list", v1, true, nil}},
			second: []step{{"initial list", web, true, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}}},
			check: func(t *testing.T, evs []event.Event) {
				assert.Equal(t, during, evs[0].Time, "started at its creation")
				assert.Equal(t, during, evs[1].Time)
			}},
		{name: "Deployment created before tracking began is not",
			first:  []step{{"initial list", v1, true, nil}},
			second: []step{{"initial list", oldWeb, true, nil}}},
		{name: "Deployment re-created while down is a deployment",
			first:  []step{{"initial list", v1, true, nil}},
			second: []step{{"initial list", completedAt(createdAt(v1, "uid-2", during), during), true, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			run(t, store, now0, tt.first)
			require.True(t, store.since.Equal(now0), "tracking began with the first run")
			require.True(t, down.Before(restart))
			evs := run(t, store, restart, tt.second)
			if tt.check != nil {
				tt.check(t, evs)
			}
		})
	}
}

// TestTrackerWithoutStore: without a restored state, a Deployment of the
// first list is never counted, even one created recently (today's
// behaviour, unchanged).
func TestTrackerWithoutStore(t *testing.T) {
	web := completedAt(createdAt(fakeDeployment("web", "registry.local/web:1.0", 1), "uid-web", now0), now0)
	runSteps(t, []step{{"initial list", web, true, nil}})
}

// TestTrackerFirstStartWithStore: the first start on an empty store takes
// the first list as without a store, even a Deployment created in the same
// second.
func TestTrackerFirstStartWithStore(t *testing.T) {
	web := completedAt(createdAt(fakeDeployment("web", "registry.local/web:1.0", 1), "uid-web", now0.Truncate(time.Second)), now0)
	store := newMemStore()
	run(t, store, now0.Add(500*time.Millisecond), []step{{"initial list", web, true, nil}})
	assert.Len(t, store.deps, 1, "saved for the next start")
}

// TestTrackerSavesOnlyChanges: an observation that changes nothing is not
// saved again; deletions and prunes are.
func TestTrackerSavesOnlyChanges(t *testing.T) {
	cfg := DefaultConfig()
	tr := newTracker(&cfg.Environment)
	require.NoError(t, tr.restore(SavedState{}, now0))
	v1 := fakeDeployment("api", "registry.local/api:1.0", 1)
	web := fakeDeployment("web", "registry.local/web:1.0", 1)
	tr.observe(compact(v1, &cfg), true, now0)
	tr.observe(compact(web, &cfg), true, now0)
	since, put, deleted, _, changed := tr.changes()
	assert.True(t, changed)
	assert.True(t, since.Equal(now0))
	assert.Len(t, put, 2)
	assert.Empty(t, deleted)

	tr.observe(compact(v1, &cfg), false, now0.Add(time.Minute))
	_, put, deleted, _, changed = tr.changes()
	assert.False(t, changed, "a resync changes nothing")
	assert.Empty(t, put)
	assert.Empty(t, deleted)

	tr.forget("shop", "api")
	assert.Equal(t, 1, tr.prune(func(k types.NamespacedName) bool { return k.Name != "web" }))
	_, put, deleted, keys, changed := tr.changes()
	assert.True(t, changed)
	assert.Empty(t, put)
	assert.ElementsMatch(t, []types.NamespacedName{{Namespace: "shop", Name: "api"}, {Namespace: "shop", Name: "web"}}, deleted)

	// A failed save is retried with the next one.
	tr.redirty(keys)
	_, _, deleted, _, _ = tr.changes()
	assert.Len(t, deleted, 2)
}

func TestTrackerRestoreRefusesUnknownPhase(t *testing.T) {
	cfg := DefaultConfig()
	tr := newTracker(&cfg.Environment)
	err := tr.restore(SavedState{Since: now0, Deployments: []DeploymentState{{Namespace: "shop", Name: "api", Rollout: RolloutState{Phase: "paused"}}}}, now0)
	assert.ErrorContains(t, err, "paused")
}

// TestRolloutIDsAcrossRestore: the tracker keeps a rollout's generation,
// not its ID; IDs saved by an earlier run come back as they were, derived
// ones and foreign ones alike, and name the events of that rollout.
func TestRolloutIDsAcrossRestore(t *testing.T) {
	cfg := DefaultConfig()
	api := fakeDeployment("api", "registry.local/api:2.0", 2)
	pending := with(api, func(d *appsv1.Deployment) { d.Status = progressing(2) })
	derived := "shop/api/" + string(api.UID) + "@2"
	for name, savedID := range map[string]string{"derived": derived, "foreign": "rollout-from-an-older-format"} {
		tr := newTracker(&cfg.Environment)
		require.NoError(t, tr.restore(SavedState{Since: now0, Deployments: []DeploymentState{{
			Namespace: "shop", Name: "api", UID: api.UID, Generation: 2, TemplateHash: compact(api, &cfg).TemplateHash,
			Rollout: RolloutState{ID: savedID, Started: now0, Phase: PhasePending},
		}}}, now0.Add(time.Hour)))

		// Saved again unchanged.
		_, put, _, _, _ := tr.markAllAndChanges()
		require.Len(t, put, 1, name)
		assert.Equal(t, savedID, put[0].Rollout.ID, name)

		// The rollout still pending at the restart completes: its success
		// carries the saved ID.
		require.Empty(t, tr.observe(compact(pending, &cfg), true, now0.Add(time.Hour)), name)
		evs := tr.observe(compact(api, &cfg), false, now0.Add(time.Hour+time.Minute))
		require.Equal(t, []event.Kind{event.DeploymentSucceeded}, kinds(evs), name)
		assert.Equal(t, savedID, evs[0].DeploymentID, name)
		assert.Equal(t, savedID+"/"+event.DeploymentSucceeded.String(), evs[0].ID, name)
	}

	// A new rollout gets the derived form.
	tr := newTracker(&cfg.Environment)
	tr.observe(compact(api, &cfg), true, now0)
	v3 := fakeDeployment("api", "registry.local/api:3.0", 3)
	evs := tr.observe(compact(v3, &cfg), false, now0.Add(time.Minute))
	require.Equal(t, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}, kinds(evs))
	assert.Equal(t, "shop/api/"+string(api.UID)+"@3", evs[0].DeploymentID)
}

// markAllAndChanges marks every tracked Deployment changed and returns
// what a save would write.
func (t *tracker) markAllAndChanges() (time.Time, []DeploymentState, []types.NamespacedName, []types.NamespacedName, bool) {
	t.mu.Lock()
	for k := range t.deployments {
		t.markDirty(k)
	}
	t.mu.Unlock()
	return t.changes()
}
