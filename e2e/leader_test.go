package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Short election timings, so that a failover takes seconds.
const (
	e2eLeaseDuration = 2 * time.Second
	e2eRenewDeadline = 1500 * time.Millisecond
	e2eRetryPeriod   = 300 * time.Millisecond
)

// replicaProcess is one otelcol-dora replica with leader election.
type replicaProcess struct {
	id         string
	webhookURL string
	metricsURL string
	p          *collectorProcess
}

// startReplica runs otelcol-dora with the Kubernetes source (watching
// namespace shop), the generic webhook source, leader election on the
// Lease default/otelcol-dora and file_storage on the shared dir.
func startReplica(t *testing.T, bin, kubeconfig, dir, id string) *replicaProcess {
	t.Helper()
	webhookURL, metricsURL, p := storageCollector(t, bin, dir, fmt.Sprintf(`    kubernetes:
      auth_type: kubeConfig
      kubeconfig: %s
      namespaces: [shop]
    snapshot_every: 5
    leader_election:
      lease_namespace: default
      identity: %s
      lease_duration: %s
      renew_deadline: %s
      retry_period: %s
    services:
      - repository: acme/api
        namespace: shop
        deployment: api`, kubeconfig, id, e2eLeaseDuration, e2eRenewDeadline, e2eRetryPeriod))
	return &replicaProcess{id: id, webhookURL: webhookURL, metricsURL: metricsURL, p: p}
}

// health is the receiver's health_path answer; ok is false when the
// replica does not answer.
func (r *replicaProcess) health() (h map[string]any, ok bool) {
	resp, err := http.Get(r.webhookURL + "/health")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&h) != nil {
		return nil, false
	}
	return h, true
}

func (r *replicaProcess) leads() bool {
	h, ok := r.health()
	return ok && h["leader"] == true
}

func (r *replicaProcess) readyStatus(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(r.webhookURL + "/ready")
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// trySend posts a signed generic delivery; err is set when no answer came
// (a killed replica).
func trySend(base string, body []byte) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/events", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(generic.SignatureHeader, "sha256="+webhook.SignHMACSHA256(genericSecret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("answer is not JSON: %s", raw)
	}
	return resp.StatusCode, m, nil
}

func deploymentDelivery(i int, at time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"deployment","id":"ci-%d","time":%q,"repository":"acme/api","environment":"production","status":"success","deployment_id":"ci-%d","revision":"rev%d"}`,
		i, at.UTC().Format(time.RFC3339), i, i)
}

// completeRollout writes the status the Deployment controller writes when
// a rollout of the current generation completes (there is no controller
// manager in this test).
func completeRollout(t *testing.T, client kubernetes.Interface, ns, name string) {
	t.Helper()
	d, err := client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	n := *d.Spec.Replicas
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, AvailableReplicas: n, ReadyReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now}}}
	_, err = client.AppsV1().Deployments(ns).UpdateStatus(context.Background(), d, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// TestLeaderKilled runs two real otelcol-dora replicas on one state
// directory against a real API server. Deliveries go to the leader in a
// steady stream while it is killed with SIGKILL; the follower takes over
// within the lease duration (the figure is logged), restores the state and
// counts the rollout that completed during the failover once. A sender
// retrying every delivery that was not acknowledged (as GitHub's redeliver
// button, Alertmanager or a CI script would) ends with the counters on the
// new leader's Prometheus endpoint equal to the deliveries, exactly.
func TestLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and the control plane; run through make test")
	}
	bin := collectorBinary(t)
	cp := localcluster.StartForTest(t, localcluster.Options{})
	client := cp.Client()
	ctx := context.Background()
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	dir := t.TempDir()

	a := startReplica(t, bin, cp.Kubeconfig, dir, "replica-a")
	require.Eventually(t, a.leads, waitFor, 50*time.Millisecond, "the first replica leads")
	b := startReplica(t, bin, cp.Kubeconfig, dir, "replica-b")
	require.Eventually(t, func() bool {
		h, ok := b.health()
		return ok && h["leader_identity"] == a.id
	}, waitFor, 50*time.Millisecond, "the second replica sees the leader")
	leader, follower := a, b
	assert.False(t, follower.leads())
	assert.Equal(t, http.StatusOK, leader.readyStatus(t))
	assert.Equal(t, http.StatusServiceUnavailable, follower.readyStatus(t))

	// A follower refuses deliveries, retryably, and applies nothing.
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	status, body, err := trySend(follower.webhookURL, deploymentDelivery(0, now))
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, map[string]any{"error": "this replica is not the leader; retry", "leader": leader.id}, body)

	// A rollout the leader counts.
	createDeployment(t, client, "shop", "web", "registry.local/web:1")
	completeRollout(t, client, "shop", "web")
	webSuccess := map[string]string{"namespace": "shop", "deployment": "web", "status": "success"}
	waitMetric(t, leader.metricsURL, "platform_deployments_total", webSuccess, 1)

	// A steady stream of deliveries, as through a Service: to the leader
	// until it is killed, then to the follower (503 until it leads). The
	// leader is killed a third of the way through.
	const total = 150
	acked := make([]bool, total)
	refused := 0
	var mu sync.Mutex
	var target atomic.Value
	target.Store(leader.webhookURL)
	streamed := make(chan struct{})
	killAfter := make(chan struct{})
	go func() {
		defer close(streamed)
		for i := range total {
			if i == total/3 {
				close(killAfter)
			}
			st, b, err := trySend(target.Load().(string), deploymentDelivery(i, now.Add(time.Duration(i)*time.Second)))
			mu.Lock()
			switch {
			case err == nil && st == http.StatusOK && b["accepted"] == float64(1):
				acked[i] = true
			case err == nil && st == http.StatusServiceUnavailable:
				refused++
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	<-killAfter
	leader.p.kill(t)
	killed := time.Now()
	target.Store(follower.webhookURL)
	tookCh := make(chan time.Duration, 1)
	go func() {
		for deadline := killed.Add(waitFor); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if follower.leads() {
				tookCh <- time.Since(killed)
				return
			}
		}
	}()
	// A rollout completes while nobody leads.
	updateDeployment(t, client, "shop", "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "registry.local/web:2" })
	completeRollout(t, client, "shop", "web")

	var took time.Duration
	select {
	case took = <-tookCh:
	case <-time.After(waitFor):
		t.Fatal("the follower never took over")
	}
	t.Logf("takeover after kill -9 of the leader: %s (lease_duration %s, retry_period %s)", took, e2eLeaseDuration, e2eRetryPeriod)
	assert.Less(t, took, 3*e2eLeaseDuration, "the follower takes over about a lease duration after the kill")
	<-streamed
	assert.Equal(t, http.StatusOK, follower.readyStatus(t))

	mu.Lock()
	nAcked := 0
	for _, ok := range acked {
		if ok {
			nAcked++
		}
	}
	mu.Unlock()
	t.Logf("stream: %d of %d deliveries acknowledged, %d refused with 503 during the failover, the rest unanswered (the killed leader)", nAcked, total, refused)
	require.Positive(t, nAcked)
	require.Less(t, nAcked, total, "the kill came in the middle of the stream")

	// The rollout of the failover, counted once by the new leader; the
	// one before it not again.
	waitMetric(t, follower.metricsURL, "platform_deployments_total", webSuccess, 2)

	// Everything acknowledged is on the new leader; what was not may be
	// there too (applied and logged, the answer lost in the kill).
	apiSuccess := map[string]string{"namespace": "shop", "deployment": "api", "status": "success"}
	counted := scrape(t, follower.metricsURL).sum("platform_deployments_total", apiSuccess)
	assert.GreaterOrEqual(t, counted, float64(nAcked), "an acknowledged delivery was lost")
	assert.LessOrEqual(t, counted, float64(total))

	// The sender retries what was not acknowledged, and redelivers the
	// rest: every delivery ends up counted exactly once.
	duplicates := 0
	for i := range total {
		st, b, err := trySend(follower.webhookURL, deploymentDelivery(i, now.Add(time.Duration(i)*time.Second)))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, st, "delivery %d: %v", i, b)
		if acked[i] {
			assert.EqualValues(t, 1, b["duplicates"], "acknowledged delivery %d is recognized", i)
		}
		if b["duplicates"] == float64(1) {
			duplicates++
		}
	}
	t.Logf("retry round: %d duplicates (%d acknowledged before), %d applied now", duplicates, nAcked, total-duplicates)
	waitMetric(t, follower.metricsURL, "platform_deployments_total", apiSuccess, total)
	m := scrape(t, follower.metricsURL)
	assert.Equal(t, float64(total), m.sum("platform_deployments_total", apiSuccess))
	assert.Equal(t, float64(2), m.sum("platform_deployments_total", webSuccess))
	assert.Contains(t, follower.p.log(), "DORA state restored from storage")

	// The Lease taken away (as after a partition): the leader cannot renew,
	// stops at renew_deadline and the collector exits, for Kubernetes to
	// restart it as a follower.
	lease, err := client.CoordinationV1().Leases("default").Get(ctx, "otelcol-dora", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, follower.id, *lease.Spec.HolderIdentity)
	intruder := "intruder"
	lease.Spec.HolderIdentity = &intruder
	_, err = client.CoordinationV1().Leases("default").Update(ctx, lease, metav1.UpdateOptions{})
	require.NoError(t, err)
	taken := time.Now()
	select {
	case <-follower.p.exited:
	case <-time.After(waitFor):
		t.Fatal("the collector that lost the lease did not exit")
	}
	t.Logf("exited %s after the lease was taken (renew_deadline %s)", time.Since(taken), e2eRenewDeadline)
	assert.Contains(t, follower.p.log(), "lost the lease")
}
