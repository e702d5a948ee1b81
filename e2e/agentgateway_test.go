package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

const agentToken = "e2e-agent-token"

// gatewayEnv is the environment of config/gateway.yaml for one gateway on
// fixed addresses (so that a restarted gateway is where the agents send).
type gatewayEnv struct {
	webhookAddr, grpcAddr, promAddr, healthAddr string
	telemetryPort                               int
	storage                                     string
}

func newGatewayEnv(t *testing.T) gatewayEnv {
	return gatewayEnv{webhookAddr: freeAddr(t), grpcAddr: freeAddr(t), promAddr: freeAddr(t), healthAddr: freeAddr(t),
		telemetryPort: freePort(t), storage: filepath.Join(t.TempDir(), "gateway")}
}

func (g gatewayEnv) start(t *testing.T, bin string) *collectorProcess {
	return runCollector(t, bin, []string{"--config", filepath.Join("..", "config", "gateway.yaml")}, []string{
		"DORA_WEBHOOK_ENDPOINT=" + g.webhookAddr, "DORA_GRPC_ENDPOINT=" + g.grpcAddr,
		"DORA_PROMETHEUS_ENDPOINT=" + g.promAddr, "DORA_HEALTH_ENDPOINT=" + g.healthAddr,
		"DORA_TELEMETRY_PORT=" + strconv.Itoa(g.telemetryPort), "DORA_STORAGE_DIR=" + g.storage,
		"DORA_GITHUB_SECRET=" + githubSecret, "DORA_WEBHOOK_SECRET=" + genericSecret,
		"DORA_ALERTMANAGER_TOKEN=e2e-alertmanager-token", "DORA_AGENT_TOKEN=" + agentToken,
	}, g.healthAddr)
}

// startAgent runs config/agent.yaml for cluster name on kubeconfig,
// sending to the gateway's OTLP/HTTP endpoint.
func startAgent(t *testing.T, bin, name, kubeconfig, gatewayURL string) *collectorProcess {
	return startAgentOn(t, bin, name, kubeconfig, gatewayURL, filepath.Join(t.TempDir(), "agent-"+name))
}

// startAgentOn is startAgent with its state and queue in storage.
func startAgentOn(t *testing.T, bin, name, kubeconfig, gatewayURL, storage string) *collectorProcess {
	health := freeAddr(t)
	return runCollector(t, bin, []string{"--config", filepath.Join("..", "config", "agent.yaml")}, []string{
		"DORA_CLUSTER=" + name, "DORA_K8S_AUTH=kubeConfig", "DORA_KUBECONFIG=" + kubeconfig,
		"DORA_GATEWAY_ENDPOINT=" + gatewayURL, "DORA_GATEWAY_TOKEN=" + agentToken,
		"DORA_HEALTH_ENDPOINT=" + health, "DORA_TELEMETRY_PORT=" + strconv.Itoa(freePort(t)),
		"DORA_STORAGE_DIR=" + storage,
	}, health)
}

// rollOut changes the api Deployment's image (and the commit it ships,
// when sha is set) and waits until the rollout completed.
func rollOut(t *testing.T, client kubernetes.Interface, image, sha string) {
	updateDeployment(t, client, "shop", "api", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = image
		if sha != "" {
			d.Spec.Template.Annotations = map[string]string{"dora.otelcol.dev/commit-sha": sha}
		}
	})
	waitRolledOut(t, client, "shop", "api")
}

// TestAgentsAndGateway: three real control planes (each with its
// controller-manager and fake kubelet), an agent binary in each
// (config/agent.yaml: its exporter's sending_queue on file_storage), one
// gateway binary (config/gateway.yaml). A commit pushed once to the
// gateway (signed GitHub webhook) ships in every cluster: one lead time
// per cluster; an incident naming the service but no cluster is counted
// once, in the cluster whose deployment came last. Then the gateway is
// stopped for 60 s while every cluster rolls out three times and started
// again on its storage: the agents' queues deliver, every rollout is
// counted once per cluster (lost 0, duplicated 0).
func TestAgentsAndGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and the control plane; run through make test")
	}
	bin := collectorBinary(t)
	clusters := []string{"eu-1", "us-1", "ap-1"}
	planes := make([]*localcluster.Cluster, len(clusters))
	for i := range clusters {
		planes[i] = localcluster.StartForTest(t, localcluster.Options{FakeKubelet: true})
	}
	ctx := context.Background()
	clients := make([]kubernetes.Interface, len(clusters))
	for i, p := range planes {
		clients[i] = p.Client()
		_, err := clients[i].CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	gw := newGatewayEnv(t)
	gateway := gw.start(t, bin)
	metricsURL := "http://" + gw.promAddr + "/metrics"
	for i, name := range clusters {
		startAgent(t, bin, name, planes[i].Kubeconfig, "http://"+gw.webhookAddr)
	}

	success := func(cluster string) map[string]string {
		return map[string]string{"namespace": "shop", "deployment": "api", "environment": "production", "status": "success", "cluster": cluster}
	}
	// 1. A new service in every cluster: one deployment each.
	for i := range clusters {
		createDeployment(t, clients[i], "shop", "api", "registry.local/api:1.0")
	}
	for _, c := range clusters {
		waitMetric(t, metricsURL, "platform_deployments_total", success(c), 1)
	}

	// 2. One push, 90 minutes ago, shipped in each cluster in turn.
	const sha = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	push := fixture(t, "../internal/github/testdata/push.json")
	commit := push["commits"].([]any)[0].(map[string]any)
	commit["id"], commit["timestamp"] = sha, time.Now().Add(-90*time.Minute).UTC().Format(time.RFC3339)
	push["commits"], push["head_commit"], push["after"] = []any{commit}, commit, sha
	r := sendGitHub(t, "http://"+gw.webhookAddr, "push", "push-agents", push)
	require.Equal(t, http.StatusOK, r.status, r.body)
	for i, c := range clusters {
		rollOut(t, clients[i], "registry.local/api:2.0", sha)
		waitMetric(t, metricsURL, "platform_deployments_total", success(c), 2)
	}
	m := scrape(t, metricsURL)
	for _, c := range clusters {
		lead := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production", "cluster": c}
		assert.Equal(t, 1.0, m.sum("platform_lead_time_seconds_count", lead), "%s: one lead time for its production deployment", c)
		assert.InDelta(t, 90*60, m.sum("platform_lead_time_seconds_sum", lead), 300, "%s: from the one push", c)
	}
	assert.Zero(t, m.sum("platform_deployments_total", map[string]string{"cluster": ""}), "every deployment has its cluster")

	// 3. An incident naming the service, not a cluster: counted once, in
	// ap-1 (the latest deployment), attributed. (Its time is in whole
	// seconds: a second later than ap-1's rollout, not in the same one.)
	time.Sleep(1100 * time.Millisecond)
	incident := fmt.Appendf(nil, `{"type":"incident","id":"inc-1-opened","time":%q,"service":"api","namespace":"shop","environment":"production","incident_id":"inc-1","state":"opened"}`,
		time.Now().UTC().Format(time.RFC3339))
	for range 2 { // the second is a redelivery
		a := sendGeneric(t, "http://"+gw.webhookAddr, incident)
		require.Equal(t, http.StatusOK, a.status, a.body)
	}
	waitMetric(t, metricsURL, "platform_incidents_total", map[string]string{"cluster": "ap-1", "attributed": "true"}, 1)
	m = scrape(t, metricsURL)
	assert.Equal(t, 1.0, m.sum("platform_incidents_total", nil), "the incident is counted once")
	assert.Equal(t, 1.0, m.sum("platform_deployment_failures_total", map[string]string{"cluster": "ap-1", "reason": "incident"}))

	// 4. The gateway stopped for 60 s while every cluster rolls out three
	// times; the agents queue on file_storage.
	require.NoError(t, gateway.cmd.Process.Signal(syscall.SIGTERM))
	<-gateway.exited
	stopped := time.Now()
	var rwg sync.WaitGroup
	for i := range clusters {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for v := 3; v <= 5; v++ {
				rollOut(t, clients[i], fmt.Sprintf("registry.local/api:%d.0", v), "")
			}
		}()
	}
	rwg.Wait()
	time.Sleep(time.Until(stopped.Add(60 * time.Second)))
	gw.start(t, bin)
	for _, c := range clusters {
		waitMetric(t, metricsURL, "platform_deployments_total", success(c), 5)
	}
	// Nothing more arrives late: the counts stay.
	time.Sleep(5 * time.Second)
	m = scrape(t, metricsURL)
	for _, c := range clusters {
		assert.Equal(t, 5.0, m.sum("platform_deployments_total", success(c)), "%s: every rollout once (lost 0, duplicated 0)", c)
		assert.Zero(t, m.sum("platform_deployments_total", with(success(c), "status", "failure")), c)
	}
	assert.Equal(t, 1.0, m.sum("platform_incidents_total", nil), "the incident still once")
}

// TestAgentKilledDuringRollouts: an agent killed with SIGKILL (by PID) in
// the middle of a mass rollout of its cluster and started again on its
// storage: every rollout is counted once at the gateway. What it had
// queued on file_storage is delivered, what it had not acknowledged is
// derived again from the cluster, and the gateway drops what arrives twice.
func TestAgentKilledDuringRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and the control plane; run through make test")
	}
	const services, rounds = 8, 3
	bin := collectorBinary(t)
	cp := localcluster.StartForTest(t, localcluster.Options{FakeKubelet: true})
	client := cp.Client()
	_, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	gw := newGatewayEnv(t)
	gw.start(t, bin)
	metricsURL := "http://" + gw.promAddr + "/metrics"
	storage := filepath.Join(t.TempDir(), "agent")
	agent := startAgentOn(t, bin, "eu-1", cp.Kubeconfig, "http://"+gw.webhookAddr, storage)

	name := func(i int) string { return fmt.Sprintf("svc-%d", i) }
	for i := range services {
		createDeployment(t, client, "shop", name(i), "registry.local/svc:1")
	}
	for i := range services {
		waitRolledOut(t, client, "shop", name(i))
	}
	// The mass rollout: every Deployment, rounds times; the agent is killed
	// once the first round's updates are written, and started again at
	// once (as Kubernetes restarts a pod), while they roll out.
	for r := 2; r < 2+rounds; r++ {
		for i := range services {
			updateDeployment(t, client, "shop", name(i), func(d *appsv1.Deployment) {
				d.Spec.Template.Spec.Containers[0].Image = fmt.Sprintf("registry.local/svc:%d", r)
			})
		}
		if r == 2 {
			agent.kill(t)
			startAgentOn(t, bin, "eu-1", cp.Kubeconfig, "http://"+gw.webhookAddr, storage)
		}
		for i := range services {
			waitRolledOut(t, client, "shop", name(i))
		}
	}
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
	assert.Equal(t, want*services, m.sum("platform_deployments_total", nil))
}
