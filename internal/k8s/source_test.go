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
