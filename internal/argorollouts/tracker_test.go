package argorollouts

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

type play struct {
	t   *testing.T
	tr  *tracker
	r   Rollout
	now time.Time
}

func newPlay(t *testing.T) *play {
	env := k8s.DefaultConfig().Environment
	p := &play{t: t, tr: newTracker(&env), now: t0}
	p.r.Namespace, p.r.Name, p.r.UID, p.r.Generation = "shop", "api", "uid-1", 1
	p.r.Observed = true
	return p
}

// status sets the controller's view: pod hash, stable hash, phase.
func (p *play) status(initial bool, podHash, stable, phase string, mutate ...func(*Rollout)) []event.Event {
	p.t.Helper()
	p.now = p.now.Add(time.Second)
	p.r.PodHash, p.r.StableRS, p.r.Phase = podHash, stable, phase
	p.r.Abort, p.r.AnalysisFailed, p.r.ProgressingReason, p.r.AbortedAt, p.r.Observed = false, false, "", time.Time{}, true
	p.r.ProgressingUpdated = p.now
	for _, m := range mutate {
		m(&p.r)
	}
	r := p.r
	next, evs := p.tr.observe("shop/api", &r, initial, p.now)
	p.tr.commit("shop/api", next)
	return evs
}

func kinds(evs []event.Event) []event.Kind {
	var out []event.Kind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func aborted(analysis bool) func(*Rollout) {
	return func(r *Rollout) {
		r.Abort, r.AnalysisFailed, r.ProgressingReason = true, analysis, "RolloutAborted"
		r.AbortedAt = r.ProgressingUpdated
	}
}

func TestRolloutLifecycle(t *testing.T) {
	p := newPlay(t)
	p.r.CreationTimestamp.Time = t0
	// Created: the first revision is promoted at once.
	evs := p.status(false, "h1", "h1", "Healthy")
	require.Equal(t, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}, kinds(evs))
	assert.Equal(t, t0, evs[0].Time, "it started when it was created")
	assert.Equal(t, event.SourceArgoRollouts, evs[0].Source)

	// A canary: steps, then promoted.
	p.r.Generation = 2
	p.r.CommitSHA = "abc1234"
	evs = p.status(false, "h2", "h1", "Progressing")
	require.Equal(t, []event.Kind{event.DeploymentStarted}, kinds(evs))
	started := evs[0]
	assert.Equal(t, "abc1234", started.Revision)
	assert.Empty(t, p.status(false, "h2", "h1", "Paused"))
	assert.Empty(t, p.status(false, "h2", "h1", "Healthy"), "healthy but not promoted yet")
	evs = p.status(false, "h2", "h2", "Healthy")
	require.Equal(t, []event.Kind{event.DeploymentSucceeded}, kinds(evs))
	assert.Equal(t, started.DeploymentID, evs[0].DeploymentID)

	// Unobserved spec: nothing is read from the status.
	p.r.Generation = 3
	assert.Empty(t, p.status(false, "h3", "h2", "Progressing", func(r *Rollout) { r.Observed = false }))
	// Aborted by a failed analysis.
	assert.Len(t, p.status(false, "h3", "h2", "Progressing"), 1)
	evs = p.status(false, "h3", "h2", "Degraded", aborted(true))
	require.Equal(t, []event.Kind{event.DeploymentFailed}, kinds(evs))
	assert.Equal(t, ReasonAnalysisRunFailed, evs[0].Reason)
	failed := evs[0].DeploymentID
	assert.Empty(t, p.status(false, "h3", "h2", "Degraded", aborted(true)), "seen again")

	// Undo: the stable revision again is a rollback of the aborted one.
	p.r.Generation = 4
	evs = p.status(false, "h2", "h2", "Healthy")
	require.Equal(t, []event.Kind{event.DeploymentRolledBack, event.DeploymentSucceeded}, kinds(evs))
	assert.Equal(t, failed, evs[0].PreviousDeploymentID)
	assert.NotEqual(t, started.DeploymentID, evs[0].DeploymentID)
}

func TestRolloutFailureReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Rollout)
		want   string
	}{
		{"manual abort", aborted(false), ReasonRolloutAborted},
		{"analysis", aborted(true), ReasonAnalysisRunFailed},
		{"deadline", func(r *Rollout) { r.ProgressingReason = "ProgressDeadlineExceeded" }, ReasonProgressDeadlineExceeded},
		{"invalid spec", func(r *Rollout) { r.InvalidSpec = true }, ReasonInvalidSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlay(t)
			assert.Empty(t, p.status(true, "h1", "h1", "Healthy"))
			p.r.Generation = 2
			assert.Len(t, p.status(false, "h2", "h1", "Progressing"), 1)
			evs := p.status(false, "h2", "h1", "Degraded", tc.mutate)
			require.Equal(t, []event.Kind{event.DeploymentFailed}, kinds(evs))
			assert.Equal(t, tc.want, evs[0].Reason)
			// Retried (abort cleared) and promoted: the recovery.
			evs = p.status(false, "h2", "h2", "Healthy")
			require.Equal(t, []event.Kind{event.DeploymentSucceeded}, kinds(evs))
		})
	}
}

func TestRolloutInitialList(t *testing.T) {
	p := newPlay(t)
	assert.Empty(t, p.status(true, "h1", "h1", "Healthy"), "finished before the source: not counted")
	assert.Empty(t, p.status(false, "h1", "h1", "Healthy"))
	p = newPlay(t)
	assert.Empty(t, p.status(true, "h2", "h1", "Paused"))
	evs := p.status(false, "h2", "h2", "Healthy")
	require.Equal(t, []event.Kind{event.DeploymentSucceeded}, kinds(evs), "unfinished at start: counted when it finishes")
}

// TestCompactReadsTheControllersStatus decodes a Rollout from Argo
// Rollouts' example with an aborted status as the controller writes it.
func TestCompactReadsTheControllersStatus(t *testing.T) {
	data := []byte(`
metadata: {name: rollout-analysis-step, namespace: shop, generation: 3, uid: u1,
  annotations: {rollout.argoproj.io/revision: "3", dora.otelcol.dev/commit-sha: ABCDEF1}}
spec:
  template:
    metadata: {labels: {app: rollout-analysis-step, dora.otelcol.dev/team: payments}}
    spec: {containers: [{name: rollouts-demo, image: "argoproj/rollouts-demo:blue"}]}
status:
  abort: true
  abortedAt: "2026-05-04T10:00:07Z"
  currentPodHash: 84c5f6b97
  stableRS: 7d9b6c8f5
  observedGeneration: "3"
  phase: Degraded
  message: 'RolloutAborted: Rollout aborted update to revision 3'
  canary:
    currentStepAnalysisRunStatus: {name: rollout-analysis-step-84c5f6b97-3-1, status: Failed}
  conditions:
  - {type: Progressing, status: "False", reason: RolloutAborted, lastUpdateTime: "2026-05-04T10:00:07Z", lastTransitionTime: "2026-05-04T10:00:07Z"}
`)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(data, &m))
	kc := k8s.DefaultConfig()
	r := compact(&unstructured.Unstructured{Object: m}, &kc)
	assert.Equal(t, "84c5f6b97", r.PodHash)
	assert.Equal(t, "7d9b6c8f5", r.StableRS)
	assert.True(t, r.Observed)
	assert.True(t, r.Abort)
	assert.True(t, r.AnalysisFailed)
	assert.Equal(t, "RolloutAborted", r.ProgressingReason)
	assert.Equal(t, time.Date(2026, 5, 4, 10, 0, 7, 0, time.UTC), r.AbortedAt)
	assert.Equal(t, "abcdef1", r.CommitSHA)
	assert.Equal(t, "payments", r.Team)
	p, reason := evaluate(r)
	assert.Equal(t, crdwatch.PhaseFailed, p)
	assert.Equal(t, ReasonAnalysisRunFailed, reason)

	// The controller has not seen generation 4 yet.
	m["metadata"].(map[string]any)["generation"] = int64(4)
	assert.False(t, compact(&unstructured.Unstructured{Object: m}, &kc).Observed)
}
