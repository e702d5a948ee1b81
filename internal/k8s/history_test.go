package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// historyDeployment is a Deployment whose current template runs image,
// with a selector (the importer lists its ReplicaSets by it).
func historyDeployment(name, image string, gen int64, uid types.UID) *appsv1.Deployment {
	d := fakeDeployment(name, image, gen)
	d.UID = uid
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	return d
}

// controllerReplicaSet is the ReplicaSet the Deployment controller makes
// for d's template when it rolls out revision (pkg/controller/deployment,
// getNewReplicaSet): the template with the pod-template-hash label, the
// Deployment's annotations plus the revision ones, and a controller
// ownerReference. The hash is any stable name here: nothing reads it but
// the label's presence.
func controllerReplicaSet(d *appsv1.Deployment, revision int64, created time.Time, history ...int64) *appsv1.ReplicaSet {
	tmpl := *d.Spec.Template.DeepCopy()
	// The controller's hash covers the whole template, restartedAt too.
	full := fnv.New64a()
	_ = json.NewEncoder(full).Encode(&d.Spec.Template)
	hash := strconv.FormatUint(full.Sum64()%1e9, 36)
	tmpl.Labels = map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: hash}
	for k, v := range d.Spec.Template.Labels {
		tmpl.Labels[k] = v
	}
	ann := map[string]string{
		RevisionAnnotation:                          strconv.FormatInt(revision, 10),
		"deployment.kubernetes.io/desired-replicas": "2",
		"deployment.kubernetes.io/max-replicas":     "3",
	}
	for k, v := range d.Annotations {
		// The controller does not copy its own (skipCopyAnnotation).
		if k != RevisionAnnotation && k != RevisionHistoryAnnotation {
			ann[k] = v
		}
	}
	if len(history) > 0 {
		var s []string
		for _, h := range history {
			s = append(s, strconv.FormatInt(h, 10))
		}
		ann[RevisionHistoryAnnotation] = joinComma(s)
	}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: d.Namespace, Name: d.Name + "-" + hash, UID: types.UID("rs-" + hash),
			Labels: tmpl.Labels, Annotations: ann, CreationTimestamp: metav1.NewTime(created),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
			Template: tmpl,
		},
	}
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

// recordingSink keeps the batches applied; failAfter > 0 refuses the batch
// after that many.
type recordingSink struct {
	batches   []history.Batch
	failAfter int
}

var errSinkStopped = errors.New("receiver stopping")

func (s *recordingSink) Apply(_ context.Context, b history.Batch) error {
	if s.failAfter > 0 && len(s.batches) == s.failAfter {
		return errSinkStopped
	}
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

var allTime = history.Window{From: time.Unix(0, 0), To: now0.Add(24 * time.Hour)}

// apiHistory is a Deployment rolled out three times then rolled back to its
// second template (`kubectl rollout undo`): the ReplicaSet of revision 2
// moved to revision 4 and keeps 2 in its revision-history.
func apiHistory() (*appsv1.Deployment, []runtime.Object, [4]time.Time) {
	uid := types.UID("uid-api")
	t := [4]time.Time{now0.Add(-72 * time.Hour), now0.Add(-48 * time.Hour), now0.Add(-24 * time.Hour), now0.Add(-23 * time.Hour)}
	v1 := historyDeployment("api", "registry.local/api:1a2b3c4d", 1, uid)
	v2 := historyDeployment("api", "registry.local/api:2b3c4d5e", 2, uid)
	v3 := historyDeployment("api", "registry.local/api:3c4d5e6f", 3, uid)
	rs1 := controllerReplicaSet(v1, 1, t[0])
	rs2 := controllerReplicaSet(v2, 4, t[1], 2)
	rs3 := controllerReplicaSet(v3, 3, t[2])
	// Now: the rollback, generation 4, complete at t[3].
	cur := historyDeployment("api", "registry.local/api:2b3c4d5e", 4, uid)
	cur.Annotations = map[string]string{RevisionAnnotation: "4"}
	cur.Status = complete(4, 2)
	cur.Status.Conditions[0].LastUpdateTime = metav1.NewTime(t[3])
	return cur, []runtime.Object{cur, rs1, rs2, rs3}, t
}

// TestHistoryRolloutsAndRollback: each revision is a rollout with the
// events the live tracker emits; the revision whose template equals an
// older one is a rollback naming the rollout it replaced, which is not
// assumed to have succeeded; the current rollout is named as the live
// source's first list names it and its outcome read from the status.
func TestHistoryRolloutsAndRollback(t *testing.T) {
	_, objs, at := apiHistory()
	cfg := DefaultConfig()
	h := NewHistorySource(fake.NewClientset(objs...), &cfg, zap.NewNop())
	h.now = func() time.Time { return now0 }
	sink := &recordingSink{}
	require.NoError(t, h.Import(t.Context(), allTime, "", sink))

	id := func(rev int) string { return "shop/api/uid-api@revision-" + strconv.Itoa(rev) }
	// Named by the revision the Deployment carries, as the live
	// source's first list names it.
	liveID := id(4)
	type want struct {
		kind     event.Kind
		id, prev string
		at       time.Time
		revision string
	}
	var got []want
	for _, ev := range sink.events() {
		got = append(got, want{ev.Kind, ev.DeploymentID, ev.PreviousDeploymentID, ev.Time, ev.Revision})
		assert.Equal(t, ev.DeploymentID+"/"+ev.Kind.String(), ev.ID)
		assert.Equal(t, event.Service{Namespace: "shop", Name: "api", Environment: "production"}, ev.Service)
	}
	assert.Equal(t, []want{
		{event.DeploymentStarted, id(1), "", at[0], "1a2b3c4d"},
		{event.DeploymentSucceeded, id(1), "", at[0], "1a2b3c4d"},
		{event.DeploymentStarted, id(2), "", at[1], "2b3c4d5e"},
		{event.DeploymentSucceeded, id(2), "", at[1], "2b3c4d5e"},
		// Rolled back from: no success assumed.
		{event.DeploymentStarted, id(3), "", at[2], "3c4d5e6f"},
		// The reused ReplicaSet's rollback: at the condition's time.
		{event.DeploymentRolledBack, liveID, id(3), at[3], "2b3c4d5e"},
		{event.DeploymentSucceeded, liveID, "", at[3], "2b3c4d5e"},
	}, got)
	require.Len(t, sink.batches, 1)
	assert.Equal(t, "shop/api", sink.batches[0].Cursor)
	assert.Equal(t, 1, sink.batches[0].Done)
}

// TestHistoryRestartIsNoRollout: `kubectl rollout restart` makes a
// ReplicaSet (a revision) that differs only by the restartedAt annotation;
// live does not count it, and neither does the import.
func TestHistoryRestartIsNoRollout(t *testing.T) {
	uid := types.UID("uid-web")
	v1 := historyDeployment("web", "registry.local/web:1a2b3c4d", 1, uid)
	restarted := historyDeployment("web", "registry.local/web:1a2b3c4d", 2, uid)
	restarted.Spec.Template.Annotations = map[string]string{restartedAtAnnotation: "2026-11-01T10:00:00Z"}
	restarted.Annotations = map[string]string{RevisionAnnotation: "2"}
	restarted.Status.Conditions[0].LastUpdateTime = metav1.NewTime(now0.Add(-time.Hour))
	cfg := DefaultConfig()
	h := NewHistorySource(fake.NewClientset(restarted,
		controllerReplicaSet(v1, 1, now0.Add(-48*time.Hour)),
		controllerReplicaSet(restarted, 2, now0.Add(-time.Hour))), &cfg, zap.NewNop())
	h.now = func() time.Time { return now0 }
	sink := &recordingSink{}
	require.NoError(t, h.Import(t.Context(), allTime, "", sink))
	evs := sink.events()
	assert.Equal(t, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}, kinds(evs))
	for _, ev := range evs {
		// One rollout, revision 1's, which is still the current template:
		// the live source's id.
		assert.Equal(t, revisionRolloutID("shop", "web", uid, 2), ev.DeploymentID)
		assert.Equal(t, now0.Add(-48*time.Hour), ev.Time)
	}
}

// TestHistoryWindow: only the events inside the window are handed on.
func TestHistoryWindow(t *testing.T) {
	_, objs, at := apiHistory()
	cfg := DefaultConfig()
	h := NewHistorySource(fake.NewClientset(objs...), &cfg, zap.NewNop())
	h.now = func() time.Time { return now0 }
	sink := &recordingSink{}
	require.NoError(t, h.Import(t.Context(), history.Window{From: at[1].Add(time.Second), To: now0}, "", sink))
	assert.Equal(t, []event.Kind{event.DeploymentStarted, event.DeploymentRolledBack, event.DeploymentSucceeded}, kinds(sink.events()))
}

// TestHistoryPendingAndFailedCurrent: the current rollout's outcome is the
// status's, as live: none while it progresses, a failure past its
// deadline.
func TestHistoryPendingAndFailedCurrent(t *testing.T) {
	uid := types.UID("uid-api")
	v1 := historyDeployment("api", "registry.local/api:1a2b3c4d", 1, uid)
	v2 := historyDeployment("api", "registry.local/api:2b3c4d5e", 2, uid)
	for _, tc := range []struct {
		name   string
		status appsv1.DeploymentStatus
		want   []event.Kind
	}{
		{"progressing", progressing(2), []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded, event.DeploymentStarted}},
		{"deadline", deadlineExceeded(2, now0.Add(-time.Minute)), []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded, event.DeploymentStarted, event.DeploymentFailed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := v2.DeepCopy()
			cur.Status = tc.status
			cfg := DefaultConfig()
			h := NewHistorySource(fake.NewClientset(cur,
				controllerReplicaSet(v1, 1, now0.Add(-48*time.Hour)),
				controllerReplicaSet(v2, 2, now0.Add(-20*time.Minute))), &cfg, zap.NewNop())
			h.now = func() time.Time { return now0 }
			sink := &recordingSink{}
			require.NoError(t, h.Import(t.Context(), allTime, "", sink))
			evs := sink.events()
			assert.Equal(t, tc.want, kinds(evs))
			assert.Equal(t, revisionRolloutID("shop", "api", uid, 2), evs[len(evs)-1].DeploymentID)
		})
	}
}

// TestHistoryOnlyOwnedReplicaSets: a ReplicaSet matching the selector but
// controlled by another object (or by nothing) is not the Deployment's.
func TestHistoryOnlyOwnedReplicaSets(t *testing.T) {
	uid := types.UID("uid-api")
	cur := historyDeployment("api", "registry.local/api:1a2b3c4d", 1, uid)
	cur.Status.Conditions[0].LastUpdateTime = metav1.NewTime(now0.Add(-time.Hour))
	stray := controllerReplicaSet(historyDeployment("api", "registry.local/api:9e9e9e9e", 1, "uid-other"), 7, now0.Add(-2*time.Hour))
	orphan := controllerReplicaSet(historyDeployment("api", "registry.local/api:8e8e8e8e", 1, uid), 8, now0.Add(-90*time.Minute))
	orphan.OwnerReferences = nil
	cfg := DefaultConfig()
	h := NewHistorySource(fake.NewClientset(cur, controllerReplicaSet(cur, 1, now0.Add(-3*time.Hour)), stray, orphan), &cfg, zap.NewNop())
	h.now = func() time.Time { return now0 }
	sink := &recordingSink{}
	require.NoError(t, h.Import(t.Context(), allTime, "", sink))
	for _, ev := range sink.events() {
		assert.Equal(t, "1a2b3c4d", ev.Revision)
	}
	assert.Len(t, sink.events(), 2)
}

// TestHistoryCursorResumes: with one Deployment per page, each batch's
// cursor is its Deployment; an import stopped after the first batch
// resumes after it and hands on each Deployment once.
func TestHistoryCursorResumes(t *testing.T) {
	var objs []runtime.Object
	for _, name := range []string{"a", "b", "c"} {
		d := historyDeployment(name, "registry.local/"+name+":1a2b3c4d", 1, types.UID("uid-"+name))
		d.Status.Conditions[0].LastUpdateTime = metav1.NewTime(now0.Add(-time.Hour))
		objs = append(objs, d, controllerReplicaSet(d, 1, now0.Add(-2*time.Hour)))
	}
	cfg := DefaultConfig()
	client := fake.NewClientset(objs...)
	// The fake clientset ignores Limit: page by hand, one per list.
	pageDeployments(client)
	h := NewHistorySource(client, &cfg, zap.NewNop(), WithHistoryPageSize(1))
	h.now = func() time.Time { return now0 }

	first := &recordingSink{failAfter: 1}
	err := h.Import(t.Context(), allTime, "", first)
	require.ErrorIs(t, err, errSinkStopped)
	require.Len(t, first.batches, 1)
	assert.Equal(t, "shop/a", first.batches[0].Cursor)

	rest := &recordingSink{}
	require.NoError(t, h.Import(t.Context(), allTime, first.batches[0].Cursor, rest))
	var cursors []string
	var done []int
	services := map[string]int{}
	for _, b := range append(first.batches, rest.batches...) {
		cursors = append(cursors, b.Cursor)
		done = append(done, b.Done)
		for _, ev := range b.Events {
			services[ev.Service.Name]++
		}
	}
	assert.Equal(t, []string{"shop/a", "shop/b", "shop/c"}, cursors)
	assert.Equal(t, []int{1, 2, 3}, done)
	assert.Equal(t, map[string]int{"a": 2, "b": 2, "c": 2}, services)
}

// pageDeployments makes client's Deployment lists honour Limit and
// Continue (the continue token is the index of the next item).
func pageDeployments(client *fake.Clientset) {
	client.PrependReactor("list", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		la := a.(k8stesting.ListActionImpl)
		opts := la.ListOptions
		if opts.Limit == 0 {
			return false, nil, nil
		}
		objs, err := client.Tracker().List(appsv1.SchemeGroupVersion.WithResource("deployments"), appsv1.SchemeGroupVersion.WithKind("Deployment"), la.Namespace)
		if err != nil {
			return true, nil, err
		}
		all := objs.(*appsv1.DeploymentList)
		start, _ := strconv.Atoi(opts.Continue)
		end := min(start+int(opts.Limit), len(all.Items))
		page := &appsv1.DeploymentList{Items: all.Items[start:end]}
		if end < len(all.Items) {
			page.Continue = strconv.Itoa(end)
		}
		return true, page, nil
	})
}

// TestHistoryForbiddenNamesTheSetting: a 403 listing ReplicaSets (RBAC
// without replicasets) stops this import with a SettingError.
func TestHistoryForbiddenNamesTheSetting(t *testing.T) {
	_, objs, _ := apiHistory()
	client := fake.NewClientset(objs...)
	client.PrependReactor("list", "replicasets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "replicasets"}, "", errors.New("RBAC: access denied"))
	})
	cfg := DefaultConfig()
	err := NewHistorySource(client, &cfg, zap.NewNop()).Import(t.Context(), allTime, "", &recordingSink{})
	var se *history.SettingError
	require.ErrorAs(t, err, &se)
	assert.Contains(t, se.Setting, "replicasets")
}

// TestHistoryRetriesServerErrors: a 503 is tried again.
func TestHistoryRetriesServerErrors(t *testing.T) {
	_, objs, _ := apiHistory()
	client := fake.NewClientset(objs...)
	fails := 2
	client.PrependReactor("list", "replicasets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fails > 0 {
			fails--
			return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
		}
		return false, nil, nil
	})
	cfg := DefaultConfig()
	h := NewHistorySource(client, &cfg, zap.NewNop())
	h.backoff = time.Millisecond
	sink := &recordingSink{}
	require.NoError(t, h.Import(t.Context(), allTime, "", sink))
	assert.Len(t, sink.events(), 7)
}

// TestHistoryBoundsRevisionHistory: a revision-history longer than the
// controller ever writes is not read.
func TestHistoryBoundsRevisionHistory(t *testing.T) {
	long := ""
	for i := 1; len(long) <= maxRevisionHistoryChars; i++ {
		long += strconv.Itoa(i) + ","
	}
	assert.Nil(t, parseRevisionHistory(long))
	assert.Equal(t, []int64{2, 5}, parseRevisionHistory("2, 5,x,-1"))
	_, ok := parseRevision("99999999999999999999999")
	assert.False(t, ok)
}

var _ = corev1.ConditionTrue

// TestFirstListNamesByRevision: a rollout the first list finds is named by
// the Deployment's revision, as the import names it, once the controller
// has acted on the latest spec (a scale the first list sees pending does
// not leave it named by a generation), so that the outcome the live
// source sees is the imported rollout's.
func TestFirstListNamesByRevision(t *testing.T) {
	cfg := DefaultConfig()
	tr := newTracker(&cfg.Environment)
	d := historyDeployment("web", "registry.local/web:5e6f7a8b", 3, "uid-web")
	d.Annotations = map[string]string{RevisionAnnotation: "2"}
	d.Status = progressing(2) // scaled: generation 3 not observed yet
	assert.Empty(t, tr.observe(compact(d, &cfg), true, now0))

	d.Status = complete(3, 2)
	evs := tr.observe(compact(d, &cfg), false, now0.Add(time.Minute))
	require.Equal(t, []event.Kind{event.DeploymentSucceeded}, kinds(evs))
	assert.Equal(t, "shop/web/uid-web@revision-2", evs[0].DeploymentID)

	// Found finished: named at once.
	done := historyDeployment("api", "registry.local/api:5e6f7a8b", 7, "uid-api")
	done.Annotations = map[string]string{RevisionAnnotation: "4"}
	done.Status = complete(7, 2)
	tr.observe(compact(done, &cfg), true, now0)
	st := tr.deployments[types.NamespacedName{Namespace: "shop", Name: "api"}].state(types.NamespacedName{Namespace: "shop", Name: "api"})
	assert.Equal(t, "shop/api/uid-api@revision-4", st.Rollout.ID)
}

// TestHistoryLeavesTrackedRolloutsToTheLiveSource: with the live source's
// state restored from storage, the rollouts that began after it started
// tracking are its own (it counted them, under the ids it gave them), and
// so is its current rollout unless it found that one finished: the import
// skips them, and names the current rollout as the tracker does.
func TestHistoryLeavesTrackedRolloutsToTheLiveSource(t *testing.T) {
	rev := func(n int) string { return "shop/api/uid-api@revision-" + strconv.Itoa(n) }
	for _, tc := range []struct {
		name        string
		trackedID   string
		preexisting bool
		wantCurrent bool
	}{
		// Tracking since between revisions 2 and 3: the tracker saw the
		// rollback start (its generation's id).
		{"seen start", "shop/api/uid-api@4", false, false},
		// Tracking since after the rollback, which the first list found
		// finished: counted by none but the import.
		{"found finished", rev(4), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, objs, at := apiHistory()
			cfg := DefaultConfig()
			client := fake.NewClientset(objs...)
			cur := objs[0].(*appsv1.Deployment)
			live := New(&cfg, client, zap.NewNop(), func(event.Event) error { return nil })
			since := at[1].Add(time.Hour)
			if tc.preexisting {
				since = at[3].Add(time.Hour)
			}
			require.NoError(t, live.tracker.restore(SavedState{
				Since: since,
				Deployments: []DeploymentState{{
					Namespace: "shop", Name: "api", UID: cur.UID, Generation: 4,
					TemplateHash: compact(cur, &cfg).TemplateHash,
					Rollout:      RolloutState{ID: tc.trackedID, Started: at[3], Phase: PhaseSucceeded, Preexisting: tc.preexisting},
				}},
			}, now0))

			h := NewHistorySource(client, &cfg, zap.NewNop(), WithLiveSource(live))
			h.now = func() time.Time { return now0 }
			sink := &recordingSink{}
			require.NoError(t, h.Import(t.Context(), allTime, "", sink))
			var ids []string
			for _, ev := range sink.events() {
				ids = append(ids, ev.DeploymentID+" "+ev.Kind.String())
			}
			want := []string{
				rev(1) + " " + event.DeploymentStarted.String(),
				rev(1) + " " + event.DeploymentSucceeded.String(),
				rev(2) + " " + event.DeploymentStarted.String(),
				rev(2) + " " + event.DeploymentSucceeded.String(),
			}
			// Otherwise revision 3 began while tracked: the live source's.
			if tc.wantCurrent {
				want = append(want, rev(3)+" "+event.DeploymentStarted.String(),
					tc.trackedID+" "+event.DeploymentRolledBack.String(), tc.trackedID+" "+event.DeploymentSucceeded.String())
			}
			assert.Equal(t, want, ids)
		})
	}
}

// TestHistoryClientRate: the import's client may send more than the
// informers' default 5 requests a second (one list per Deployment).
func TestHistoryClientRate(t *testing.T) {
	kubeconfig := t.TempDir() + "/kubeconfig"
	require.NoError(t, os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600))
	cfg := DefaultConfig()
	cfg.AuthType, cfg.KubeConfig = AuthTypeKubeConfig, kubeconfig
	live, err := NewClient(&cfg)
	require.NoError(t, err)
	imp, err := NewHistoryClient(&cfg)
	require.NoError(t, err)
	assert.Equal(t, float32(5), live.AppsV1().RESTClient().GetRateLimiter().QPS())
	assert.Equal(t, float32(historyQPS), imp.AppsV1().RESTClient().GetRateLimiter().QPS())
}
