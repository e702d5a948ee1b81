package k8s

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// lockedStore is a memStore safe for the source's goroutines.
type lockedStore struct {
	mu sync.Mutex
	m  *memStore
}

func (s *lockedStore) LoadDeployments(ctx context.Context) (SavedState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.LoadDeployments(ctx)
}

func (s *lockedStore) SaveDeployments(ctx context.Context, since time.Time, put []DeploymentState, deleted []types.NamespacedName) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.SaveDeployments(ctx, since, put, deleted)
}

func (s *lockedStore) has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m.deps[types.NamespacedName{Namespace: "shop", Name: name}]
	return ok
}

// TestSourceSavesAfterTheSink: the source saves a Deployment's state once
// its events are taken, after the first list in one go, and forgets the
// saved Deployments that are gone; once an event is not taken (the
// receiver is stopping) it saves nothing more, so that the next start
// derives the event again.
func TestSourceSavesAfterTheSink(t *testing.T) {
	existing := fakeDeployment("existing", "registry.local/existing:1.0", 1)
	client := fake.NewClientset(existing)
	store := &lockedStore{m: newMemStore()}
	// A Deployment saved by an earlier run, deleted since.
	store.m.since = now0
	store.m.deps[types.NamespacedName{Namespace: "shop", Name: "gone"}] = DeploymentState{Namespace: "shop", Name: "gone", Rollout: RolloutState{Phase: PhaseSucceeded}}

	var mu sync.Mutex
	var taken []event.Event
	refuse := false
	sink := func(ev event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return errors.New("stopping")
		}
		taken = append(taken, ev)
		return nil
	}
	cfg := DefaultConfig()
	src := New(&cfg, client, zap.NewNop(), sink, WithStore(store))
	require.NoError(t, src.Start(context.Background()))
	defer func() { require.NoError(t, src.Shutdown(context.Background())) }()

	require.Eventually(t, func() bool { return store.has("existing") && !store.has("gone") }, 10*time.Second, 10*time.Millisecond,
		"after the first list: the existing Deployment saved, the deleted one forgotten")

	created := fakeDeployment("api", "registry.local/api:1.0", 1)
	created.UID = "uid-api"
	_, err := client.AppsV1().Deployments("shop").Create(context.Background(), created, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return store.has("api") }, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	assert.Equal(t, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}, kinds(taken))
	refuse = true
	mu.Unlock()

	web := fakeDeployment("web", "registry.local/web:1.0", 1)
	web.UID = "uid-web"
	_, err = client.AppsV1().Deployments("shop").Create(context.Background(), web, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = client.AppsV1().Deployments("shop").Update(context.Background(), with(web, func(d *appsv1.Deployment) { d.Generation = 2 }), metav1.UpdateOptions{})
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, src.Shutdown(context.Background()))
	assert.False(t, store.has("web"), "not saved: its event was not taken")
}

// TestSourceWorkerAppliesTheLatestState: the informer's handlers only queue
// a Deployment's key; the worker applies its latest state from the cache.
// While the sink holds the worker (storage retried with backoff), the
// changes a Deployment goes through are applied as one: a template that
// was superseded before the worker saw it starts no rollout of its own,
// and the cache is kept current meanwhile.
func TestSourceWorkerAppliesTheLatestState(t *testing.T) {
	client := fake.NewClientset()
	entered := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	var taken []event.Event
	first := true
	sink := func(ev event.Event) error {
		mu.Lock()
		taken = append(taken, ev)
		hold := first
		first = false
		mu.Unlock()
		if hold {
			close(entered)
			<-release
		}
		return nil
	}
	cfg := DefaultConfig()
	src := New(&cfg, client, zap.NewNop(), sink)
	require.NoError(t, src.Start(context.Background()))
	defer func() { require.NoError(t, src.Shutdown(context.Background())) }()
	require.True(t, src.WaitForSync(context.Background()))

	deployments := client.AppsV1().Deployments("shop")
	v1 := with(fakeDeployment("api", "registry.local/api:1.0", 1), func(d *appsv1.Deployment) { d.Status = progressing(1) })
	_, err := deployments.Create(context.Background(), v1, metav1.CreateOptions{})
	require.NoError(t, err)
	<-entered // the worker holds the rollout of 1.0 in the sink

	v2 := with(fakeDeployment("api", "registry.local/api:2.0", 2), func(d *appsv1.Deployment) { d.Status = progressing(2) })
	_, err = deployments.Update(context.Background(), v2, metav1.UpdateOptions{})
	require.NoError(t, err)
	v3 := fakeDeployment("api", "registry.local/api:3.0", 3)
	_, err = deployments.Update(context.Background(), v3, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		obj, ok, _ := src.stores[metav1.NamespaceAll].GetByKey("shop/api")
		return ok && obj.(*Deployment).Generation == 3
	}, 10*time.Second, 5*time.Millisecond, "the cache follows the API server while the worker is held")
	mu.Lock()
	assert.Len(t, taken, 1, "nothing applied while the worker is held")
	mu.Unlock()

	close(release)
	require.NoError(t, src.Shutdown(context.Background())) // applies what is queued, then stops
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []event.Kind{event.DeploymentStarted, event.DeploymentStarted, event.DeploymentSucceeded}, kinds(taken))
	ids := make([]string, len(taken))
	for i, ev := range taken {
		ids[i] = ev.DeploymentID
	}
	assert.Equal(t, []string{"shop/api/uid-name@1", "shop/api/uid-name@3", "shop/api/uid-name@3"}, ids,
		"2.0, superseded before the worker saw it, starts no rollout")
}

// TestSourceSyncsOnceTheFirstListIsApplied: HasSynced (and so the saved
// state's pruning after the first list) waits for the worker to apply the
// first list's Deployments, not only for the informer to deliver them.
func TestSourceSyncsOnceTheFirstListIsApplied(t *testing.T) {
	// Created after the saved state began: a rollout at the first list.
	created := createdAt(fakeDeployment("web", "registry.local/web:1.0", 1), "uid-web", now0.Add(time.Hour))
	client := fake.NewClientset(created)
	store := &lockedStore{m: newMemStore()}
	store.m.since = now0
	release := make(chan struct{})
	sink := func(event.Event) error { <-release; return nil }
	cfg := DefaultConfig()
	src := New(&cfg, client, zap.NewNop(), sink, WithStore(store))
	src.now = func() time.Time { return now0.Add(2 * time.Hour) }
	require.NoError(t, src.Start(context.Background()))
	defer func() { require.NoError(t, src.Shutdown(context.Background())) }()

	require.Eventually(t, func() bool {
		for _, synced := range src.synced {
			if !synced() {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "the informer delivers its first list")
	assert.False(t, src.HasSynced(), "synced before the worker applied the first list")
	assert.False(t, store.has("web"))
	close(release)
	require.True(t, src.WaitForSync(context.Background()))
	require.Eventually(t, func() bool { return store.has("web") }, 10*time.Second, 5*time.Millisecond)
}
