package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// TestKubernetesHistoryImport: rollouts made before the binary ever ran are
// read from the Deployment's ReplicaSets at its first start (on by
// default, kubernetes::import_history): the 1-day rolling frequency counts
// them at once, while the deployment counter starts at the first live
// rollout (no jump). A restart on the same storage imports nothing again,
// and a live rollout is counted once in both.
func TestKubernetesHistoryImport(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and the control plane; run through make test")
	}
	bin := collectorBinary(t)
	cp := localcluster.StartForTest(t, localcluster.Options{FakeKubelet: true})
	client := cp.Client()
	ctx := context.Background()
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	// Three rollouts of api before the receiver exists: 1.0, 2.0, 3.0.
	createDeployment(t, client, "shop", "api", "registry.local/api:1.0")
	waitRolledOut(t, client, "shop", "api")
	for _, v := range []string{"2.0", "3.0"} {
		updateDeployment(t, client, "shop", "api", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:" + v
		})
		waitRolledOut(t, client, "shop", "api")
	}

	storage := filepath.Join(t.TempDir(), "storage")
	start := func() (string, *collectorProcess) {
		promAddr, healthAddr, telemetryPort := freeAddr(t), freeAddr(t), freePort(t)
		p := runCollector(t, bin, []string{"--config", filepath.Join("..", "config", "local.yaml")}, []string{
			"DORA_STORAGE_DIR=" + storage,
			"DORA_KUBECONFIG=" + cp.Kubeconfig,
			"DORA_PROMETHEUS_ENDPOINT=" + promAddr,
			"DORA_HEALTH_ENDPOINT=" + healthAddr,
			"DORA_TELEMETRY_PORT=" + strconv.Itoa(telemetryPort),
			"DORA_WEBHOOK_ENDPOINT=" + freeAddr(t),
		}, healthAddr)
		return "http://" + promAddr + "/metrics", p
	}
	freq := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production", "window": "1d"}
	success := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production", "status": "success"}

	url, p := start()
	// The import: three successful production deployments today, over a
	// fully observed day (the history starts at the import window's start).
	waitMetric(t, url, "platform_dora_deployment_frequency_per_day", freq, 3)
	m := scrape(t, url)
	assert.Zero(t, m.sum("platform_deployments_total", success), "imported history is not in the counters")
	assert.Equal(t, 1.0, m.sum("platform_dora_window_coverage_ratio", freq), "the day is observed")

	// A live rollout: counted once, in the counter and in the frequency.
	updateDeployment(t, client, "shop", "api", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:4.0"
	})
	waitMetric(t, url, "platform_deployments_total", success, 1)
	waitMetric(t, url, "platform_dora_deployment_frequency_per_day", freq, 4)

	// A restart on the same storage: the import does not run again, and
	// the first list of the live source counts nothing again.
	p.kill(t)
	url, _ = start()
	waitMetric(t, url, "platform_deployments_total", success, 1)
	waitMetric(t, url, "platform_dora_deployment_frequency_per_day", freq, 4)
	updateDeployment(t, client, "shop", "api", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:5.0"
	})
	waitMetric(t, url, "platform_deployments_total", success, 2)
	waitMetric(t, url, "platform_dora_deployment_frequency_per_day", freq, 5)
}
