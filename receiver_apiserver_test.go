package dorareceiver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
)

// These tests run the receiver against a real etcd and kube-apiserver (built
// by `make tools`). Without kube-controller-manager, Deployment status never
// moves on its own, so the tests play the controller's part through the
// status subresource, exactly as the controller writes it.

const waitFor = 30 * time.Second

// testReceiver is a running dora receiver whose metrics land in sink.
type testReceiver struct {
	t    *testing.T
	sink *consumertest.MetricsSink
	stop func()
}

func startReceiver(t *testing.T, kubeconfig string, configure func(*k8s.Config)) *testReceiver {
	t.Helper()
	return startReceiverOn(t, kubeconfig, componenttest.NewNopHost(), func(cfg *Config) {
		if configure != nil {
			configure(cfg.Kubernetes.Get())
		}
	})
}

// startStoredK8sReceiver is startReceiver with the storage extension ext:
// successive receivers on one ext are restarts of one collector.
func startStoredK8sReceiver(t *testing.T, kubeconfig string, ext component.Component) *testReceiver {
	t.Helper()
	return startReceiverOn(t, kubeconfig, extensionHost{storageID: ext}, func(cfg *Config) {
		id := storageID
		cfg.Storage = &id
	})
}

func startReceiverOn(t *testing.T, kubeconfig string, host component.Host, configure func(*Config)) *testReceiver {
	t.Helper()
	cfg := createDefaultConfig()
	kc := cfg.Kubernetes.GetOrInsertDefault()
	kc.AuthType = k8s.AuthTypeKubeConfig
	kc.KubeConfig = kubeconfig
	if configure != nil {
		configure(cfg)
	}
	require.NoError(t, cfg.Validate())
	sink := new(consumertest.MetricsSink)
	rcv, err := NewFactory().CreateMetrics(context.Background(), storedSettings(), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host))
	waitKubernetesSynced(t, rcv)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			require.NoError(t, rcv.Shutdown(context.Background()))
		}
	}
	t.Cleanup(stop)
	return &testReceiver{t: t, sink: sink, stop: stop}
}

// waitKubernetesSynced waits until the Kubernetes source has handled its
// initial list. Start does not wait for it (an unreachable API server is
// retried in the background), but a test that creates a Deployment right
// after Start must know on which side of the initial list it lands:
// listed, it existed at start and is not counted.
func waitKubernetesSynced(t *testing.T, rcv any) {
	t.Helper()
	s, ok := rcv.(*shared)
	require.True(t, ok, "unexpected receiver type %T", rcv)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for _, src := range s.sources {
		if ks, ok := src.(*k8s.Source); ok {
			require.True(t, ks.WaitForSync(ctx), "the Kubernetes source never synced")
		}
	}
}

// value returns the latest value of a counter series, 0 when absent: from
// the latest emission that has it, as an exporter keeping the last value of
// each series sees it (an emission triggered by a change carries the
// changed services only; a service's series always come together, so attrs
// should name one service).
func (r *testReceiver) value(metric string, attrs map[string]string) int64 {
	all := r.sink.AllMetrics()
	for i := len(all) - 1; i >= 0; i-- {
		if v, ok := counterValue(all[i], metric, attrs); ok {
			return v
		}
	}
	return 0
}

// histogramCount returns the count of a histogram series, 0 when absent,
// from the latest emission that has it (see value).
func (r *testReceiver) histogramCount(metric string, attrs map[string]string) uint64 {
	all := r.sink.AllMetrics()
	for i := len(all) - 1; i >= 0; i-- {
		if n, ok := histogramCountOK(all[i], metric, attrs); ok {
			return n
		}
	}
	return 0
}

func (r *testReceiver) waitValue(metric string, attrs map[string]string, want int64) {
	r.t.Helper()
	require.Eventually(r.t, func() bool { return r.value(metric, attrs) == want }, waitFor, 20*time.Millisecond,
		"%s%v never reached %d (last %d)", metric, attrs, want, r.value(metric, attrs))
}

func counterValue(md pmetric.Metrics, name string, attrs map[string]string) (int64, bool) {
	var out int64
	found := false
	forEachMetric(md, name, func(m pmetric.Metric) {
		dps := m.Sum().DataPoints()
		for i := range dps.Len() {
			if matches(dps.At(i).Attributes().AsRaw(), attrs) {
				out += dps.At(i).IntValue()
				found = true
			}
		}
	})
	return out, found
}

func histogramCount(md pmetric.Metrics, name string, attrs map[string]string) uint64 {
	n, _ := histogramCountOK(md, name, attrs)
	return n
}

// histogramCountOK is histogramCount, also saying whether md has the series.
func histogramCountOK(md pmetric.Metrics, name string, attrs map[string]string) (uint64, bool) {
	var out uint64
	found := false
	forEachMetric(md, name, func(m pmetric.Metric) {
		dps := m.Histogram().DataPoints()
		for i := range dps.Len() {
			if matches(dps.At(i).Attributes().AsRaw(), attrs) {
				out += dps.At(i).Count()
				found = true
			}
		}
	})
	return out, found
}

func forEachMetric(md pmetric.Metrics, name string, f func(pmetric.Metric)) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				if ms.At(k).Name() == name {
					f(ms.At(k))
				}
			}
		}
	}
}

func matches(got map[string]any, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// cluster wraps the client calls that play users and the controller.
type cluster struct {
	t      *testing.T
	client kubernetes.Interface
}

func (c cluster) namespace(name string) {
	c.t.Helper()
	_, err := c.client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(c.t, err)
}

func (c cluster) create(ns, name, image string, mutate ...func(*appsv1.Deployment)) *appsv1.Deployment {
	c.t.Helper()
	replicas := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
	for _, m := range mutate {
		m(d)
	}
	d, err := c.client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{})
	require.NoError(c.t, err)
	return d
}

func (c cluster) update(ns, name string, mutate func(*appsv1.Deployment)) *appsv1.Deployment {
	c.t.Helper()
	d, err := c.client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(c.t, err)
	mutate(d)
	d, err = c.client.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
	require.NoError(c.t, err)
	return d
}

func (c cluster) setImage(ns, name, image string) {
	c.t.Helper()
	c.update(ns, name, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image })
}

// status writes the status the Deployment controller would write for the
// current generation.
func (c cluster) status(ns, name string, complete bool, reason string) {
	c.t.Helper()
	d, err := c.client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(c.t, err)
	n := *d.Spec.Replicas
	now := metav1.Now()
	cond := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: reason, LastUpdateTime: now, LastTransitionTime: now}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, AvailableReplicas: n, ReadyReplicas: n}
	if !complete {
		d.Status.UpdatedReplicas, d.Status.AvailableReplicas = 1, n-1
		if reason == "ProgressDeadlineExceeded" {
			cond.Status = corev1.ConditionFalse
		}
	}
	d.Status.Conditions = []appsv1.DeploymentCondition{cond}
	_, err = c.client.AppsV1().Deployments(ns).UpdateStatus(context.Background(), d, metav1.UpdateOptions{})
	require.NoError(c.t, err)
}

func (c cluster) complete(ns, name string) {
	c.t.Helper()
	c.status(ns, name, true, "NewReplicaSetAvailable")
}
func (c cluster) progressing(ns, name string) {
	c.t.Helper()
	c.status(ns, name, false, "ReplicaSetUpdated")
}
func (c cluster) deadlineExceeded(ns, name string) {
	c.t.Helper()
	c.status(ns, name, false, "ProgressDeadlineExceeded")
}

// sentinel rolls out a fresh Deployment in ns and waits until r counts it.
// The Deployment watch delivers events in the order the API server stored
// them, so once the sentinel is counted every earlier change has been
// processed: assertions that something was NOT counted are then sound.
func (c cluster) sentinel(r *testReceiver, ns string) {
	c.t.Helper()
	name := fmt.Sprintf("sentinel-%d", time.Now().UnixNano())
	c.create(ns, name, "registry.local/sentinel:1")
	c.complete(ns, name)
	r.waitValue("platform.deployments", map[string]string{"namespace": ns, "deployment": name, "status": "success"}, 1)
}

// series selects deployments of ns/name; an empty status selects both.
func series(ns, name, status string) map[string]string {
	m := map[string]string{"namespace": ns, "deployment": name}
	if status != "" {
		m["status"] = status
	}
	return m
}

func TestKubernetesRolloutsAgainstAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries; run through make test")
	}
	cp := localcluster.StartForTest(t, localcluster.Options{})
	c := cluster{t: t, client: cp.Client()}

	t.Run("create is one deployment", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		c.namespace("create")
		r := startReceiver(t, cp.Kubeconfig, nil)
		c.create("create", "api", "registry.local/api:1.0")
		c.progressing("create", "api")
		c.complete("create", "api")
		r.waitValue("platform.deployments", series("create", "api", "success"), 1)
		c.sentinel(r, "create")
		assert.EqualValues(t, 1, r.value("platform.deployments", series("create", "api", "success")))
		assert.EqualValues(t, 0, r.value("platform.deployments", series("create", "api", "failure")))
	})

	t.Run("image update counted once as a success", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		c.namespace("update")
		c.create("update", "api", "registry.local/api:1.0")
		c.complete("update", "api")
		r := startReceiver(t, cp.Kubeconfig, nil)
		c.sentinel(r, "update")
		assert.EqualValues(t, 0, r.value("platform.deployments", series("update", "api", "")), "existing at start")

		c.update("update", "api", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:2.0"
			d.Annotations = map[string]string{
				"dora.otelcol.dev/commit-sha":  "3f2a9c1d",
				"dora.otelcol.dev/commit-time": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
			}
		})
		c.progressing("update", "api")
		c.complete("update", "api")
		c.complete("update", "api") // the controller rewrites status often
		r.waitValue("platform.deployments", series("update", "api", "success"), 1)
		c.sentinel(r, "update")
		assert.EqualValues(t, 1, r.value("platform.deployments", series("update", "api", "success")))
		// The first rollout the receiver sees starts the service's history:
		// its commit, known only from the annotation and made an hour
		// before, gets no lead time (METRICS.md).
		assert.EqualValues(t, 0, r.histogramCount("platform.lead_time", map[string]string{"namespace": "update", "deployment": "api"}))
		assert.EqualValues(t, 1, r.value("platform.lead_time.dropped", map[string]string{"namespace": "update", "deployment": "api", "reason": "before_history"}))

		// The next one ships a commit made since the history started: it
		// records it. The annotation holds whole seconds: the commit is
		// dated at the first second boundary after the first rollout was
		// counted, so it is after the history start whatever the fraction
		// of a second the first rollout's events carry.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		committed := time.Now().UTC().Truncate(time.Second)
		c.update("update", "api", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:3.0"
			d.Annotations = map[string]string{
				"dora.otelcol.dev/commit-sha":  "4e5f6a7b",
				"dora.otelcol.dev/commit-time": committed.Format(time.RFC3339),
			}
		})
		c.complete("update", "api")
		r.waitValue("platform.deployments", series("update", "api", "success"), 2)
		assert.EqualValues(t, 1, r.histogramCount("platform.lead_time", map[string]string{"namespace": "update", "deployment": "api"}))
	})

	t.Run("progress deadline exceeded counted as a failure", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		c.namespace("deadline")
		c.create("deadline", "api", "registry.local/api:1.0")
		c.complete("deadline", "api")
		r := startReceiver(t, cp.Kubeconfig, nil)
		c.sentinel(r, "deadline")

		c.setImage("deadline", "api", "registry.local/api:broken")
		c.progressing("deadline", "api")
		c.deadlineExceeded("deadline", "api")
		r.waitValue("platform.deployment.failures", map[string]string{"namespace": "deadline", "deployment": "api", "reason": "ProgressDeadlineExceeded"}, 1)
		assert.EqualValues(t, 1, r.value("platform.deployments", series("deadline", "api", "failure")))

		// Fixing forward recovers the service.
		c.setImage("deadline", "api", "registry.local/api:1.1")
		c.complete("deadline", "api")
		r.waitValue("platform.deployments", series("deadline", "api", "success"), 1)
		assert.EqualValues(t, 1, r.histogramCount("platform.recovery_time", map[string]string{"namespace": "deadline", "deployment": "api"}))
		assert.EqualValues(t, 1, r.value("platform.deployments", series("deadline", "api", "failure")))
	})

	t.Run("rollback", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		c.namespace("rollback")
		c.create("rollback", "api", "registry.local/api:1.0")
		c.complete("rollback", "api")
		r := startReceiver(t, cp.Kubeconfig, nil)
		c.sentinel(r, "rollback")

		c.setImage("rollback", "api", "registry.local/api:2.0")
		c.complete("rollback", "api")
		r.waitValue("platform.deployments", series("rollback", "api", "success"), 1)

		// `kubectl rollout undo` writes the previous template back.
		c.setImage("rollback", "api", "registry.local/api:1.0")
		c.progressing("rollback", "api")
		r.waitValue("platform.deployment.failures", map[string]string{"namespace": "rollback", "deployment": "api", "reason": "rollback"}, 1)
		c.complete("rollback", "api")
		r.waitValue("platform.deployments", series("rollback", "api", "success"), 2)
		assert.EqualValues(t, 1, r.histogramCount("platform.recovery_time", map[string]string{"namespace": "rollback", "deployment": "api"}))
		c.sentinel(r, "rollback")
		assert.EqualValues(t, 0, r.value("platform.deployments", series("rollback", "api", "failure")), "v2 had succeeded before it was rolled back")
		assert.EqualValues(t, 1, r.value("platform.deployment.failures", map[string]string{"namespace": "rollback", "deployment": "api"}))
	})

	t.Run("scale only counts nothing", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		c.namespace("scale")
		c.create("scale", "api", "registry.local/api:1.0")
		c.complete("scale", "api")
		r := startReceiver(t, cp.Kubeconfig, nil)
		c.sentinel(r, "scale")

		c.update("scale", "api", func(d *appsv1.Deployment) { n := int32(5); d.Spec.Replicas = &n })
		c.progressing("scale", "api")
		c.complete("scale", "api")
		c.sentinel(r, "scale")
		assert.EqualValues(t, 0, r.value("platform.deployments", series("scale", "api", "")))
	})

	t.Run("receiver restart recounts nothing", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		c.namespace("restart")
		first := startReceiver(t, cp.Kubeconfig, nil)
		c.create("restart", "api", "registry.local/api:1.0")
		c.complete("restart", "api")
		c.setImage("restart", "api", "registry.local/api:2.0")
		c.complete("restart", "api")
		first.waitValue("platform.deployments", series("restart", "api", "success"), 2)
		first.stop()

		second := startReceiver(t, cp.Kubeconfig, nil)
		c.sentinel(second, "restart")
		assert.EqualValues(t, 0, second.value("platform.deployments", series("restart", "api", "")))
		c.setImage("restart", "api", "registry.local/api:3.0")
		c.complete("restart", "api")
		second.waitValue("platform.deployments", series("restart", "api", "success"), 1)
	})

	t.Run("rollout unfinished at restart is counted once when it finishes", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		c.namespace("midway")
		c.create("midway", "api", "registry.local/api:1.0")
		c.complete("midway", "api")
		first := startReceiver(t, cp.Kubeconfig, nil)
		c.sentinel(first, "midway")
		c.setImage("midway", "api", "registry.local/api:2.0")
		c.progressing("midway", "api")
		c.sentinel(first, "midway")
		first.stop()
		assert.EqualValues(t, 0, first.value("platform.deployments", series("midway", "api", "")))

		second := startReceiver(t, cp.Kubeconfig, nil)
		c.sentinel(second, "midway")
		c.complete("midway", "api")
		second.waitValue("platform.deployments", series("midway", "api", "success"), 1)
	})

	t.Run("with storage, what happened while the receiver was down is counted once", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		ext := persisttest.NewExtension()
		c.namespace("persist")
		c.create("persist", "api", "registry.local/api:1.0")
		c.complete("persist", "api")
		c.create("persist", "cart", "registry.local/cart:1.0")
		c.complete("persist", "cart")
		c.create("persist", "worker", "registry.local/worker:1.0")
		c.complete("persist", "worker")

		first := startStoredK8sReceiver(t, cp.Kubeconfig, ext)
		c.sentinel(first, "persist")
		assert.EqualValues(t, 0, first.value("platform.deployments", series("persist", "api", "")), "existing before the first start")
		c.setImage("persist", "api", "registry.local/api:2.0")
		c.complete("persist", "api")
		c.setImage("persist", "cart", "registry.local/cart:2.0")
		c.complete("persist", "cart")
		c.setImage("persist", "worker", "registry.local/worker:2.0")
		c.progressing("persist", "worker")
		first.waitValue("platform.deployments", series("persist", "api", "success"), 1)
		first.waitValue("platform.deployments", series("persist", "cart", "success"), 1)
		c.sentinel(first, "persist")
		first.stop()

		// While the receiver is down: a rollout completes, a new
		// Deployment is created and rolled out, a rollout that was under
		// way completes, a rollback (kubectl rollout undo) completes.
		c.setImage("persist", "api", "registry.local/api:3.0")
		c.complete("persist", "api")
		c.create("persist", "web", "registry.local/web:1.0")
		c.complete("persist", "web")
		c.complete("persist", "worker")
		c.setImage("persist", "cart", "registry.local/cart:1.0")
		c.complete("persist", "cart")

		second := startStoredK8sReceiver(t, cp.Kubeconfig, ext)
		want := map[string]int64{"api": 2, "web": 1, "worker": 1, "cart": 2}
		for name, n := range want {
			second.waitValue("platform.deployments", series("persist", name, "success"), n)
		}
		second.waitValue("platform.deployment.failures", map[string]string{"namespace": "persist", "deployment": "cart", "reason": "rollback"}, 1)
		assert.EqualValues(t, 1, second.histogramCount("platform.recovery_time", map[string]string{"namespace": "persist", "deployment": "cart"}),
			"the rollback while down ended cart's failure")
		c.sentinel(second, "persist")
		second.stop()

		// Nothing changed while down: nothing is counted again.
		third := startStoredK8sReceiver(t, cp.Kubeconfig, ext)
		c.sentinel(third, "persist")
		for name, n := range want {
			assert.EqualValues(t, n, third.value("platform.deployments", series("persist", name, "success")), name)
			assert.EqualValues(t, 0, third.value("platform.deployments", series("persist", name, "failure")), name)
		}
		assert.EqualValues(t, 1, third.value("platform.deployment.failures", map[string]string{"namespace": "persist", "deployment": "cart"}))
		// And it goes on counting.
		c.setImage("persist", "api", "registry.local/api:4.0")
		c.complete("persist", "api")
		third.waitValue("platform.deployments", series("persist", "api", "success"), 3)
	})

	t.Run("namespace and label filters", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		c.namespace("watched")
		c.namespace("ignored")
		r := startReceiver(t, cp.Kubeconfig, func(kc *k8s.Config) {
			kc.Namespaces = []string{"watched"}
			kc.LabelSelector = "tier!=batch"
		})
		c.create("ignored", "api", "registry.local/api:1.0")
		c.complete("ignored", "api")
		c.create("watched", "batch", "registry.local/batch:1.0", func(d *appsv1.Deployment) { d.Labels["tier"] = "batch" })
		c.complete("watched", "batch")
		c.create("watched", "api", "registry.local/api:1.0")
		c.complete("watched", "api")
		r.waitValue("platform.deployments", series("watched", "api", "success"), 1)
		c.sentinel(r, "watched")
		assert.EqualValues(t, 0, r.value("platform.deployments", map[string]string{"namespace": "ignored"}))
		assert.EqualValues(t, 0, r.value("platform.deployments", map[string]string{"deployment": "batch"}))
	})

	t.Run("environment mapping", func(t *testing.T) {
		c := cluster{t: t, client: c.client}
		c.namespace("shop-staging")
		r := startReceiver(t, cp.Kubeconfig, func(kc *k8s.Config) {
			kc.Environment.Namespaces = []k8s.NamespaceRule{{Pattern: "*-staging", Environment: "staging"}}
		})
		c.create("shop-staging", "api", "registry.local/api:1.0")
		c.complete("shop-staging", "api")
		c.create("shop-staging", "canary", "registry.local/api:1.0", func(d *appsv1.Deployment) {
			d.Labels[k8s.DefaultEnvironmentKey] = "canary"
		})
		c.complete("shop-staging", "canary")
		r.waitValue("platform.deployments", map[string]string{"deployment": "api", "environment": "staging"}, 1)
		r.waitValue("platform.deployments", map[string]string{"deployment": "canary", "environment": "canary"}, 1)
	})
}

func TestAPIServerRestartUnderRunningReceiver(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries; run through make test")
	}
	cp := localcluster.StartForTest(t, localcluster.Options{})
	c := cluster{t: t, client: cp.Client()}
	c.namespace("shop")
	c.create("shop", "api", "registry.local/api:1.0")
	c.complete("shop", "api")

	r := startReceiver(t, cp.Kubeconfig, nil)
	c.sentinel(r, "shop")
	c.setImage("shop", "api", "registry.local/api:2.0")
	c.complete("shop", "api")
	r.waitValue("platform.deployments", series("shop", "api", "success"), 1)

	require.NoError(t, cp.StopAPIServer())
	// Long enough for the watch to break and the informer to retry.
	time.Sleep(3 * time.Second)
	require.NoError(t, cp.StartAPIServer(context.Background()))

	c.setImage("shop", "api", "registry.local/api:3.0")
	c.complete("shop", "api")
	r.waitValue("platform.deployments", series("shop", "api", "success"), 2)
	c.sentinel(r, "shop")
	assert.EqualValues(t, 2, r.value("platform.deployments", series("shop", "api", "success")), "nothing recounted after the reconnect")
}
