package argocd

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// stopAfter refuses the batch after n applied, like a receiver stopping.
type stopAfter struct {
	recordingSink
	n int
}

var errStopping = context.Canceled

func (s *stopAfter) Apply(ctx context.Context, b history.Batch) error {
	if len(s.batches) == s.n {
		return errStopping
	}
	return s.recordingSink.Apply(ctx, b)
}

// TestHistoryFromTheAPIServer: Applications validated by Argo CD's own CRD
// (its release manifests) on a real kube-apiserver are read page by page
// through a dynamic client, in the namespaces configured only; an import
// stopped after its first batch resumes from the cursor; every imported
// sync is the event of the notification the documented template renders
// over the object as the API server returns it.
func TestHistoryFromTheAPIServer(t *testing.T) {
	c := localcluster.StartForTest(t, localcluster.Options{})
	ctx := t.Context()
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)

	raw, err := os.ReadFile("../../e2e/testdata/argocd/application-crd.yaml")
	require.NoError(t, err)
	var crd map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &crd))
	_, err = dyn.Resource(crdResource).Create(ctx, &unstructured.Unstructured{Object: crd}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := dyn.Resource(crdResource).Get(ctx, "applications.argoproj.io", metav1.GetOptions{})
		if err != nil {
			return false
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, cd := range conds {
			m := cd.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "the Application CRD was never established")

	for _, ns := range []string{"argocd", "argo-cd", "elsewhere"} {
		_, err := c.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	create := func(app map[string]any, ns, name string) {
		t.Helper()
		u := &unstructured.Unstructured{Object: app}
		for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "generation", "ownerReferences", "managedFields"} {
			unstructured.RemoveNestedField(u.Object, "metadata", f)
		}
		u.SetNamespace(ns)
		u.SetName(name)
		_, err := dyn.Resource(ApplicationsResource).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
		require.NoError(t, err, "create %s/%s", ns, name)
	}
	create(apiWithHistory(t), "argocd", "api")
	web := apiWithHistory(t)
	create(web, "argocd", "web")
	create(appFixture(t, "application-history-velero.yaml"), "argo-cd", "velero-test")
	create(apiWithHistory(t), "elsewhere", "not-read")

	cfg := DefaultConfig()
	cfg.History.Namespaces = []string{"argocd", "argo-cd"}
	h := NewHistorySource(dyn, cfg, zap.NewNop(), WithHistoryPageSize(1))

	first := &stopAfter{n: 1}
	require.ErrorIs(t, h.Import(ctx, allTime, "", first), errStopping)
	require.Len(t, first.batches, 1)
	rest := &recordingSink{}
	require.NoError(t, h.Import(ctx, allTime, first.batches[0].Cursor, rest))

	var cursors []string
	var done []int
	byApp := map[string][]event.Event{}
	for _, b := range append(first.batches, rest.batches...) {
		cursors = append(cursors, b.Cursor)
		done = append(done, b.Done)
		for _, ev := range b.Events {
			byApp[ev.Service.Name] = append(byApp[ev.Service.Name], ev)
		}
	}
	// Namespaces in order, each page of one Application.
	assert.Equal(t, []string{"argo-cd/velero-test", "argocd/api", "argocd/web"}, cursors)
	assert.Equal(t, []int{1, 1, 2}, done, "counted from the resumed run's start")
	assert.NotContains(t, byApp, "not-read")
	require.Len(t, byApp["velero-test"], 1)

	// The notifications of api's two successful syncs, rendered over the
	// objects as the API server returns them.
	for _, name := range []string{"api", "web"} {
		got, err := dyn.Resource(ApplicationsResource).Namespace("argocd").Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		synced := got.DeepCopy()
		// The state after the first sync: its operation is history[0]'s.
		op := synced.Object["status"].(map[string]any)["operationState"].(map[string]any)
		h0 := synced.Object["status"].(map[string]any)["history"].([]any)[0].(map[string]any)
		op["startedAt"], op["finishedAt"] = h0["deployStartedAt"], h0["deployedAt"]
		op["syncResult"].(map[string]any)["revision"] = h0["revision"]
		live := []event.Event{liveSyncSucceeded(t, synced.Object), liveSyncSucceeded(t, got.Object)}
		require.Len(t, byApp[name], 2)
		for i := range live {
			assert.Equal(t, live[i].ID, byApp[name][i].ID, "%s sync %d", name, i+1)
			assert.Equal(t, live[i], byApp[name][i], "%s sync %d", name, i+1)
		}
	}
}
