// Package argorollouts is the Argo Rollouts source: it watches Rollout
// resources (argoproj.io/v1alpha1) and turns each revision's canary or
// blue-green rollout into engine events: a revision fully promoted is a
// successful deployment, an aborted or degraded one a failed deployment
// with its reason, a rollback to an earlier revision a rollback.
package argorollouts

import (
	"strconv"
	"time"
	"unique"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// GVR is the watched resource.
var GVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// Values the Argo Rollouts controller (v1.x) writes, from its source:
// pkg/apis/rollouts/v1alpha1/types.go and utils/conditions/conditions.go.
const (
	phaseHealthy  = "Healthy"
	phaseDegraded = "Degraded"

	conditionProgressing = "Progressing"
	conditionInvalidSpec = "InvalidSpec"

	reasonTimedOut = "ProgressDeadlineExceeded"
)

// Failure reasons this source gives (the reason attribute of
// platform.deployment.failures): a small fixed set, named as Argo
// Rollouts names the cause.
const (
	// ReasonAnalysisRunFailed: an AnalysisRun of the revision (a canary
	// step's, the background one, or a blue-green pre- or post-promotion
	// one) failed or errored, and the controller aborted the rollout.
	ReasonAnalysisRunFailed = "AnalysisRunFailed"
	// ReasonProgressDeadlineExceeded: the revision did not progress within
	// spec.progressDeadlineSeconds.
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonInvalidSpec: the controller found the spec invalid.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonRolloutAborted: aborted for another cause (`kubectl argo
	// rollouts abort`, a failed experiment or step plugin).
	ReasonRolloutAborted = "RolloutAborted"
)

// Rollout is the part of a Rollout the source uses; the informer stores
// this instead of the full object (see compact), as the Kubernetes source
// does with Deployments.
type Rollout struct {
	k8s.Meta

	// PodHash is status.currentPodHash: the controller's hash of the pod
	// template it rolls out, which names the revision.
	PodHash string
	// StableRS is status.stableRS: the hash of the fully promoted
	// revision.
	StableRS string
	// Observed is whether the controller has acted on the latest spec
	// (status.observedGeneration, and the workload's for a workloadRef),
	// and is not between a resume and its effect.
	Observed bool
	// WorkloadGeneration is status.workloadObservedGeneration (a Rollout
	// with a workloadRef: its Deployment's generation).
	WorkloadGeneration string
	Phase              string
	Abort              bool
	AbortedAt          time.Time
	// Progressing is the Progressing condition's reason and update time.
	ProgressingReason  string
	ProgressingUpdated time.Time
	InvalidSpec        bool
	// AnalysisFailed is set when an AnalysisRun of the revision failed or
	// errored.
	AnalysisFailed bool
	// WorkloadRef is the Deployment a Rollout with spec.workloadRef takes
	// its template from (empty otherwise): that Deployment's own rollouts
	// are the Rollout's (see Claims).
	WorkloadRef string

	crdwatch.Workload
}

// GetObjectKind implements runtime.Object.
func (r *Rollout) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object; Rollout holds only values.
func (r *Rollout) DeepCopyObject() runtime.Object {
	c := *r
	return &c
}

func str(u map[string]any, fields ...string) string {
	v, _, _ := unstructured.NestedString(u, fields...)
	return v
}

func timeOf(v string) time.Time {
	t, _ := time.Parse(time.RFC3339, v)
	return t
}

// compact reduces u to a *Rollout.
func compact(u *unstructured.Unstructured, kc *k8s.Config) *Rollout {
	o := u.Object
	r := &Rollout{
		Meta: k8s.Meta{
			Name:              u.GetName(),
			Namespace:         unique.Make(u.GetNamespace()).Value(),
			UID:               u.GetUID(),
			Generation:        u.GetGeneration(),
			CreationTimestamp: u.GetCreationTimestamp(),
		},
		PodHash:            str(o, "status", "currentPodHash"),
		StableRS:           str(o, "status", "stableRS"),
		WorkloadGeneration: str(o, "status", "workloadObservedGeneration"),
		Phase:              unique.Make(str(o, "status", "phase")).Value(),
		AbortedAt:          timeOf(str(o, "status", "abortedAt")),
		Workload:           crdwatch.ReadWorkload(kc, u),
	}
	r.Abort, _, _ = unstructured.NestedBool(o, "status", "abort")
	r.Observed = observed(u)
	if str(o, "spec", "workloadRef", "kind") == "Deployment" {
		r.WorkloadRef = str(o, "spec", "workloadRef", "name")
	}
	conds, _, _ := unstructured.NestedSlice(o, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		switch str(m, "type") {
		case conditionProgressing:
			r.ProgressingReason = unique.Make(str(m, "reason")).Value()
			r.ProgressingUpdated = timeOf(str(m, "lastUpdateTime"))
		case conditionInvalidSpec:
			r.InvalidSpec = str(m, "status") == "True"
		}
	}
	for _, f := range [][]string{
		{"status", "canary", "currentStepAnalysisRunStatus", "status"},
		{"status", "canary", "currentBackgroundAnalysisRunStatus", "status"},
		{"status", "blueGreen", "prePromotionAnalysisRunStatus", "status"},
		{"status", "blueGreen", "postPromotionAnalysisRunStatus", "status"},
	} {
		if s := str(o, f...); s == "Failed" || s == "Error" {
			r.AnalysisFailed = true
		}
	}
	return r
}

// observed tells whether the controller has acted on the latest spec, as
// the controller's own rolloututil.GetRolloutPhase decides it.
func observed(u *unstructured.Unstructured) bool {
	o := u.Object
	paused, _, _ := unstructured.NestedBool(o, "status", "controllerPause")
	pauses, _, _ := unstructured.NestedSlice(o, "status", "pauseConditions")
	if paused && len(pauses) == 0 {
		// Unpausing: the controller has not reacted to the resume yet.
		return false
	}
	if g, err := strconv.ParseInt(str(o, "status", "observedGeneration"), 10, 64); err == nil && g < u.GetGeneration() {
		return false
	}
	if w, ok := u.GetAnnotations()["rollout.argoproj.io/workload-generation"]; ok {
		if g, err := strconv.ParseInt(str(o, "status", "workloadObservedGeneration"), 10, 64); err == nil && strconv.FormatInt(g, 10) != w {
			return false
		}
	}
	return true
}
