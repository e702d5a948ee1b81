package dorareceiver

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-dora/dorareceiver/internal/argorollouts"
	"github.com/otelcol-dora/dorareceiver/internal/flagger"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// These tests run the receiver's Argo Rollouts and Flagger sources against
// a real kube-apiserver with the projects' released CRDs (testdata
// READMEs). No Argo Rollouts or Flagger controller runs: the tests write
// the resources' status through the status subresource as those
// controllers write it (the READMEs name the controller code each shape
// comes from).

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// readObjects decodes the YAML documents of a testdata file.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []*unstructured.Unstructured
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var m map[string]any
		require.NoError(t, yaml.Unmarshal(doc, &m), path)
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// applyCRDs creates the CRDs of a testdata file and waits until the API
// server serves them.
func applyCRDs(t *testing.T, dyn dynamic.Interface, path string) {
	t.Helper()
	ctx := context.Background()
	for _, crd := range readObjects(t, path) {
		_, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{})
		require.NoError(t, err, "CRD %s", crd.GetName())
		require.Eventually(t, func() bool {
			got, err := dyn.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return false
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true
				}
			}
			return false
		}, waitFor, 50*time.Millisecond, "CRD %s never established", crd.GetName())
	}
}

// progressiveReceiver is a receiver with the kubernetes, argo_rollouts
// and flagger sections.
type progressiveReceiver struct {
	*testReceiver
	rcv *shared
}

// startProgressiveReceiver starts the receiver with the kubernetes section
// and the argo_rollouts or flagger ones, and waits for their first lists.
func startProgressiveReceiver(t *testing.T, kubeconfig string, argo, flagger bool) progressiveReceiver {
	t.Helper()
	cfg := createDefaultConfig()
	kc := cfg.Kubernetes.GetOrInsertDefault()
	kc.AuthType = k8s.AuthTypeKubeConfig
	kc.KubeConfig = kubeconfig
	want := 1
	if argo {
		cfg.ArgoRollouts.GetOrInsertDefault()
		want++
	}
	if flagger {
		cfg.Flagger.GetOrInsertDefault()
		want++
	}
	require.NoError(t, cfg.Validate())
	sink := new(consumertest.MetricsSink)
	set := storedSettings()
	if os.Getenv("DEBUGLOG") != "" {
		set.Logger = zaptest.NewLogger(t, zaptest.Level(zap.DebugLevel))
	}
	rcv, err := NewFactory().CreateMetrics(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	waitKubernetesSynced(t, rcv)
	s := rcv.(*shared)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	n := 0
	for _, src := range s.sources {
		if ps, ok := src.(interface{ WaitForSync(context.Context) bool }); ok {
			require.True(t, ps.WaitForSync(ctx), "a source never synced")
			n++
		}
	}
	require.Equal(t, want, n, "the kubernetes source and the progressive ones")
	return progressiveReceiver{testReceiver: &testReceiver{t: t, sink: sink, stop: func() {}}, rcv: s}
}

// waitClaimed waits until a progressive source claims the Deployment.
func (r progressiveReceiver) waitClaimed(ns, name string) {
	r.t.Helper()
	require.Eventually(r.t, func() bool {
		for _, c := range r.rcv.claimers {
			if c.Claims(ns, name) {
				return true
			}
		}
		return false
	}, waitFor, 20*time.Millisecond, "%s/%s never claimed", ns, name)
}

// crs plays the users and the controllers on custom resources.
type crs struct {
	t   *testing.T
	dyn dynamic.Interface
	gvr schema.GroupVersionResource
}

func (c crs) create(ns string, u *unstructured.Unstructured) {
	c.t.Helper()
	u = u.DeepCopy()
	u.SetNamespace(ns)
	_, err := c.dyn.Resource(c.gvr).Namespace(ns).Create(context.Background(), u, metav1.CreateOptions{})
	require.NoError(c.t, err)
}

func (c crs) get(ns, name string) *unstructured.Unstructured {
	c.t.Helper()
	u, err := c.dyn.Resource(c.gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(c.t, err)
	return u
}

func (c crs) update(ns, name string, mutate func(u *unstructured.Unstructured)) {
	c.t.Helper()
	u := c.get(ns, name)
	mutate(u)
	_, err := c.dyn.Resource(c.gvr).Namespace(ns).Update(context.Background(), u, metav1.UpdateOptions{})
	require.NoError(c.t, err)
}

// status replaces the status through the status subresource, as the
// controller does; build gets the object (its generation) and returns the
// status.
func (c crs) status(ns, name string, build func(u *unstructured.Unstructured) map[string]any) {
	c.t.Helper()
	u := c.get(ns, name)
	u.Object["status"] = build(u)
	_, err := c.dyn.Resource(c.gvr).Namespace(ns).UpdateStatus(context.Background(), u, metav1.UpdateOptions{})
	require.NoError(c.t, err)
}

// commitSHA is a made-up commit id per image, stable across calls.
func commitSHA(image string) string {
	return fmt.Sprintf("%040x", fnv1a(image))
}

func fnv1a(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func cond(typ, status, reason, message string, at time.Time) map[string]any {
	return map[string]any{"type": typ, "status": status, "reason": reason, "message": message,
		"lastUpdateTime": stamp(at), "lastTransitionTime": stamp(at)}
}

// argoStatus is the status the Argo Rollouts controller (v1.9) writes for
// a canary Rollout of generation gen whose desired revision is podHash and
// stable revision stableRS, in phase (Healthy, Paused, Progressing,
// Degraded); abort adds what an aborted update carries, with the failed
// AnalysisRun's status when analysisFailed.
func argoStatus(gen int64, podHash, stableRS, phase string, step int64, analysisPhase string, abort bool, at time.Time) map[string]any {
	const replicas = 4
	st := map[string]any{
		"observedGeneration": strconv.FormatInt(gen, 10),
		"currentPodHash":     podHash,
		"stableRS":           stableRS,
		"currentStepHash":    "5c98f4d6d9",
		"currentStepIndex":   step,
		"replicas":           int64(replicas),
		"updatedReplicas":    int64(replicas),
		"readyReplicas":      int64(replicas),
		"availableReplicas":  int64(replicas),
		"HPAReplicas":        int64(replicas),
		"selector":           "app=rollout-analysis-step",
		"phase":              phase,
		"canary":             map[string]any{},
	}
	if analysisPhase != "" {
		st["canary"] = map[string]any{"currentStepAnalysisRunStatus": map[string]any{
			"name": "rollout-analysis-step-" + podHash + "-2-1", "status": analysisPhase}}
	}
	progressing := cond("Progressing", "True", "NewReplicaSetAvailable", `ReplicaSet "rollout-analysis-step-`+podHash+`" has successfully progressed.`, at)
	switch phase {
	case "Paused":
		st["pauseConditions"] = []any{map[string]any{"reason": "CanaryPauseStep", "startTime": stamp(at)}}
		st["controllerPause"] = true
		st["message"] = "CanaryPauseStep"
		progressing = cond("Progressing", "True", "RolloutPaused", "Rollout is paused", at)
	case "Progressing":
		st["message"] = "more replicas need to be updated"
		progressing = cond("Progressing", "True", "ReplicaSetUpdated", `ReplicaSet "rollout-analysis-step-`+podHash+`" is progressing.`, at)
	}
	if abort {
		msg := "Rollout aborted update to revision 2: Step-based analysis phase error/failed: Metric \"random-fail\" assessed Failed due to failed (1) > failureLimit (0)"
		st["abort"] = true
		st["abortedAt"] = stamp(at)
		st["message"] = "RolloutAborted: " + msg
		progressing = cond("Progressing", "False", "RolloutAborted", msg, at)
	}
	healthy := "True"
	if phase != "Healthy" {
		healthy = "False"
	}
	conds := []any{
		cond("Available", "True", "AvailableReason", "Rollout has minimum availability", at),
		progressing,
		cond("Healthy", healthy, "RolloutHealthy", "Rollout is healthy", at),
	}
	if phase == "Healthy" {
		conds = append(conds, cond("Completed", "True", "RolloutCompleted", "RolloutCompleted", at))
	}
	st["conditions"] = conds
	return st
}

// flaggerStatus is the status Flagger (v1.44) writes: syncCanaryStatus or
// setStatusPhase with the Promoted condition of MakeStatusConditions.
func flaggerStatus(phase, applied, promoted string, failedChecks int64, at time.Time) map[string]any {
	condStatus, message := "Unknown", "New revision detected, progressing canary analysis."
	switch phase {
	case "Initialized":
		condStatus, message = "True", "Deployment initialization completed."
	case "Succeeded":
		condStatus, message = "True", "Canary analysis completed successfully, promotion finished."
	case "Failed":
		condStatus, message = "False", "Canary analysis failed, Deployment scaled to zero."
	case "Promoting":
		message = "Canary analysis completed, starting primary rolling update."
	}
	return map[string]any{
		"phase":              phase,
		"failedChecks":       failedChecks,
		"canaryWeight":       int64(0),
		"iterations":         int64(0),
		"lastAppliedSpec":    applied,
		"lastPromotedSpec":   promoted,
		"lastTransitionTime": stamp(at),
		"trackedConfigs":     map[string]any{},
		"conditions":         []any{cond("Promoted", condStatus, phase, message, at)},
	}
}

func histogramSum(r *testReceiver, name string, attrs map[string]string) float64 {
	all := r.sink.AllMetrics()
	for i := len(all) - 1; i >= 0; i-- {
		found, sum := false, 0.0
		forEachMetric(all[i], name, func(m pmetric.Metric) {
			dps := m.Histogram().DataPoints()
			for j := range dps.Len() {
				if matches(dps.At(j).Attributes().AsRaw(), attrs) {
					found, sum = true, sum+dps.At(j).Sum()
				}
			}
		})
		if found {
			return sum
		}
	}
	return 0
}

func TestArgoRolloutsAgainstAPIServer(t *testing.T) {
	cp := localcluster.StartForTest(t, localcluster.Options{})
	dyn, err := dynamic.NewForConfig(cp.RESTConfig())
	require.NoError(t, err)
	applyCRDs(t, dyn, "internal/argorollouts/testdata/rollout-crd.yaml")
	example := readObjects(t, "internal/argorollouts/testdata/rollout-analysis-step.yaml")[0]
	ro := crs{t: t, dyn: dyn, gvr: argorollouts.GVR}
	c := cluster{t: t, client: cp.Client()}
	const ns, name = "shop", "rollout-analysis-step"
	c.namespace(ns)

	r := startProgressiveReceiver(t, cp.Kubeconfig, true, false)
	svc := func(status string) map[string]string { return series(ns, name, status) }
	setImage := func(image string, commitTime time.Time) {
		ro.update(ns, name, func(u *unstructured.Unstructured) {
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			containers[0].(map[string]any)["image"] = image
			require.NoError(t, unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"))
			a := u.GetAnnotations()
			if a == nil {
				a = map[string]string{}
			}
			a["dora.otelcol.dev/commit-time"] = stamp(commitTime)
			a["dora.otelcol.dev/commit-sha"] = commitSHA(image)
			u.SetAnnotations(a)
		})
	}

	// The first revision: Argo Rollouts promotes it at once (no steps).
	ro.create(ns, example)
	ro.status(ns, name, func(u *unstructured.Unstructured) map[string]any {
		return argoStatus(u.GetGeneration(), "6b7f8c5d4", "6b7f8c5d4", "Healthy", 4, "", false, time.Now())
	})
	r.waitValue("platform.deployments", svc("success"), 1)

	t.Run("a canary promoted through its steps is one deployment, its steps in the deploy stage", func(t *testing.T) {
		setImage("argoproj/rollouts-demo:yellow", time.Now())
		ro.status(ns, name, func(u *unstructured.Unstructured) map[string]any {
			return argoStatus(u.GetGeneration(), "7d9b6c8f5", "6b7f8c5d4", "Progressing", 0, "", false, time.Now())
		})
		ro.status(ns, name, func(u *unstructured.Unstructured) map[string]any {
			return argoStatus(u.GetGeneration(), "7d9b6c8f5", "6b7f8c5d4", "Paused", 1, "Running", false, time.Now())
		})
		const steps = 2 * time.Second
		time.Sleep(steps)
		ro.status(ns, name, func(u *unstructured.Unstructured) map[string]any {
			return argoStatus(u.GetGeneration(), "7d9b6c8f5", "7d9b6c8f5", "Healthy", 4, "Successful", false, time.Now())
		})
		r.waitValue("platform.deployments", svc("success"), 2)
		stage := map[string]string{"namespace": ns, "deployment": name, "stage": "deploy"}
		assert.EqualValues(t, 1, r.histogramCount("platform.lead_time.stage", stage))
		assert.GreaterOrEqual(t, histogramSum(r.testReceiver, "platform.lead_time.stage", stage), steps.Seconds()-1, "the canary's steps are the deploy stage")
		assert.EqualValues(t, 0, r.value("platform.deployments", svc("failure")))
	})

	t.Run("aborted by a failed analysis is a failed deployment with its reason", func(t *testing.T) {
		setImage("argoproj/rollouts-demo:red", time.Now())
		ro.status(ns, name, func(u *unstructured.Unstructured) map[string]any {
			return argoStatus(u.GetGeneration(), "84c5f6b97", "7d9b6c8f5", "Progressing", 1, "Running", false, time.Now())
		})
		ro.status(ns, name, func(u *unstructured.Unstructured) map[string]any {
			return argoStatus(u.GetGeneration(), "84c5f6b97", "7d9b6c8f5", "Degraded", 1, "Failed", true, time.Now())
		})
		r.waitValue("platform.deployments", svc("failure"), 1)
		r.waitValue("platform.deployment.failures", map[string]string{"namespace": ns, "deployment": name, "reason": argorollouts.ReasonAnalysisRunFailed}, 1)
	})

	t.Run("undo to the promoted revision is a rollback that recovers", func(t *testing.T) {
		setImage("argoproj/rollouts-demo:yellow", time.Now())
		// The template is the stable one again: the controller promotes
		// it at once and clears the abort.
		ro.status(ns, name, func(u *unstructured.Unstructured) map[string]any {
			return argoStatus(u.GetGeneration(), "7d9b6c8f5", "7d9b6c8f5", "Healthy", 4, "", false, time.Now())
		})
		r.waitValue("platform.deployments", svc("success"), 3)
		assert.EqualValues(t, 1, r.histogramCount("platform.recovery_time", map[string]string{"namespace": ns, "deployment": name}))
		assert.EqualValues(t, 1, r.value("platform.deployment.failures", map[string]string{"namespace": ns, "deployment": name}), "the rollback of an aborted revision adds no failure")
	})

	t.Run("a Deployment a Rollout takes its template from is not counted on its own", func(t *testing.T) {
		c := cluster{t: t, client: cp.Client()}
		wl := example.DeepCopy()
		wl.SetName("checkout")
		unstructured.RemoveNestedField(wl.Object, "spec", "template")
		unstructured.RemoveNestedField(wl.Object, "spec", "selector")
		require.NoError(t, unstructured.SetNestedMap(wl.Object, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"}, "spec", "workloadRef"))
		ro.create(ns, wl)
		r.waitClaimed(ns, "checkout")
		c.create(ns, "checkout", "registry.local/checkout:1", func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32) })
		c.complete(ns, "checkout")
		c.setImage(ns, "checkout", "registry.local/checkout:2")
		c.complete(ns, "checkout")
		c.sentinel(r.testReceiver, ns)
		assert.EqualValues(t, 0, r.value("platform.deployments", series(ns, "checkout", "")), "the Rollout's Deployment is the Rollout's")
	})
}

func TestFlaggerAgainstAPIServer(t *testing.T) {
	cp := localcluster.StartForTest(t, localcluster.Options{})
	dyn, err := dynamic.NewForConfig(cp.RESTConfig())
	require.NoError(t, err)
	applyCRDs(t, dyn, "internal/flagger/testdata/crd.yaml")
	canary := readObjects(t, "internal/flagger/testdata/linkerd-canary.yaml")[0]
	target := readObjects(t, "internal/flagger/testdata/podinfo-deployment.yaml")[0]
	cn := crs{t: t, dyn: dyn, gvr: flagger.GVR}
	deploys := crs{t: t, dyn: dyn, gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}}
	c := cluster{t: t, client: cp.Client()}
	const ns, name = "test", "podinfo"
	c.namespace(ns)
	r := startProgressiveReceiver(t, cp.Kubeconfig, false, true)
	svc := func(status string) map[string]string { return series(ns, name, status) }

	// The user applies the Deployment and its Canary; Flagger creates the
	// primary from the target, marks the Canary Initialized and scales the
	// target to zero. Bootstrapping ships no change: nothing is counted.
	cn.create(ns, canary)
	r.waitClaimed(ns, name)
	deploys.create(ns, target)
	c.complete(ns, name)
	primary := target.DeepCopy()
	primary.SetName(name + "-primary")
	deploys.create(ns, primary)
	c.complete(ns, name+"-primary")
	cn.status(ns, name, func(*unstructured.Unstructured) map[string]any {
		return flaggerStatus("Initializing", "6f8b5d7c9d", "", 0, time.Now())
	})
	cn.status(ns, name, func(*unstructured.Unstructured) map[string]any {
		return flaggerStatus("Initialized", "6f8b5d7c9d", "6f8b5d7c9d", 0, time.Now())
	})
	c.sentinel(r.testReceiver, ns)
	assert.EqualValues(t, 0, r.value("platform.deployments", svc("")), "the bootstrap is not a deployment")
	assert.EqualValues(t, 0, r.value("platform.deployments", series(ns, name+"-primary", "")), "the primary is Flagger's")

	// newRevision is what a user's image update sets off: the target's
	// own rollout (not counted: the Canary's), then Flagger's analysis of
	// the revision, hash.
	newRevision := func(image, hash, promoted string) {
		t.Helper()
		deploys.update(ns, name, func(u *unstructured.Unstructured) {
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			containers[0].(map[string]any)["image"] = image
			require.NoError(t, unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"))
			u.SetAnnotations(map[string]string{"dora.otelcol.dev/commit-time": stamp(time.Now()), "dora.otelcol.dev/commit-sha": commitSHA(image)})
		})
		c.complete(ns, name)
		cn.status(ns, name, func(*unstructured.Unstructured) map[string]any {
			return flaggerStatus("Progressing", hash, promoted, 0, time.Now())
		})
	}

	t.Run("a promoted revision is one deployment, its analysis in the deploy stage", func(t *testing.T) {
		// The commit is made after the service's history began (the
		// Canary's creation, seen at sub-second precision; the commit time
		// has whole seconds): else its lead time is before_history.
		time.Sleep(time.Second)
		newRevision("ghcr.io/stefanprodan/podinfo:6.0.1", "7c9d6f8b5f", "6f8b5d7c9d")
		const analysis = 2 * time.Second
		time.Sleep(analysis)
		cn.status(ns, name, func(*unstructured.Unstructured) map[string]any {
			return flaggerStatus("Promoting", "7c9d6f8b5f", "6f8b5d7c9d", 0, time.Now())
		})
		// Flagger copies the template to the primary: its rollout is
		// Flagger's too.
		deploys.update(ns, name+"-primary", func(u *unstructured.Unstructured) {
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			containers[0].(map[string]any)["image"] = "ghcr.io/stefanprodan/podinfo:6.0.1"
			require.NoError(t, unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"))
		})
		c.complete(ns, name+"-primary")
		cn.status(ns, name, func(*unstructured.Unstructured) map[string]any {
			return flaggerStatus("Succeeded", "7c9d6f8b5f", "7c9d6f8b5f", 0, time.Now())
		})
		r.waitValue("platform.deployments", svc("success"), 1)
		stage := map[string]string{"namespace": ns, "deployment": name, "stage": "deploy"}
		assert.EqualValues(t, 1, r.histogramCount("platform.lead_time.stage", stage))
		assert.GreaterOrEqual(t, histogramSum(r.testReceiver, "platform.lead_time.stage", stage), analysis.Seconds()-1)
		c.sentinel(r.testReceiver, ns)
		assert.EqualValues(t, 1, r.value("platform.deployments", svc("success")), "the target's and the primary's rollouts are not counted again")
		assert.EqualValues(t, 0, r.value("platform.deployments", series(ns, name+"-primary", "")))
	})

	t.Run("a failed analysis is a failed deployment with its reason", func(t *testing.T) {
		newRevision("ghcr.io/stefanprodan/podinfo:6.0.2", "5b8f9c6d7a", "7c9d6f8b5f")
		cn.status(ns, name, func(*unstructured.Unstructured) map[string]any {
			return flaggerStatus("Progressing", "5b8f9c6d7a", "7c9d6f8b5f", 10, time.Now())
		})
		// Flagger's rollback writes phase Failed and resets failedChecks.
		time.Sleep(200 * time.Millisecond)
		cn.status(ns, name, func(*unstructured.Unstructured) map[string]any {
			return flaggerStatus("Failed", "5b8f9c6d7a", "7c9d6f8b5f", 0, time.Now())
		})
		r.waitValue("platform.deployments", svc("failure"), 1)
		r.waitValue("platform.deployment.failures", map[string]string{"namespace": ns, "deployment": name, "reason": flagger.ReasonCanaryAnalysisFailed}, 1)
	})

	t.Run("the earlier revision again is a rollback that recovers", func(t *testing.T) {
		newRevision("ghcr.io/stefanprodan/podinfo:6.0.1", "7c9d6f8b5f", "7c9d6f8b5f")
		time.Sleep(200 * time.Millisecond)
		cn.status(ns, name, func(*unstructured.Unstructured) map[string]any {
			return flaggerStatus("Succeeded", "7c9d6f8b5f", "7c9d6f8b5f", 0, time.Now())
		})
		r.waitValue("platform.deployments", svc("success"), 2)
		assert.EqualValues(t, 1, r.histogramCount("platform.recovery_time", map[string]string{"namespace": ns, "deployment": name}))
		assert.EqualValues(t, 1, r.value("platform.deployment.failures", map[string]string{"namespace": ns, "deployment": name}))
	})
}

// TestProgressiveWithoutCRDs: argo_rollouts and flagger on in a cluster
// without their CRDs (their lists fail, and are retried): Deployment
// rollouts are still counted at once. The Kubernetes source asks the
// progressive sources whether they claim each Deployment; only the first
// question waits for their first lists.
func TestProgressiveWithoutCRDs(t *testing.T) {
	cp := localcluster.StartForTest(t, localcluster.Options{})
	c := cluster{t: t, client: cp.Client()}
	c.namespace("plain")
	r := startReceiverOn(t, cp.Kubeconfig, componenttest.NewNopHost(), func(cfg *Config) {
		cfg.ArgoRollouts.GetOrInsertDefault()
		cfg.Flagger.GetOrInsertDefault()
	})
	start := time.Now()
	for _, name := range []string{"a", "b", "c", "d"} {
		c.create("plain", name, "registry.local/"+name+":1")
		c.complete("plain", name)
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		r.waitValue("platform.deployments", series("plain", name, "success"), 1)
	}
	// Each progressive source waits once (in turn): 20 s; a wait per
	// rollout event would be 160 s.
	assert.Less(t, time.Since(start), 3*claimsWaitForTest, "one wait per source for the lists that never come, not one per rollout")
}

// claimsWaitForTest is crdwatch's claimsWait.
const claimsWaitForTest = 10 * time.Second
