package dorareceiver

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// Short timings so that a takeover takes seconds; their relations are
// client-go's.
var testElection = LeaderElectionConfig{
	LeaseName: "otelcol-dora", LeaseNamespace: "default",
	LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond,
}

// fatal is the first fatal error the receiver reported, if any.
func (h *statusHost) fatal() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range h.events {
		if ev.Status() == componentstatus.StatusFatalError {
			return ev.Err()
		}
	}
	return nil
}

// electedReplica is one replica of the collector: a dora receiver with
// Kubernetes, webhooks and leader election, and its own instance of the
// real file_storage extension on the directory every replica shares.
type electedReplica struct {
	*testReceiver
	id   string
	base string
	rcv  *doraReceiver
	host *statusHost
}

func startElectedReplica(t *testing.T, kubeconfig, dir, id string) *electedReplica {
	t.Helper()
	fsFactory := filestorage.NewFactory()
	fsCfg := fsFactory.CreateDefaultConfig().(*filestorage.Config)
	fsCfg.Directory = dir
	// A new leader waits this long for the old one's file lock.
	fsCfg.Timeout = 10 * time.Second
	ext, err := fsFactory.Create(context.Background(), extensiontest.NewNopSettings(fsFactory.Type()), fsCfg)
	require.NoError(t, err)
	host := &statusHost{extensionHost: extensionHost{storageID: ext}}
	require.NoError(t, ext.Start(context.Background(), host))
	t.Cleanup(func() { assert.NoError(t, ext.Shutdown(context.Background())) })

	cfg := createDefaultConfig()
	kc := cfg.Kubernetes.GetOrInsertDefault()
	kc.AuthType = k8s.AuthTypeKubeConfig
	kc.KubeConfig = kubeconfig
	kc.Namespaces = []string{"shop"}
	sid := storageID
	cfg.Storage = &sid
	le := testElection
	le.Identity = id
	cfg.LeaderElection = configoptional.Some(le)
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	cfg.Services = []ServiceMapping{{Repository: "acme/api", Namespace: "shop", Deployment: "api"}}
	require.NoError(t, cfg.Validate())

	sink := new(consumertest.MetricsSink)
	rcv, err := NewFactory().CreateMetrics(context.Background(), storedSettings(), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host))
	var once sync.Once
	stop := func() { once.Do(func() { require.NoError(t, rcv.Shutdown(context.Background())) }) }
	t.Cleanup(stop)
	return &electedReplica{
		testReceiver: &testReceiver{t: t, sink: sink, stop: stop},
		id:           id,
		base:         "http://" + wc.ServerConfig.NetAddr.Endpoint,
		rcv:          rcv.(*shared).doraReceiver,
		host:         host,
	}
}

func (r *electedReplica) leads() bool { return r.rcv.isLeader.Load() }

// waitSynced waits until the leader's Kubernetes source listed the
// cluster, so a test knows which side of the list a change lands on.
func (r *electedReplica) waitSynced(t *testing.T) {
	t.Helper()
	r.rcv.leadMu.Lock()
	var src *k8s.Source
	for _, s := range r.rcv.sources {
		if ks, ok := s.(*k8s.Source); ok {
			src = ks
		}
	}
	r.rcv.leadMu.Unlock()
	require.NotNil(t, src, "%s leads without a Kubernetes source", r.id)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.True(t, src.WaitForSync(ctx))
}

func (r *electedReplica) get(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(r.base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return resp.StatusCode, m
}

// TestLeaderElectionWithSharedStorage runs two replicas against a real API
// server and one file_storage directory: one leads, the other answers 503
// and emits nothing; when the leader shuts down the follower takes over,
// restores what the first wrote and counts nothing twice, including a
// rollout that completed between the two.
func TestLeaderElectionWithSharedStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries; run through make test")
	}
	cp := localcluster.StartForTest(t, localcluster.Options{})
	c := cluster{t: t, client: cp.Client()}
	c.namespace("shop")
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)

	a := startElectedReplica(t, cp.Kubeconfig, dir, "replica-a")
	b := startElectedReplica(t, cp.Kubeconfig, dir, "replica-b")

	// Never two leaders at once, whatever happens below.
	var twoLeaders atomic.Bool
	stopWatch, watchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
				if a.leads() && b.leads() {
					twoLeaders.Store(true)
				}
			}
		}
	}()
	defer func() { close(stopWatch); <-watchDone; assert.False(t, twoLeaders.Load(), "two replicas led at once") }()

	require.Eventually(t, func() bool { return a.leads() != b.leads() }, waitFor, 10*time.Millisecond, "exactly one leader")
	leader, follower := a, b
	if b.leads() {
		leader, follower = b, a
	}
	t.Logf("%s leads, %s follows", leader.id, follower.id)
	leader.waitSynced(t)

	// Health tells every replica who leads; ready is the leader only.
	require.Eventually(t, func() bool {
		_, h := follower.get(t, "/health")
		return h["leader_identity"] == leader.id
	}, waitFor, 10*time.Millisecond)
	status, h := follower.get(t, "/health")
	assert.Equal(t, http.StatusOK, status, "the follower is alive")
	assert.Equal(t, map[string]any{"status": "ok", "leader": false, "identity": follower.id, "leader_identity": leader.id}, h)
	status, h = leader.get(t, "/health")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, true, h["leader"])
	status, _ = leader.get(t, "/ready")
	assert.Equal(t, http.StatusOK, status)
	status, body := follower.get(t, "/ready")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, leader.id, body["leader"])

	// A delivery to the follower is refused, retryable, and not applied.
	refused := post(t, follower.base+"/events", "application/json", history(now)[0], true)
	assert.Equal(t, http.StatusServiceUnavailable, refused.status)
	assert.Equal(t, map[string]any{"error": "this replica is not the leader; retry", "leader": leader.id}, refused.body)
	assert.Equal(t, "2", refused.header.Get("Retry-After"), "the lease duration, rounded up")

	// The leader counts the deliveries and a rollout.
	for i, d := range history(now) {
		r := post(t, leader.base+"/events", "application/json", d, true)
		require.Equal(t, http.StatusOK, r.status, "delivery %d: %v", i, r.body)
		require.EqualValues(t, 1, r.body["accepted"], "delivery %d", i)
	}
	c.create("shop", "web", "registry.local/web:1")
	c.complete("shop", "web")
	leader.waitValue("platform.deployments", series("shop", "web", "success"), 1)
	leader.waitValue("platform.deployments", series("shop", "api", "success"), 2)
	assert.EqualValues(t, 1, leader.value("platform.deployments", series("shop", "api", "failure")))
	assert.Empty(t, follower.sink.AllMetrics(), "a follower emits nothing")

	// The leader shuts down: it saves the state, closes the storage, then
	// releases the lease. A rollout completes before the follower leads.
	stopped := time.Now()
	leader.stop()
	c.setImage("shop", "web", "registry.local/web:2")
	c.complete("shop", "web")
	require.Eventually(t, follower.leads, testElection.LeaseDuration+2*testElection.RetryPeriod+5*time.Second, 10*time.Millisecond,
		"the follower takes over")
	t.Logf("takeover after a clean shutdown: %s (lease duration %s)", time.Since(stopped), testElection.LeaseDuration)
	follower.waitSynced(t)

	// The new leader restored the first one's state and counted the
	// rollout of the failover once; nothing counted twice.
	follower.waitValue("platform.deployments", series("shop", "web", "success"), 2)
	c.sentinel(follower.testReceiver, "shop")
	assert.EqualValues(t, 2, follower.value("platform.deployments", series("shop", "web", "success")))
	assert.EqualValues(t, 2, follower.value("platform.deployments", series("shop", "api", "success")))
	assert.EqualValues(t, 1, follower.value("platform.deployments", series("shop", "api", "failure")))
	assert.EqualValues(t, 2, follower.histogramCount("platform.lead_time", map[string]string{"namespace": "shop", "deployment": "api"}))
	// A sender retrying what the old leader acknowledged: a duplicate.
	r := post(t, follower.base+"/events", "application/json", history(now)[3], true)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.EqualValues(t, 1, r.body["duplicates"])
	status, _ = follower.get(t, "/ready")
	assert.Equal(t, http.StatusOK, status)

	// Someone else takes the Lease (as a partition would let a follower
	// do): the leader cannot renew, stops at renew_deadline, reports a
	// fatal status so the collector exits, and refuses deliveries.
	lease, err := cp.Client().CoordinationV1().Leases("default").Get(context.Background(), "otelcol-dora", metav1.GetOptions{})
	require.NoError(t, err)
	intruder := "intruder"
	lease.Spec.HolderIdentity = &intruder
	renewed := metav1.NewMicroTime(time.Now().Add(time.Hour))
	lease.Spec.RenewTime = &renewed
	_, err = cp.Client().CoordinationV1().Leases("default").Update(context.Background(), lease, metav1.UpdateOptions{})
	require.NoError(t, err)
	taken := time.Now()
	require.Eventually(t, func() bool { return !follower.leads() }, testElection.RenewDeadline+2*time.Second, 10*time.Millisecond)
	t.Logf("stepped down %s after the lease was taken (renew deadline %s)", time.Since(taken), testElection.RenewDeadline)
	require.Eventually(t, func() bool { return follower.host.fatal() != nil }, 5*time.Second, 10*time.Millisecond)
	assert.ErrorContains(t, follower.host.fatal(), "lost the lease")
	emissions := len(follower.sink.AllMetrics())
	r = post(t, follower.base+"/events", "application/json", deployJSON("d9", "success", "r9", now), true)
	assert.Equal(t, http.StatusServiceUnavailable, r.status, r.body)
	// The fatal status is reported after the step-down has stopped the
	// emission loop: nothing can be emitted after it.
	assert.Equal(t, emissions, len(follower.sink.AllMetrics()), "a replica that lost the lease emits nothing")
}

// TestSingleReplicaIsReady: without leader_election the one replica leads
// from the start: ready_path answers 200 and health says leader.
func TestSingleReplicaIsReady(t *testing.T) {
	base := startWebhookReceiver(t, &flakyConsumer{}, nil)
	for path, want := range map[string]map[string]any{
		"/ready":  {"status": "ready"},
		"/health": {"status": "ok", "leader": true},
	} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		var got map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, want, got, path)
	}
}
