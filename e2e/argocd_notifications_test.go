package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

var (
	crds         = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	applications = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
)

// TestArgoCDNotificationsEngine sends Argo CD syncs to the real otelcol-dora
// with Argo CD's own notifications engine (tools/argocdnotify, which `make
// tools` builds, wired as Argo CD's notifications controller is): the documented
// argocd-notifications-cm (internal/argocd/testdata, kept equal to
// docs/sources/argocd.md by a test) and its Secret on a real kube-apiserver,
// an Application object of the Argo CD CRD going through a successful sync,
// a failed sync and a sync that turns Degraded. The engine evaluates the
// documented triggers, renders the documented templates and posts them with
// its webhook service; the first post's answer is lost (503) and the
// service's own retry is counted once.
func TestArgoCDNotificationsEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary, the API server and the notifications engine; run through make test")
	}
	sender := toolBinary(t, "argocdnotify")
	cluster := localcluster.StartForTest(t, localcluster.Options{})
	base, metricsURL := sendersCollector(t)
	proxy := startLostAnswerProxy(t, base, 1)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cluster.RESTConfig())
	require.NoError(t, err)

	applyApplicationCRD(t, dyn)
	_, err = cluster.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	// The documented ConfigMap, its url pointed at the receiver (through
	// the proxy), and the token in the Secret.
	raw, err := os.ReadFile("../internal/argocd/testdata/argocd-notifications-cm.yaml")
	require.NoError(t, err)
	var cm corev1.ConfigMap
	require.NoError(t, yaml.Unmarshal(raw, &cm))
	const documentedURL = "http://otelcol-dora.observability.svc:8088"
	require.Contains(t, cm.Data["service.webhook.dora"], documentedURL)
	cm.Data["service.webhook.dora"] = strings.Replace(cm.Data["service.webhook.dora"], documentedURL, proxy.URL, 1)
	_, err = cluster.Client().CoreV1().ConfigMaps("argocd").Create(ctx, &cm, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client().CoreV1().Secrets("argocd").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "argocd-notifications-secret", Namespace: "argocd"},
		StringData: map[string]string{"dora-webhook-token": argocdToken},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	startProcess(t, "argocd-notifications", sender, "-kubeconfig", cluster.Kubeconfig, "-namespace", "argocd")

	// The Application api, as Argo CD leaves it after each operation
	// (internal/argocd/testdata), at today's times; reconciledAt after the
	// operation, as Argo CD's refresh sets it.
	now := time.Now().UTC().Truncate(time.Second)
	apps := dyn.Resource(applications).Namespace("argocd")
	stamp := func(status map[string]any, started, finished time.Time, healthAt time.Time) map[string]any {
		op := status["operationState"].(map[string]any)
		op["startedAt"], op["finishedAt"] = started.Format(time.RFC3339), finished.Format(time.RFC3339)
		status["health"].(map[string]any)["lastTransitionTime"] = healthAt.Format(time.RFC3339)
		status["reconciledAt"] = now.Format(time.RFC3339)
		return status
	}
	setStatus := func(status map[string]any) {
		t.Helper()
		require.Eventually(t, func() bool {
			app, err := apps.Get(ctx, "api", metav1.GetOptions{})
			require.NoError(t, err)
			app.Object["status"] = status
			_, err = apps.Update(ctx, app, metav1.UpdateOptions{})
			return err == nil // a conflict with the engine's annotation patch: retry
		}, 10*time.Second, 50*time.Millisecond)
	}
	svc := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production"}

	// 1. A successful sync of 9f86d08.
	synced := argocdFixture(t, "application-synced.json")
	syncedStart, syncedEnd := now.Add(-30*time.Minute), now.Add(-29*time.Minute)
	synced["status"] = stamp(synced["status"].(map[string]any), syncedStart, syncedEnd, syncedEnd)
	_, err = apps.Create(ctx, &unstructured.Unstructured{Object: synced}, metav1.CreateOptions{})
	require.NoError(t, err)
	waitMetric(t, metricsURL, "platform_deployments_total", with(svc, "status", "success"), 1)
	require.Eventually(t, func() bool { return len(proxy.exchanges()) == 2 }, 30*time.Second, 100*time.Millisecond, "%s", proxy)
	ex := proxy.exchanges()
	assert.Equal(t, http.StatusServiceUnavailable, ex[0].Answered)
	assertAnswer(t, ex[0].UpstreamBody, 1, 0)
	assertAnswer(t, ex[1].UpstreamBody, 0, 1)

	// 2. A failed sync of 1c5e7d2.
	failed := argocdFixture(t, "application-sync-failed.json")
	failedStart, failedEnd := now.Add(-20*time.Minute), now.Add(-18*time.Minute)
	setStatus(stamp(failed["status"].(map[string]any), failedStart, failedEnd, syncedEnd))
	waitMetric(t, metricsURL, "platform_deployment_failures_total", with(svc, "reason", "SyncFailed"), 1)

	// 3. A successful sync of 7d1a0e4 that turns Degraded a minute later:
	// both triggers fire on the same object.
	degraded := argocdFixture(t, "application-degraded.json")
	degradedStart, degradedEnd, degradedAt := now.Add(-10*time.Minute), now.Add(-9*time.Minute), now.Add(-8*time.Minute)
	setStatus(stamp(degraded["status"].(map[string]any), degradedStart, degradedEnd, degradedAt))
	waitMetric(t, metricsURL, "platform_deployment_failures_total", with(svc, "reason", "HealthDegraded"), 1)
	require.Eventually(t, func() bool { return len(proxy.exchanges()) == 5 }, 30*time.Second, 100*time.Millisecond, "%s", proxy)

	// An Argo CD refresh of the same state sends nothing again (the engine
	// records what it sent on the Application, once per revision).
	app, err := apps.Get(ctx, "api", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotEmpty(t, app.GetAnnotations()["notified.notifications.argoproj.io"], "the engine's record of what it sent")
	status := app.Object["status"].(map[string]any)
	status["reconciledAt"] = time.Now().UTC().Format(time.RFC3339)
	setStatus(status)
	time.Sleep(2 * time.Second)

	ex = proxy.exchanges()
	require.Len(t, ex, 5, "the lost answer, its retry, sync-failed, sync-succeeded and health-degraded:\n%s", proxy)
	events := map[string]int{}
	for _, e := range ex {
		assert.Equal(t, "/webhooks/argocd", e.Path)
		assert.Equal(t, "application/json", e.Header.Get("Content-Type"))
		assert.Equal(t, "Bearer "+argocdToken, e.Header.Get("Authorization"))
		assert.Equal(t, http.StatusOK, e.Upstream, "%s", e.UpstreamBody)
		var body map[string]any
		require.NoError(t, json.Unmarshal(e.Body, &body), "the template renders JSON: %s", e.Body)
		events[body["event"].(string)]++
		assert.Equal(t, "api", body["app"])
		assert.Equal(t, "shop", body["namespace"])
		assert.Equal(t, "production", body["environment"])
		assert.Equal(t, "https://github.com/acme/api.git", body["repo"])
	}
	assert.Equal(t, map[string]int{"sync-succeeded": 3, "sync-failed": 1, "health-degraded": 1}, events)

	m := scrape(t, metricsURL)
	// Three syncs, three deployments: the first succeeded, the second
	// failed, the third succeeded and then failed (HealthDegraded), which
	// the counter records as it saw it first.
	assert.Equal(t, 3.0, m.sum("platform_deployments_total", svc), "three deployments")
	assert.Equal(t, 2.0, m.sum("platform_deployment_failures_total", svc), "two change failures")
	// The failed sync recovered when the next sync succeeded.
	assert.Equal(t, 1.0, m.sum("platform_recovery_time_seconds_count", svc))
	assert.InDelta(t, degradedEnd.Sub(failedEnd).Seconds(), m.sum("platform_recovery_time_seconds_sum", svc), 0.001)
}

// applyApplicationCRD creates the Application CRD of Argo CD's release
// manifests (testdata/argocd/README.md) and waits until it is served.
func applyApplicationCRD(t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	raw, err := os.ReadFile("testdata/argocd/application-crd.yaml")
	require.NoError(t, err)
	var crd map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &crd))
	_, err = dyn.Resource(crds).Create(context.Background(), &unstructured.Unstructured{Object: crd}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := dyn.Resource(crds).Get(context.Background(), "applications.argoproj.io", metav1.GetOptions{})
		require.NoError(t, err)
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			c := c.(map[string]any)
			if c["type"] == "Established" && c["status"] == "True" {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "the Application CRD was never established")
}

// argocdFixture is an Application of internal/argocd/testdata without the
// fields the API server sets and the engine's record of earlier sends.
func argocdFixture(t *testing.T, name string) map[string]any {
	t.Helper()
	app := fixture(t, filepath.Join("../internal/argocd/testdata", name))
	meta := app["metadata"].(map[string]any)
	for _, k := range []string{"uid", "resourceVersion", "generation", "creationTimestamp", "finalizers", "annotations"} {
		delete(meta, k)
	}
	return app
}
