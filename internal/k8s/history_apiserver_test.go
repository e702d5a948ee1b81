package k8s

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// lockedEngine applies events from the importer and the live source.
type lockedEngine struct {
	mu  sync.Mutex
	e   *engine.Engine
	t   *testing.T
	out []engine.Outcome
}

func (l *lockedEngine) apply(ev event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, err := l.e.Apply(ev)
	require.NoError(l.t, err)
	l.out = append(l.out, o)
	return nil
}

func (l *lockedEngine) Apply(_ context.Context, b history.Batch) error {
	for _, ev := range b.Events {
		if err := l.apply(ev); err != nil {
			return err
		}
	}
	return nil
}

// counts is the engine's deployments counter of one service by status.
func (l *lockedEngine) counts(name string) map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]uint64{}
	for _, p := range l.e.Snapshot().Deployments {
		if p.Service.Name == name {
			out[p.Label] += p.Value
		}
	}
	return out
}

// TestHistoryRealRollouts: Deployments rolled out by kube-controller-manager
// (image changes, then `kubectl rollout undo`'s template copy) are read
// back from their ReplicaSets as the rollouts they were; the live source
// then started on the same engine counts none of them again, and the
// outcome it sees of a rollout the import saw start is the same
// deployment's.
func TestHistoryRealRollouts(t *testing.T) {
	c := localcluster.StartForTest(t, localcluster.Options{FakeKubelet: true})
	ctx := t.Context()
	client := c.Client()
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	deployments := client.AppsV1().Deployments("shop")

	images := []string{"registry.local/api:1a2b3c4d", "registry.local/api:2b3c4d5e", "registry.local/api:3c4d5e6f"}
	_, err = deployments.Create(ctx, realDeployment("api", images[0]), metav1.CreateOptions{})
	require.NoError(t, err)
	waitComplete(t, client, "api")
	for _, image := range images[1:] {
		// Whole seconds apart: creation times have seconds.
		time.Sleep(1100 * time.Millisecond)
		updateRealDeployment(t, client, "api", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image })
		waitComplete(t, client, "api")
	}
	// `kubectl rollout undo --to-revision=2`: the ReplicaSet's template,
	// without its pod-template-hash label, becomes the Deployment's.
	time.Sleep(1100 * time.Millisecond)
	rs2 := replicaSetOfRevision(t, client, "api", 2)
	updateRealDeployment(t, client, "api", func(d *appsv1.Deployment) {
		d.Spec.Template = *withoutHashLabel(&rs2.Spec.Template)
	})
	api := waitComplete(t, client, "api")

	// web: rolled out once, then a second rollout held back (Pods never
	// Ready) while the import reads it.
	_, err = deployments.Create(ctx, realDeployment("web", "registry.local/web:4d5e6f7a"), metav1.CreateOptions{})
	require.NoError(t, err)
	waitComplete(t, client, "web")
	time.Sleep(1100 * time.Millisecond)
	c.SetPodsBecomeReady(false)
	updateRealDeployment(t, client, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "registry.local/web:5e6f7a8b" })
	web := waitDeployment(t, client, "web", func(d *appsv1.Deployment) error {
		if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas == 0 {
			return fmt.Errorf("the new ReplicaSet is not up yet")
		}
		return nil
	})

	// The ReplicaSets are as the controller wrote them: the reused one
	// keeps its earlier revision.
	rs := replicaSetOfRevision(t, client, "api", 4)
	require.Equal(t, rs2.UID, rs.UID, "the rollback reuses revision 2's ReplicaSet")
	require.Equal(t, "2", rs.Annotations[RevisionHistoryAnnotation])

	cfg := DefaultConfig()
	cfg.Namespaces = []string{"shop"}
	eng, err := engine.New(engine.DefaultConfig(), time.Now().Add(-time.Hour))
	require.NoError(t, err)
	le := &lockedEngine{e: eng, t: t}
	rec := &recordingSink{}
	// Pages of one: the Continue tokens are the API server's.
	h := NewHistorySource(client, &cfg, zap.NewNop(), WithHistoryPageSize(1))
	require.NoError(t, h.Import(ctx, history.Window{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)}, "", teeSink{rec, le}))

	require.Len(t, rec.batches, 2)
	assert.Equal(t, "shop/api", rec.batches[0].Cursor)
	assert.Equal(t, "shop/web", rec.batches[1].Cursor)

	revID := func(name string, uid any, rev int) string {
		return fmt.Sprintf("shop/%s/%s@revision-%d", name, uid, rev)
	}
	apiLive := revID("api", api.UID, 4)
	created := func(name string, rev int) time.Time {
		return replicaSetOfRevision(t, client, name, rev).CreationTimestamp.Local()
	}
	type got struct {
		kind     event.Kind
		id, prev string
		rev      string
	}
	var apiEvents, webEvents []got
	// When each event happened, by deployment id and kind.
	times := map[string]time.Time{}
	at := func(id string, kind event.Kind) time.Time { return times[id+"/"+kind.String()].Local() }
	for _, ev := range rec.events() {
		g := got{ev.Kind, ev.DeploymentID, ev.PreviousDeploymentID, ev.Revision}
		if ev.Service.Name == "api" {
			apiEvents = append(apiEvents, g)
		} else {
			webEvents = append(webEvents, g)
		}
		times[ev.ID] = ev.Time
	}
	assert.Equal(t, []got{
		{event.DeploymentStarted, revID("api", api.UID, 1), "", "1a2b3c4d"},
		{event.DeploymentSucceeded, revID("api", api.UID, 1), "", "1a2b3c4d"},
		{event.DeploymentStarted, revID("api", api.UID, 2), "", "2b3c4d5e"},
		{event.DeploymentSucceeded, revID("api", api.UID, 2), "", "2b3c4d5e"},
		{event.DeploymentStarted, revID("api", api.UID, 3), "", "3c4d5e6f"},
		{event.DeploymentRolledBack, apiLive, revID("api", api.UID, 3), "2b3c4d5e"},
		{event.DeploymentSucceeded, apiLive, "", "2b3c4d5e"},
	}, apiEvents)
	for rev := 1; rev <= 3; rev++ {
		assert.Equal(t, created("api", rev), at(revID("api", api.UID, rev), event.DeploymentStarted), "revision %d starts when its ReplicaSet was created", rev)
	}
	apiDone := progressingCondition(api).LastUpdateTime.Local()
	assert.Equal(t, apiDone, at(apiLive, event.DeploymentRolledBack))
	assert.Equal(t, apiDone, at(apiLive, event.DeploymentSucceeded))

	webLive := revID("web", web.UID, 2)
	assert.Equal(t, []got{
		{event.DeploymentStarted, revID("web", web.UID, 1), "", "4d5e6f7a"},
		{event.DeploymentSucceeded, revID("web", web.UID, 1), "", "4d5e6f7a"},
		// Still rolling out: started, no outcome yet.
		{event.DeploymentStarted, webLive, "", "5e6f7a8b"},
	}, webEvents)
	assert.Equal(t, created("web", 2), at(webLive, event.DeploymentStarted))

	assert.Equal(t, map[string]uint64{"success": 3, "failure": 1}, le.counts("api"))
	assert.Equal(t, map[string]uint64{"success": 1}, le.counts("web"))

	// Scaled meanwhile: a new generation, the same rollout.
	updateRealDeployment(t, client, "web", func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32(2)) })

	// Live, on the same engine, from its first list (no saved state).
	src := New(&cfg, client, zap.NewNop(), le.apply)
	require.NoError(t, src.Start(ctx))
	t.Cleanup(func() { _ = src.Shutdown(context.Background()) })
	require.True(t, src.WaitForSync(ctx))
	assert.Equal(t, map[string]uint64{"success": 3, "failure": 1}, le.counts("api"), "the first list counts no imported rollout again")
	assert.Equal(t, map[string]uint64{"success": 1}, le.counts("web"))

	// web's held-back rollout completes: counted once, as the rollout the
	// import saw start.
	c.SetPodsBecomeReady(true)
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return le.counts("web")["success"] == 2, nil
	}))
	le.mu.Lock()
	var report *engine.DeploymentReport
	for _, o := range le.out {
		if o.Deployment != nil && o.Deployment.Service.Name == "web" && o.Deployment.Revision == "5e6f7a8b" {
			report = o.Deployment
		}
	}
	le.mu.Unlock()
	require.NotNil(t, report)
	assert.Equal(t, webLive, report.DeploymentID)
	assert.Equal(t, created("web", 2), report.BuildEnd.Local(), "the imported start is the live outcome's deployment's")

	// A new live rollout of api is one more, nothing else.
	updateRealDeployment(t, client, "api", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:6f7a8b9c" })
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return le.counts("api")["success"] == 4, nil
	}))
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, map[string]uint64{"success": 4, "failure": 1}, le.counts("api"))
	assert.Equal(t, map[string]uint64{"success": 2}, le.counts("web"))

	// Imported again (a restart before the runner saved it done): the
	// rollouts have the ids they had (api's rollback, current at the first
	// import, is an old one now), and the one the live source saw start
	// is named as it named it.
	again := &recordingSink{}
	require.NoError(t, NewHistorySource(client, &cfg, zap.NewNop(), WithLiveSource(src)).Import(ctx, history.Window{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)}, "", teeSink{again, le}))
	assert.Equal(t, map[string]uint64{"success": 4, "failure": 1}, le.counts("api"), "importing again counts nothing twice")
	assert.Equal(t, map[string]uint64{"success": 2}, le.counts("web"))
}

// teeSink applies a batch to each sink in turn.
type teeSink []history.Sink

func (s teeSink) Apply(ctx context.Context, b history.Batch) error {
	for _, k := range s {
		if err := k.Apply(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func realDeployment(name, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	replicas := int32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func updateRealDeployment(t *testing.T, client kubernetes.Interface, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := client.AppsV1().Deployments("shop").Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = client.AppsV1().Deployments("shop").Update(t.Context(), d, metav1.UpdateOptions{})
		return err
	})
	require.NoError(t, err)
}

func waitComplete(t *testing.T, client kubernetes.Interface, name string) *appsv1.Deployment {
	t.Helper()
	cfg := DefaultConfig()
	return waitDeployment(t, client, name, func(d *appsv1.Deployment) error {
		if evaluate(compact(d, &cfg)) != phaseSucceeded {
			return fmt.Errorf("not complete: %+v", d.Status)
		}
		return nil
	})
}

func waitDeployment(t *testing.T, client kubernetes.Interface, name string, done func(*appsv1.Deployment) error) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		if d, err = client.AppsV1().Deployments("shop").Get(ctx, name, metav1.GetOptions{}); err != nil {
			last = err
			return false, nil
		}
		last = done(d)
		return last == nil, nil
	})
	require.NoError(t, err, "deployment %s: %v", name, last)
	return d
}

func replicaSetOfRevision(t *testing.T, client kubernetes.Interface, name string, rev int) *appsv1.ReplicaSet {
	t.Helper()
	rss, err := client.AppsV1().ReplicaSets("shop").List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + name})
	require.NoError(t, err)
	for i := range rss.Items {
		rs := &rss.Items[i]
		if rs.Annotations[RevisionAnnotation] == strconv.Itoa(rev) {
			return rs
		}
		for _, h := range parseRevisionHistory(rs.Annotations[RevisionHistoryAnnotation]) {
			if h == int64(rev) {
				return rs
			}
		}
	}
	t.Fatalf("no ReplicaSet of %s holds revision %d", name, rev)
	return nil
}

func progressingCondition(d *appsv1.Deployment) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}
