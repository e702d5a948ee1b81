// Package flagger is the Flagger source: it watches Canary resources
// (flagger.app/v1beta1) and turns each revision of their target that
// Flagger analyses into engine events: phase Succeeded (the revision
// promoted to the primary) is a successful deployment, phase Failed (the
// analysis failed and Flagger routed the traffic back to the primary) a
// failed deployment.
package flagger

import (
	"time"
	"unique"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// GVR is the watched resource.
var GVR = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}

// Phases Flagger writes (pkg/apis/flagger/v1beta1/status.go).
const (
	flaggerInitializing = "Initializing"
	flaggerInitialized  = "Initialized"
	flaggerSucceeded    = "Succeeded"
	flaggerFailed       = "Failed"
	flaggerTerminating  = "Terminating"
	flaggerTerminated   = "Terminated"
)

// Failure reasons this source gives (the reason attribute of
// platform.deployment.failures).
const (
	// ReasonCanaryAnalysisFailed: the revision's failed checks reached the
	// analysis threshold (a metric or webhook check kept failing).
	ReasonCanaryAnalysisFailed = "CanaryAnalysisFailed"
	// ReasonCanaryFailed: Flagger failed the revision for another cause
	// (its progress deadline, a rollback gate, or checks the source did
	// not see fail).
	ReasonCanaryFailed = "CanaryFailed"
)

// primarySuffix names the Deployment Flagger creates to serve the
// promoted revision (`<target>-primary`).
const primarySuffix = "-primary"

// Canary is the part of a Canary the source uses; the informer stores
// this, not the full object.
type Canary struct {
	k8s.Meta

	// Target is spec.targetRef.name, the workload whose revisions Flagger
	// analyses: the deployment attribute of the events; TargetKind its
	// kind (Deployment, DaemonSet, Service).
	Target     string
	TargetKind string
	Phase      string
	// AppliedSpec and PromotedSpec are Flagger's hashes of the target's
	// pod template: the revision analysed and the one promoted.
	AppliedSpec  string
	PromotedSpec string
	// TransitionTime is status.lastTransitionTime, set by Flagger at
	// every phase change.
	TransitionTime time.Time
	FailedChecks   int64
	// Threshold is spec.analysis.threshold (Flagger's default when unset).
	Threshold int64
}

// GetObjectKind implements runtime.Object.
func (c *Canary) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object; Canary holds only values.
func (c *Canary) DeepCopyObject() runtime.Object {
	d := *c
	return &d
}

func str(u map[string]any, fields ...string) string {
	v, _, _ := unstructured.NestedString(u, fields...)
	return v
}

func integer(u map[string]any, fields ...string) int64 {
	v, _, _ := unstructured.NestedFieldNoCopy(u, fields...)
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return 0
}

func compact(u *unstructured.Unstructured) *Canary {
	o := u.Object
	c := &Canary{
		Meta: k8s.Meta{
			Name:              u.GetName(),
			Namespace:         unique.Make(u.GetNamespace()).Value(),
			UID:               u.GetUID(),
			Generation:        u.GetGeneration(),
			CreationTimestamp: u.GetCreationTimestamp(),
		},
		Target:       str(o, "spec", "targetRef", "name"),
		TargetKind:   unique.Make(str(o, "spec", "targetRef", "kind")).Value(),
		Phase:        unique.Make(str(o, "status", "phase")).Value(),
		AppliedSpec:  str(o, "status", "lastAppliedSpec"),
		PromotedSpec: str(o, "status", "lastPromotedSpec"),
		FailedChecks: integer(o, "status", "failedChecks"),
		Threshold:    integer(o, "spec", "analysis", "threshold"),
	}
	c.TransitionTime, _ = time.Parse(time.RFC3339, str(o, "status", "lastTransitionTime"))
	if c.Threshold <= 0 {
		// Flagger's GetAnalysisThreshold default.
		c.Threshold = 1
	}
	return c
}
