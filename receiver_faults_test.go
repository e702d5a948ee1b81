package dorareceiver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-dora/dorareceiver/internal/faultproxy"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
)

// Fault tests (issue 5): the receiver runs against a real kube-apiserver,
// reached through a TCP proxy (internal/faultproxy) that can cut the
// network between them, while a direct client plays users and the
// Deployment controller. Each rollout must be counted exactly once.

// outage is how long the API server stays unreachable: the minute.
const outage = 60 * time.Second

// recoverWithin bounds how long the informer may take to come back after
// the network does: client-go backs off up to 30 s (with jitter, up to 60 s)
// between attempts, and the machine is shared.
const recoverWithin = 3 * time.Minute

// statusHost is a collector host with extensions that records the
// component status the receiver reports.
type statusHost struct {
	extensionHost
	mu     sync.Mutex
	events []*componentstatus.Event
}

func (h *statusHost) Report(e *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

// since returns the statuses reported from index i on.
func (h *statusHost) since(i int) []*componentstatus.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*componentstatus.Event(nil), h.events[min(i, len(h.events)):]...)
}

func (h *statusHost) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// proxiedCluster is a control plane and a proxy in front of its API
// server, with a kubeconfig through the proxy for the receiver.
func proxiedCluster(t *testing.T, opts localcluster.Options) (*localcluster.Cluster, *faultproxy.Proxy, string) {
	t.Helper()
	cp := localcluster.StartForTest(t, opts)
	port, err := localcluster.FreePort()
	require.NoError(t, err)
	proxy, err := faultproxy.Start(fmt.Sprintf("127.0.0.1:%d", port), cp.APIServerAddr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	kubeconfig, err := cp.KubeconfigVia("proxy", proxy.Addr())
	require.NoError(t, err)
	return cp, proxy, kubeconfig
}

// rollout changes the image of ns/name and completes the rollout.
func (c cluster) rollout(ns, name, image string) {
	c.t.Helper()
	c.setImage(ns, name, image)
	c.progressing(ns, name)
	c.complete(ns, name)
}

// TestAPIServerUnreachableForAMinute: the network between the receiver
// and the API server is cut for a minute (open connections dropped, new
// ones refused) while rollouts go on in the cluster, one of them right
// before the cut. Once the network is back the informer recovers and
// every rollout is counted exactly once; the receiver reported a
// recoverable error meanwhile, then OK.
func TestAPIServerUnreachableForAMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute-long outage against the control-plane binaries; run through make test")
	}
	t.Parallel()
	cp, proxy, kubeconfig := proxiedCluster(t, localcluster.Options{})
	c := cluster{t: t, client: cp.Client()}
	const ns = "outage"
	c.namespace(ns)
	for _, name := range []string{"api", "cart", "worker", "web"} {
		c.create(ns, name, "registry.local/"+name+":1")
		c.complete(ns, name)
	}
	host := &statusHost{extensionHost: extensionHost{storageID: persisttest.NewExtension()}}
	r := startReceiverOn(t, kubeconfig, host, func(cfg *Config) {
		id := storageID
		cfg.Storage = &id
	})
	c.sentinel(r, ns)
	c.rollout(ns, "api", "registry.local/api:2")
	r.waitValue("platform.deployments", series(ns, "api", "success"), 1)

	// Right before the cut: the receiver may or may not see it first.
	c.rollout(ns, "cart", "registry.local/cart:2")
	statusesBefore := host.count()
	cutAt := time.Now()
	proxy.Cut()

	// During the outage: a second rollout of api, a new Deployment, a
	// rollout left unfinished, and one more later in the minute.
	c.rollout(ns, "api", "registry.local/api:3")
	c.create(ns, "search", "registry.local/search:1")
	c.complete(ns, "search")
	c.setImage(ns, "worker", "registry.local/worker:2")
	c.progressing(ns, "worker")
	time.Sleep(outage / 2)
	c.complete(ns, "worker")
	c.rollout(ns, "web", "registry.local/web:2")
	time.Sleep(time.Until(cutAt.Add(outage)))

	// While cut, the receiver has seen none of it, and says so.
	assert.EqualValues(t, 1, r.value("platform.deployments", series(ns, "api", "success")), "nothing got through the cut")
	assert.Zero(t, r.value("platform.deployments", series(ns, "search", "")), "nothing got through the cut")
	var recoverable []error
	for _, e := range host.since(statusesBefore) {
		if e.Status() == componentstatus.StatusRecoverableError {
			recoverable = append(recoverable, e.Err())
		}
	}
	require.NotEmpty(t, recoverable, "no recoverable error reported during a minute without the API server")
	t.Logf("%d recoverable errors reported during the outage, the first: %v", len(recoverable), recoverable[0])

	require.NoError(t, proxy.Restore())
	restoredAt := time.Now()
	want := map[string]int64{"api": 2, "cart": 1, "worker": 1, "web": 1, "search": 1}
	for name, n := range want {
		require.Eventually(t, func() bool { return r.value("platform.deployments", series(ns, name, "success")) == n },
			recoverWithin, 50*time.Millisecond, "%s: want %d, last %d", name, n, r.value("platform.deployments", series(ns, name, "success")))
	}
	t.Logf("every rollout counted %v after the network came back", time.Since(restoredAt).Round(100*time.Millisecond))

	// Counted once: nothing more arrives with later events.
	c.sentinel(r, ns)
	for name, n := range want {
		assert.EqualValues(t, n, r.value("platform.deployments", series(ns, name, "success")), name)
		assert.Zero(t, r.value("platform.deployments", series(ns, name, "failure")), name)
	}
	assert.Zero(t, r.value("platform.deployment.failures", map[string]string{"namespace": ns}))

	// The receiver reported that it recovered.
	events := host.since(statusesBefore)
	last := events[len(events)-1]
	assert.Equal(t, componentstatus.StatusOK, last.Status(), "last status after the recovery: %v (%v)", last.Status(), last.Err())
}

// startObservedReceiver is startReceiverOn with the receiver's log kept.
func startObservedReceiver(t *testing.T, kubeconfig string, host component.Host) (*testReceiver, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	set := storedSettings()
	set.Logger = zap.New(core)
	cfg := createDefaultConfig()
	kc := cfg.Kubernetes.GetOrInsertDefault()
	kc.AuthType, kc.KubeConfig = k8s.AuthTypeKubeConfig, kubeconfig
	require.NoError(t, cfg.Validate())
	sink := new(consumertest.MetricsSink)
	rcv, err := NewFactory().CreateMetrics(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	waitKubernetesSynced(t, rcv)
	return &testReceiver{t: t, sink: sink}, logs
}

// TestWatchExpired: the receiver's connection to the API server goes
// silent (the proxy holds every byte) while rollouts go on and etcd is
// compacted past the last resourceVersion the receiver saw, for real: the
// API server's watch cache is off, so watches are served from etcd. Then
// the connection drops; the informer watches again from that
// resourceVersion and the API server answers 410 Gone, as a test watch
// from there shows first. The informer lists again; the list re-delivers
// every Deployment, those already counted included, a deletion during the
// gap arrives as a tombstone, and each rollout is counted exactly once.
func TestWatchExpired(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries; run through make test")
	}
	t.Parallel()
	cp, proxy, kubeconfig := proxiedCluster(t, localcluster.Options{APIServerArgs: []string{"--watch-cache=false"}})
	c := cluster{t: t, client: cp.Client()}
	const ns = "expired"
	c.namespace(ns)
	for _, name := range []string{"api", "cart", "legacy"} {
		c.create(ns, name, "registry.local/"+name+":1")
		c.complete(ns, name)
	}
	r, logs := startObservedReceiver(t, kubeconfig, componenttest.NewNopHost())
	c.sentinel(r, ns)
	c.rollout(ns, "api", "registry.local/api:2")
	r.waitValue("platform.deployments", series(ns, "api", "success"), 1)
	// The receiver has seen everything up to here.
	seen, err := c.client.AppsV1().Deployments(ns).Get(context.Background(), "api", metav1.GetOptions{})
	require.NoError(t, err)

	// The receiver's connection goes silent: its watch stays open and
	// misses what follows.
	proxy.Freeze()
	c.rollout(ns, "api", "registry.local/api:3")
	c.rollout(ns, "cart", "registry.local/cart:2")
	c.create(ns, "search", "registry.local/search:1")
	c.complete(ns, "search")
	require.NoError(t, c.client.AppsV1().Deployments(ns).Delete(context.Background(), "legacy", metav1.DeleteOptions{}))
	rev, err := cp.CompactEtcd(context.Background())
	require.NoError(t, err)
	t.Logf("etcd compacted at revision %d; the receiver last saw resourceVersion %s", rev, seen.ResourceVersion)

	// What the informer is about to meet: a watch from where it stood is
	// refused with 410 Gone.
	w, err := c.client.AppsV1().Deployments(ns).Watch(context.Background(), metav1.ListOptions{ResourceVersion: seen.ResourceVersion})
	if err == nil {
		ev, ok := <-w.ResultChan()
		w.Stop()
		require.True(t, ok, "the watch from a compacted revision ended without an event")
		err = apierrors.FromObject(ev.Object)
	}
	require.True(t, apierrors.IsResourceExpired(err) || apierrors.IsGone(err), "a watch from a compacted revision: %v", err)

	// The connection drops; the informer watches again from where it was.
	proxy.DropConnections()
	want := map[string]int64{"api": 2, "cart": 1, "search": 1}
	for name, n := range want {
		require.Eventually(t, func() bool { return r.value("platform.deployments", series(ns, name, "success")) == n },
			recoverWithin, 50*time.Millisecond, "%s: want %d, last %d", name, n, r.value("platform.deployments", series(ns, name, "success")))
	}
	// The informer's watch met the 410 for real, and listed again.
	expired := logs.FilterMessageSnippet("Kubernetes watch expired (410 Gone)").All()
	require.NotEmpty(t, expired, "the informer's watch never met 410 Gone")
	t.Logf("receiver: %s: %v", expired[0].Message, expired[0].ContextMap()["error"])

	// A Deployment deleted during the gap and created again is new.
	c.create(ns, "legacy", "registry.local/legacy:2")
	c.complete(ns, "legacy")
	r.waitValue("platform.deployments", series(ns, "legacy", "success"), 1)
	c.sentinel(r, ns)
	for name, n := range want {
		assert.EqualValues(t, n, r.value("platform.deployments", series(ns, name, "success")), name)
		assert.Zero(t, r.value("platform.deployments", series(ns, name, "failure")), name)
	}
	assert.Zero(t, r.value("platform.deployment.failures", map[string]string{"namespace": ns}))
}

// TestPipelineRefusingWebhooks: while the metrics pipeline refuses data
// (an exporter queue full, say), every delivery is answered 503 with a
// JSON body, retries of the same deliveries too, since a 2xx must mean the
// pipeline has the data; once it accepts again, the redeliveries get 200
// and each delivery is counted exactly once. (TestWebhookStatuses covers a
// single refused delivery; this is a sustained refusal with retries.)
func TestPipelineRefusingWebhooks(t *testing.T) {
	next := &flakyConsumer{}
	url := startWebhookReceiver(t, next, nil) + "/events"
	now := time.Now().Truncate(time.Second)
	apiSuccess := map[string]string{"namespace": "shop", "deployment": "api", "status": "success"}
	total := func() int64 { v, _ := counterValue(latest(next), "platform.deployments", apiSuccess); return v }

	require.Equal(t, 200, post(t, url, "application/json", deployJSON("base", "success", "r0", now.Add(-time.Hour)), true).status)
	require.EqualValues(t, 1, total())

	next.failing.Store(true)
	const refused = 5
	var bodies [][]byte
	for i := range refused {
		bodies = append(bodies, deployJSON(fmt.Sprintf("refused-%d", i), "success", fmt.Sprintf("r%d", i+1), now.Add(time.Duration(i-refused)*time.Minute)))
	}
	for attempt := range 3 {
		for i, body := range bodies {
			r := post(t, url, "application/json", body, true)
			require.Equal(t, 503, r.status, "attempt %d, delivery %d: %v", attempt, i, r.body)
			assert.Equal(t, "error", r.body["status"])
			assert.Contains(t, r.body["error"], "retry", "attempt %d, delivery %d", attempt, i)
			assert.Equal(t, "5", r.header.Get("Retry-After"))
		}
	}
	assert.EqualValues(t, 1, total(), "nothing reached the pipeline while it refused")

	next.failing.Store(false)
	for i, body := range bodies {
		r := post(t, url, "application/json", body, true)
		require.Equal(t, 200, r.status, "delivery %d after the pipeline recovered: %v", i, r.body)
		// Applied at the first attempt, so the engine knows it.
		assert.EqualValues(t, 1, r.body["duplicates"], "delivery %d", i)
		assert.EqualValues(t, 0, r.body["accepted"], "delivery %d", i)
	}
	require.EqualValues(t, 1+refused, total(), "each refused delivery counted exactly once")

	// Later redeliveries change nothing either.
	for _, body := range bodies {
		require.Equal(t, 200, post(t, url, "application/json", body, true).status)
	}
	require.Equal(t, 200, post(t, url, "application/json", deployJSON("after", "success", "r9", now), true).status)
	assert.EqualValues(t, 2+refused, total())
}

// TestPipelineRefusingRollouts: rollouts that happen while the pipeline
// refuses data are not lost: the receiver keeps them in its state and the
// first emission the pipeline accepts carries them, each counted once.
func TestPipelineRefusingRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries; run through make test")
	}
	t.Parallel()
	cp := localcluster.StartForTest(t, localcluster.Options{})
	c := cluster{t: t, client: cp.Client()}
	const ns = "refusing"
	c.namespace(ns)
	c.create(ns, "api", "registry.local/api:1")
	c.complete(ns, "api")

	cfg := createDefaultConfig()
	cfg.EmitInterval = 200 * time.Millisecond
	kc := cfg.Kubernetes.GetOrInsertDefault()
	kc.AuthType, kc.KubeConfig = "kubeConfig", cp.Kubeconfig
	require.NoError(t, cfg.Validate())
	next := &flakyConsumer{}
	rcv, err := NewFactory().CreateMetrics(context.Background(), storedSettings(), cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), &statusHost{extensionHost: extensionHost{}}))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	waitKubernetesSynced(t, rcv)
	r := &testReceiver{t: t, sink: &next.MetricsSink}
	c.sentinel(r, ns)

	next.failing.Store(true)
	emittedBefore := len(next.AllMetrics())
	c.rollout(ns, "api", "registry.local/api:2")
	c.create(ns, "cart", "registry.local/cart:1")
	c.complete(ns, "cart")
	c.rollout(ns, "api", "registry.local/api:3")
	// The pipeline refuses the emissions that carry them.
	require.Eventually(t, func() bool {
		return next.refusedAny(func(md pmetric.Metrics) bool {
			v, ok := counterValue(md, "platform.deployments", series(ns, "cart", "success"))
			return ok && v == 1
		}) && next.refusedAny(func(md pmetric.Metrics) bool {
			v, ok := counterValue(md, "platform.deployments", series(ns, "api", "success"))
			return ok && v == 2
		})
	}, time.Minute, 10*time.Millisecond, "the rollouts are applied and their emissions refused")
	assert.Equal(t, emittedBefore, len(next.AllMetrics()), "the refusing pipeline took data")

	next.failing.Store(false)
	r.waitValue("platform.deployments", series(ns, "api", "success"), 2)
	r.waitValue("platform.deployments", series(ns, "cart", "success"), 1)
	c.sentinel(r, ns)
	assert.EqualValues(t, 2, r.value("platform.deployments", series(ns, "api", "success")))
	assert.EqualValues(t, 1, r.value("platform.deployments", series(ns, "cart", "success")))
}
