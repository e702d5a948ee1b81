package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// startGatewayReplica runs config/gateway.yaml with leader election (the
// Lease default/otelcol-dora on kubeconfig's API server) and its state in
// the shared storage directory, as one of two replicas.
func startGatewayReplica(t *testing.T, bin, kubeconfig, storage, id string) (webhookAddr, promAddr string, p *collectorProcess) {
	g := newGatewayEnv(t)
	g.storage = storage
	extra := filepath.Join(t.TempDir(), "leader.yaml")
	require.NoError(t, os.WriteFile(extra, fmt.Appendf(nil, `receivers:
  dora:
    leader_election:
      auth_type: kubeConfig
      kubeconfig: %s
      lease_namespace: default
      identity: %s
      lease_duration: %s
      renew_deadline: %s
      retry_period: %s
extensions:
  file_storage/dora:
    # The next leader waits this long for the old one's lock.
    timeout: 10s
`, kubeconfig, id, e2eLeaseDuration, e2eRenewDeadline, e2eRetryPeriod), 0o600))
	p = runCollector(t, bin, []string{"--config", filepath.Join("..", "config", "gateway.yaml"), "--config", extra}, []string{
		"DORA_WEBHOOK_ENDPOINT=" + g.webhookAddr, "DORA_GRPC_ENDPOINT=" + g.grpcAddr,
		"DORA_PROMETHEUS_ENDPOINT=" + g.promAddr, "DORA_HEALTH_ENDPOINT=" + g.healthAddr,
		"DORA_TELEMETRY_PORT=" + strconv.Itoa(g.telemetryPort), "DORA_STORAGE_DIR=" + g.storage,
		"DORA_GITHUB_SECRET=" + githubSecret, "DORA_WEBHOOK_SECRET=" + genericSecret,
		"DORA_ALERTMANAGER_TOKEN=e2e-alertmanager-token", "DORA_AGENT_TOKEN=" + agentToken,
	}, g.healthAddr)
	return g.webhookAddr, g.promAddr, p
}

// TestGatewayLeaderKilled: two gateway replicas with leader election on one
// state, behind a proxy that sends to the ready one (as a Service does
// with the ready_path readinessProbe); an agent forwards a mass rollout;
// the leader is killed (SIGKILL) in the middle. The follower takes over
// and every rollout is counted once.
func TestGatewayLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and the control plane; run through make test")
	}
	const services, rounds = 6, 3
	bin := collectorBinary(t)
	cp := localcluster.StartForTest(t, localcluster.Options{FakeKubelet: true})
	client := cp.Client()
	_, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	storage := filepath.Join(t.TempDir(), "gateway")
	type replica struct {
		webhook, prom string
		p             *collectorProcess
	}
	var replicas [2]replica
	for i := range replicas {
		w, m, p := startGatewayReplica(t, bin, cp.Kubeconfig, storage, fmt.Sprintf("gateway-%d", i))
		replicas[i] = replica{w, m, p}
	}
	ready := func(r replica) bool {
		resp, err := http.Get("http://" + r.webhook + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	// The Service: to the ready replica; none ready is a 503 (retried).
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, rep := range replicas {
			if ready(rep) {
				u, _ := url.Parse("http://" + rep.webhook)
				httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
				return
			}
		}
		http.Error(w, "no ready replica", http.StatusServiceUnavailable)
	}))
	t.Cleanup(proxy.Close)
	startAgent(t, bin, "eu-1", cp.Kubeconfig, proxy.URL)

	leader := func() int {
		for i, rep := range replicas {
			if ready(rep) {
				return i
			}
		}
		return -1
	}
	require.Eventually(t, func() bool { return leader() >= 0 }, 30*time.Second, 100*time.Millisecond)

	name := func(i int) string { return fmt.Sprintf("svc-%d", i) }
	for i := range services {
		createDeployment(t, client, "shop", name(i), "registry.local/svc:1")
	}
	for i := range services {
		waitRolledOut(t, client, "shop", name(i))
	}
	killed := -1
	for r := 2; r < 2+rounds; r++ {
		for i := range services {
			updateDeployment(t, client, "shop", name(i), func(d *appsv1.Deployment) {
				d.Spec.Template.Spec.Containers[0].Image = fmt.Sprintf("registry.local/svc:%d", r)
			})
		}
		if r == 2 {
			killed = leader()
			require.GreaterOrEqual(t, killed, 0)
			replicas[killed].p.kill(t)
		}
		for i := range services {
			waitRolledOut(t, client, "shop", name(i))
		}
	}
	survivor := replicas[1-killed]
	require.Eventually(t, func() bool { return ready(survivor) }, 30*time.Second, 100*time.Millisecond, "the follower took over")
	metricsURL := "http://" + survivor.prom + "/metrics"
	want := float64(1 + rounds)
	for i := range services {
		waitMetric(t, metricsURL, "platform_deployments_total",
			map[string]string{"deployment": name(i), "cluster": "eu-1", "status": "success"}, want)
	}
	time.Sleep(5 * time.Second)
	m := scrape(t, metricsURL)
	for i := range services {
		assert.Equal(t, want, m.sum("platform_deployments_total", map[string]string{"deployment": name(i), "cluster": "eu-1", "status": "success"}),
			"%s: every rollout once (lost 0, duplicated 0)", name(i))
	}
}
