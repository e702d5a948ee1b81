package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
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

// TestProgressiveDeliveryEndToEnd runs bin/otelcol-dora with the
// argo_rollouts and flagger sections against a real kube-apiserver with
// Argo Rollouts' and Flagger's released CRDs: an Argo Rollouts canary
// aborted by its analysis, then undone, and a Flagger canary whose analysis
// fails, then the fix promoted. The statuses are written as the controllers
// write them (see receiver_progressive_test.go and the testdata READMEs).
// Prometheus must show the failures by their canary reasons.
func TestProgressiveDeliveryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and the control plane; run through make test")
	}
	bin := collectorBinary(t)
	cp := localcluster.StartForTest(t, localcluster.Options{})
	dyn, err := dynamic.NewForConfig(cp.RESTConfig())
	require.NoError(t, err)
	ctx := context.Background()
	_, err = cp.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, f := range []string{"../internal/argorollouts/testdata/rollout-crd.yaml", "../internal/flagger/testdata/crd.yaml"} {
		createCRDs(t, dyn, f)
	}

	extra := filepath.Join(t.TempDir(), "progressive.yaml")
	require.NoError(t, os.WriteFile(extra, []byte("receivers:\n  dora:\n    argo_rollouts:\n      namespaces: [shop]\n    flagger:\n      namespaces: [shop]\n"), 0o644))
	metricsURL := startCollectorWith(t, bin, cp.Kubeconfig, []string{extra})

	rollouts := dyn.Resource(schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}).Namespace("shop")
	canaries := dyn.Resource(schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}).Namespace("shop")
	writeStatus := func(ri dynamic.ResourceInterface, name string, status func(gen int64) map[string]any) {
		t.Helper()
		u, err := ri.Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		u.Object["status"] = status(u.GetGeneration())
		_, err = ri.UpdateStatus(ctx, u, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	now := func() string { return time.Now().UTC().Format(time.RFC3339) }

	// Argo Rollouts: the example Rollout, its first revision promoted.
	ro := readYAML(t, "../internal/argorollouts/testdata/rollout-analysis-step.yaml")
	ro.SetNamespace("shop")
	argo := func(podHash, stable, phase, analysis string, abort bool) func(int64) map[string]any {
		return func(gen int64) map[string]any {
			progressing := map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
				"message": `ReplicaSet "rollout-analysis-step-` + podHash + `" has successfully progressed.`, "lastUpdateTime": now(), "lastTransitionTime": now()}
			st := map[string]any{"observedGeneration": strconv.FormatInt(gen, 10), "currentPodHash": podHash, "stableRS": stable,
				"phase": phase, "replicas": int64(4), "updatedReplicas": int64(4), "readyReplicas": int64(4), "availableReplicas": int64(4)}
			if analysis != "" {
				st["canary"] = map[string]any{"currentStepAnalysisRunStatus": map[string]any{"name": "rollout-analysis-step-" + podHash + "-2-1", "status": analysis}}
			}
			if abort {
				st["abort"], st["abortedAt"] = true, now()
				progressing["status"], progressing["reason"] = "False", "RolloutAborted"
				progressing["message"] = "Rollout aborted update to revision 2: Step-based analysis phase error/failed"
			}
			st["conditions"] = []any{progressing}
			return st
		}
	}
	// The collector is healthy before its informers have listed; a
	// Rollout of their first list existed before it and is not counted.
	// Warm-up Rollouts until one is counted: the list is behind.
	for i := 0; ; i++ {
		require.Less(t, i, 20, "no warm-up Rollout was ever counted")
		w := ro.DeepCopy()
		w.SetName("warmup-" + strconv.Itoa(i))
		_, err = rollouts.Create(ctx, w, metav1.CreateOptions{})
		require.NoError(t, err)
		writeStatus(rollouts, w.GetName(), argo("5c4d3b2a1", "5c4d3b2a1", "Healthy", "", false))
		counted := false
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !counted; time.Sleep(100 * time.Millisecond) {
			counted = scrape(t, metricsURL).sum("platform_deployments_total", map[string]string{"deployment": w.GetName(), "status": "success"}) == 1
		}
		if counted {
			break
		}
	}
	_, err = rollouts.Create(ctx, ro, metav1.CreateOptions{})
	require.NoError(t, err)
	argoSeries := map[string]string{"namespace": "shop", "deployment": "rollout-analysis-step", "environment": "production"}
	writeStatus(rollouts, ro.GetName(), argo("6b7f8c5d4", "6b7f8c5d4", "Healthy", "", false))
	waitMetric(t, metricsURL, "platform_deployments_total", with(argoSeries, "status", "success"), 1)
	setImage := func(ri dynamic.ResourceInterface, name, image string) {
		t.Helper()
		u, err := ri.Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		containers[0].(map[string]any)["image"] = image
		require.NoError(t, unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"))
		_, err = ri.Update(ctx, u, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	setImage(rollouts, ro.GetName(), "argoproj/rollouts-demo:red")
	writeStatus(rollouts, ro.GetName(), argo("84c5f6b97", "6b7f8c5d4", "Paused", "Running", false))
	writeStatus(rollouts, ro.GetName(), argo("84c5f6b97", "6b7f8c5d4", "Degraded", "Failed", true))
	waitMetric(t, metricsURL, "platform_deployment_failures_total", with(argoSeries, "reason", "AnalysisRunFailed"), 1)
	setImage(rollouts, ro.GetName(), "argoproj/rollouts-demo:blue")
	writeStatus(rollouts, ro.GetName(), argo("6b7f8c5d4", "6b7f8c5d4", "Healthy", "", false))
	waitMetric(t, metricsURL, "platform_recovery_time_seconds_count", argoSeries, 1)

	// Flagger: the example Canary and its target; the bootstrap, then a
	// revision whose analysis fails, then the fix promoted.
	deployments := dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace("shop")
	cn := readYAML(t, "../internal/flagger/testdata/linkerd-canary.yaml")
	cn.SetNamespace("shop")
	_, err = canaries.Create(ctx, cn, metav1.CreateOptions{})
	require.NoError(t, err)
	target := readYAML(t, "../internal/flagger/testdata/podinfo-deployment.yaml")
	target.SetNamespace("shop")
	_, err = deployments.Create(ctx, target, metav1.CreateOptions{})
	require.NoError(t, err)
	flagger := func(phase, applied, promoted string, failedChecks int64) func(int64) map[string]any {
		return func(int64) map[string]any {
			return map[string]any{"phase": phase, "failedChecks": failedChecks, "canaryWeight": int64(0), "iterations": int64(0),
				"lastAppliedSpec": applied, "lastPromotedSpec": promoted, "lastTransitionTime": now(),
				"conditions": []any{map[string]any{"type": "Promoted", "status": "Unknown", "reason": phase, "message": "", "lastUpdateTime": now(), "lastTransitionTime": now()}}}
		}
	}
	writeStatus(canaries, "podinfo", flagger("Initialized", "6f8b5d7c9d", "6f8b5d7c9d", 0))
	setImage(deployments, "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
	writeStatus(canaries, "podinfo", flagger("Progressing", "7c9d6f8b5f", "6f8b5d7c9d", 10))
	writeStatus(canaries, "podinfo", flagger("Failed", "7c9d6f8b5f", "6f8b5d7c9d", 0))
	flaggerSeries := map[string]string{"namespace": "shop", "deployment": "podinfo", "environment": "production"}
	waitMetric(t, metricsURL, "platform_deployment_failures_total", with(flaggerSeries, "reason", "CanaryAnalysisFailed"), 1)
	setImage(deployments, "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.2")
	writeStatus(canaries, "podinfo", flagger("Progressing", "5b8f9c6d7a", "6f8b5d7c9d", 0))
	writeStatus(canaries, "podinfo", flagger("Succeeded", "5b8f9c6d7a", "5b8f9c6d7a", 0))
	waitMetric(t, metricsURL, "platform_deployments_total", with(flaggerSeries, "status", "success"), 1)
	waitMetric(t, metricsURL, "platform_recovery_time_seconds_count", flaggerSeries, 1)

	m := scrape(t, metricsURL)
	assert.Equal(t, 2.0, m.sum("platform_deployments_total", with(argoSeries, "status", "success")), "the first revision and the undo")
	assert.Equal(t, 1.0, m.sum("platform_deployments_total", with(argoSeries, "status", "failure")))
	assert.Equal(t, 1.0, m.sum("platform_deployments_total", with(flaggerSeries, "status", "failure")))
	assert.Equal(t, 1.0, m.sum("platform_deployment_failures_total", flaggerSeries), "one change failure")
	assert.Zero(t, m.sum("platform_deployments_total", map[string]string{"deployment": "podinfo-primary"}))
}

func readYAML(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(data, &m))
	return &unstructured.Unstructured{Object: m}
}

// createCRDs creates the CRDs of a release manifest and waits until they
// are served.
func createCRDs(t *testing.T, dyn dynamic.Interface, path string) {
	t.Helper()
	ctx := context.Background()
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		var m map[string]any
		require.NoError(t, yaml.Unmarshal(doc, &m))
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		_, err := crds.Create(ctx, u, metav1.CreateOptions{})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			got, err := crds.Get(ctx, u.GetName(), metav1.GetOptions{})
			if err != nil {
				return false
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				if c, ok := c.(map[string]any); ok && c["type"] == "Established" && c["status"] == "True" {
					return true
				}
			}
			return false
		}, 30*time.Second, 50*time.Millisecond, "CRD %s never established", u.GetName())
	}
}
