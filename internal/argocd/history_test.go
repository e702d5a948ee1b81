package argocd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// recordingSink keeps the batches applied.
type recordingSink struct{ batches []history.Batch }

func (s *recordingSink) Apply(_ context.Context, b history.Batch) error {
	s.batches = append(s.batches, b)
	return nil
}

func (s *recordingSink) events() []event.Event {
	var out []event.Event
	for _, b := range s.batches {
		out = append(out, b.Events...)
	}
	return out
}

var allTime = history.Window{From: time.Unix(0, 0), To: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}

func appFixture(t *testing.T, name string) map[string]any {
	t.Helper()
	var app map[string]any
	require.NoError(t, yaml.Unmarshal(fixture(t, name), &app))
	return app
}

// apiWithHistory is the Application api after its third sync (the
// fixtures' sequence: 9f86d08 synced, 1c5e7d2 failed, 7d1a0e4 synced), with
// the history entry Argo CD's persistRevisionHistory (controller/state.go)
// appends for a successful sync: the sync result's revision and the
// compared source, deployStartedAt the operation's startedAt, deployedAt
// when it is written (the operation's end here), the next id. A failed
// sync adds no entry.
func apiWithHistory(t *testing.T) map[string]any {
	t.Helper()
	app := appFixture(t, "application-degraded.json")
	status := app["status"].(map[string]any)
	op := status["operationState"].(map[string]any)
	hist := status["history"].([]any)
	last := hist[len(hist)-1].(map[string]any)
	status["history"] = append(hist, map[string]any{
		"id":              last["id"].(float64) + 1,
		"revision":        op["syncResult"].(map[string]any)["revision"],
		"source":          status["sync"].(map[string]any)["comparedTo"].(map[string]any)["source"],
		"deployStartedAt": op["startedAt"],
		"deployedAt":      op["finishedAt"],
		"initiatedBy":     op["operation"].(map[string]any)["initiatedBy"],
	})
	return app
}

func fakeApplications(t *testing.T, apps ...map[string]any) *dynamicfake.FakeDynamicClient {
	t.Helper()
	var objs []runtime.Object
	for _, a := range apps {
		objs = append(objs, &unstructured.Unstructured{Object: a})
	}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{ApplicationsResource: "ApplicationList"}, objs...)
}

// liveSyncSucceeded is the event of the notification the documented
// app-sync-succeeded-dora template renders over app.
func liveSyncSucceeded(t *testing.T, app map[string]any) event.Event {
	t.Helper()
	res, err := provider().Parse(authorized(renderApp(t, "app-sync-succeeded-dora", app)))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	return res.Events[0]
}

// TestHistoryMatchesTheNotifications: each successful sync in the history
// is the event the live notification of that sync gives (the same id, so
// the engine applies it once, whichever comes first), with the sync's end
// as its time.
func TestHistoryMatchesTheNotifications(t *testing.T) {
	app := apiWithHistory(t)
	cfg := DefaultConfig()
	sink := &recordingSink{}
	require.NoError(t, NewHistorySource(fakeApplications(t, app), cfg, zap.NewNop()).Import(t.Context(), allTime, "", sink))
	imported := sink.events()
	require.Len(t, imported, 2)

	live := []event.Event{
		liveSyncSucceeded(t, appFixture(t, "application-synced.json")),
		liveSyncSucceeded(t, appFixture(t, "application-degraded.json")),
	}
	for i := range live {
		assert.Equal(t, live[i], imported[i], "sync %d", i+1)
	}
	require.Len(t, sink.batches, 1)
	assert.Equal(t, "argocd/api", sink.batches[0].Cursor)
	assert.Equal(t, 1, sink.batches[0].Done)

	// Import then live, and live then import: counted once.
	for _, order := range [][]event.Event{append(append([]event.Event{}, imported...), live...), append(append([]event.Event{}, live...), imported...)} {
		e, err := engine.New(engine.DefaultConfig(), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
		require.NoError(t, err)
		for i, ev := range order {
			o, err := e.Apply(ev)
			require.NoError(t, err)
			assert.Equal(t, i >= 2, o.Duplicate, "event %d", i)
		}
		var n uint64
		for _, p := range e.Snapshot().Deployments {
			n += p.Value
		}
		assert.Equal(t, uint64(2), n)
	}
}

// TestHistoryResyncsAreOneDeployment: Argo CD's own Application of
// controller/testdata (testdata/README.md) synced one revision ten times
// (self-heal and parameter changes); the documented trigger notifies once
// per revision, and the import counts one deployment, the first sync's.
func TestHistoryResyncsAreOneDeployment(t *testing.T) {
	app := appFixture(t, "application-history-velero.yaml")
	cfg := DefaultConfig()
	cfg.History.Namespaces = []string{"argo-cd"}
	sink := &recordingSink{}
	require.NoError(t, NewHistorySource(fakeApplications(t, app), cfg, zap.NewNop()).Import(t.Context(), allTime, "", sink))
	evs := sink.events()
	require.Len(t, evs, 1)
	assert.Equal(t, "argocd/velero-test/ea8759964626a583667a2bfd08f334ec2070040a/2024-03-04T22:00:05Z", evs[0].DeploymentID)
	assert.Equal(t, time.Date(2024, 3, 4, 22, 0, 6, 0, time.UTC), evs[0].Time)
	assert.Equal(t, event.Service{Namespace: "test-lla", Name: "velero-test", Environment: "production"}, evs[0].Service)
	assert.Equal(t, "foo/manifests-velero", evs[0].Repository)

	// A window after the first sync has nothing.
	sink = &recordingSink{}
	require.NoError(t, NewHistorySource(fakeApplications(t, app), cfg, zap.NewNop()).Import(t.Context(),
		history.Window{From: time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC), To: time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)}, "", sink))
	assert.Empty(t, sink.events())
}

// TestHistoryMultiSource: a multi-source Application's history entries
// carry revisions; its notifications render no revision, and the import
// names the syncs the same way.
func TestHistoryMultiSource(t *testing.T) {
	app := apiWithHistory(t)
	status := app["status"].(map[string]any)
	for _, h := range status["history"].([]any) {
		m := h.(map[string]any)
		m["revisions"] = []any{m["revision"], "4.11.3"}
		m["sources"] = []any{m["source"]}
		delete(m, "revision")
		delete(m, "source")
	}
	sink := &recordingSink{}
	require.NoError(t, NewHistorySource(fakeApplications(t, app), DefaultConfig(), zap.NewNop()).Import(t.Context(), allTime, "", sink))
	var ids []string
	for _, ev := range sink.events() {
		ids = append(ids, ev.DeploymentID)
		assert.Empty(t, ev.Revision)
	}
	assert.Equal(t, []string{"argocd/api/2026-11-02T10:12:41Z", "argocd/api/2026-11-02T16:30:11Z"}, ids)
}

// TestHistoryForbiddenNamesTheSetting: without RBAC on applications the
// import stops with the setting to fix.
func TestHistoryForbiddenNamesTheSetting(t *testing.T) {
	client := fakeApplications(t)
	client.PrependReactor("list", "applications", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(ApplicationsResource.GroupResource(), "", errors.New("RBAC: access denied"))
	})
	err := NewHistorySource(client, DefaultConfig(), zap.NewNop()).Import(t.Context(), allTime, "", &recordingSink{})
	var se *history.SettingError
	require.ErrorAs(t, err, &se)
	assert.Contains(t, se.Setting, "webhooks::argocd::history::namespaces")
}

func TestHistoryConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Token = token
	assert.Equal(t, []string{"argocd"}, cfg.History.Namespaces)
	assert.False(t, cfg.History.Enabled)
	cfg.History.Namespaces = []string{"Argo CD"}
	assert.ErrorContains(t, cfg.Validate(), "history::namespaces[0]")
}

// TestHistoryRetriesServerErrors: a 503 is tried again.
func TestHistoryRetriesServerErrors(t *testing.T) {
	client := fakeApplications(t, apiWithHistory(t))
	fails := 2
	client.PrependReactor("list", "applications", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fails > 0 {
			fails--
			return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
		}
		return false, nil, nil
	})
	h := NewHistorySource(client, DefaultConfig(), zap.NewNop())
	h.backoff = time.Millisecond
	sink := &recordingSink{}
	require.NoError(t, h.Import(t.Context(), allTime, "", sink))
	assert.Len(t, sink.events(), 2)
	assert.Zero(t, fails)
}
