package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
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

// TestMulticlusterEndToEnd runs the built otelcol-dora on
// config/multicluster.yaml against three real API servers (etcd and
// kube-apiserver each), with the Deployment shop/api in each: the
// Prometheus endpoint shows each cluster's deployments, failures and lead
// times under its cluster label, one GitHub push meeting the rollouts of
// every cluster that ships it.
func TestMulticlusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and three control planes; run through make test")
	}
	bin := collectorBinary(t)
	names := []string{"eu-1", "us-1", "ap-1"}
	clients := map[string]kubernetes.Interface{}
	env := []string{}
	for i, name := range names {
		cp := localcluster.StartForTest(t, localcluster.Options{})
		clients[name] = cp.Client()
		n := strconv.Itoa(i + 1)
		env = append(env, "DORA_CLUSTER_"+n+"_KUBECONFIG="+cp.Kubeconfig, "DORA_CLUSTER_"+n+"_CONTEXT="+localcluster.ContextName)
		_, err := cp.Client().CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
		require.NoError(t, err)
		// Existing before the collector: not counted.
		createDeployment(t, cp.Client(), "shop", "api", "registry.local/api:1")
		writeRolloutStatus(t, cp.Client(), "shop", "api", "NewReplicaSetAvailable")
	}

	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env = append(env,
		"DORA_STORAGE_DIR="+filepath.Join(t.TempDir(), "storage"),
		"DORA_WEBHOOK_ENDPOINT="+webhookAddr, "DORA_GITHUB_SECRET="+githubSecret,
		"DORA_PROMETHEUS_ENDPOINT="+promAddr, "DORA_HEALTH_ENDPOINT="+healthAddr,
		"DORA_TELEMETRY_PORT="+strconv.Itoa(freePort(t)))
	runCollector(t, bin, []string{"--config", filepath.Join("..", "config", "multicluster.yaml")}, env, healthAddr)
	metricsURL := "http://" + promAddr + "/metrics"
	api := func(cluster string, kv ...string) map[string]string {
		m := map[string]string{"cluster": cluster, "namespace": "shop", "deployment": "api", "environment": "production"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	rollout := func(cluster, image, sha, reason string) {
		t.Helper()
		updateDeployment(t, clients[cluster], "shop", "api", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = image
			d.Spec.Template.Annotations = map[string]string{}
			if sha != "" {
				d.Spec.Template.Annotations["dora.otelcol.dev/commit-sha"] = sha
			}
		})
		writeRolloutStatus(t, clients[cluster], "shop", "api", reason)
	}

	// A first rollout in each cluster starts its history of shop/api.
	for _, name := range names {
		rollout(name, "registry.local/api:2", "", "NewReplicaSetAvailable")
	}
	for _, name := range names {
		waitMetric(t, metricsURL, "platform_deployments_total", api(name, "status", "success"), 1)
	}

	// One push, 90 minutes old: its commit ships in eu-1 and us-1, fails in
	// ap-1.
	const sha = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
	push := fixture(t, "../internal/github/testdata/push.json")
	commit := push["commits"].([]any)[0].(map[string]any)
	commit["id"], commit["timestamp"] = sha, time.Now().Add(-90*time.Minute).UTC().Format(time.RFC3339)
	push["commits"], push["head_commit"], push["after"] = []any{commit}, commit, sha
	r := sendGitHub(t, "http://"+webhookAddr, "push", "push-multicluster", push)
	require.Equal(t, http.StatusOK, r.status, r.body)
	rollout("eu-1", "registry.local/api:3", sha, "NewReplicaSetAvailable")
	rollout("us-1", "registry.local/api:3", sha, "NewReplicaSetAvailable")
	rollout("ap-1", "registry.local/api:3", sha, "ProgressDeadlineExceeded")

	waitMetric(t, metricsURL, "platform_deployments_total", api("eu-1", "status", "success"), 2)
	waitMetric(t, metricsURL, "platform_deployments_total", api("us-1", "status", "success"), 2)
	waitMetric(t, metricsURL, "platform_deployments_total", api("ap-1", "status", "failure"), 1)
	waitMetric(t, metricsURL, "platform_lead_time_seconds_count", api("eu-1"), 1)
	waitMetric(t, metricsURL, "platform_lead_time_seconds_count", api("us-1"), 1)
	m := scrape(t, metricsURL)
	for _, name := range []string{"eu-1", "us-1"} {
		assert.InDelta(t, 90*60, m.sum("platform_lead_time_seconds_sum", api(name)), 120, "%s: lead time is about 90 minutes", name)
		assert.Zero(t, m.sum("platform_deployments_total", api(name, "status", "failure")), name)
	}
	assert.Zero(t, m.sum("platform_lead_time_seconds_count", api("ap-1")), "ap-1's rollout failed")
	assert.Equal(t, 1.0, m.sum("platform_deployments_total", api("ap-1", "status", "success")))
	assert.Equal(t, 1.0, m.sum("platform_deployment_failures_total", map[string]string{"cluster": "ap-1", "deployment": "api", "reason": "ProgressDeadlineExceeded"}))
	assert.Equal(t, 5.0, m.sum("platform_deployments_total", map[string]string{"deployment": "api", "status": "success"}), "nothing outside the three clusters' series")
}

// writeRolloutStatus writes the status the Deployment controller writes for
// the current generation: complete (NewReplicaSetAvailable) or failed
// (ProgressDeadlineExceeded). No controller runs in these API servers.
func writeRolloutStatus(t *testing.T, client kubernetes.Interface, ns, name, reason string) {
	t.Helper()
	ctx := context.Background()
	d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	n := *d.Spec.Replicas
	now := metav1.Now()
	cond := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: reason, LastUpdateTime: now, LastTransitionTime: now}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, AvailableReplicas: n, ReadyReplicas: n}
	if reason == "ProgressDeadlineExceeded" {
		cond.Status = corev1.ConditionFalse
		d.Status.UpdatedReplicas, d.Status.AvailableReplicas = 0, n
	}
	d.Status.Conditions = []appsv1.DeploymentCondition{cond}
	_, err = client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
}
