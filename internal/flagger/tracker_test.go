package flagger

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// play feeds the tracker successive Canary statuses (phase, applied hash,
// promoted hash, failed checks) at successive seconds and returns the
// events, as the worker would.
type play struct {
	t   *testing.T
	tr  *tracker
	c   Canary
	now time.Time
	wl  crdwatch.Workload
}

func newPlay(t *testing.T) *play {
	env := k8s.DefaultConfig().Environment
	p := &play{t: t, tr: newTracker(&env), now: t0}
	p.c = Canary{Target: "podinfo", TargetKind: "Deployment", Threshold: 10}
	p.c.Namespace, p.c.Name, p.c.UID = "test", "podinfo", "uid-1"
	return p
}

func (p *play) status(initial bool, phase, applied, promoted string, failed int64) []event.Event {
	p.t.Helper()
	p.now = p.now.Add(time.Second)
	p.c.Phase, p.c.AppliedSpec, p.c.PromotedSpec, p.c.FailedChecks, p.c.TransitionTime = phase, applied, promoted, failed, p.now
	c := p.c
	next, evs := p.tr.observe("test/podinfo", &c, initial, p.now, func() crdwatch.Workload { return p.wl })
	p.tr.commit("test/podinfo", next)
	return evs
}

func kinds(evs []event.Event) []event.Kind {
	var out []event.Kind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func TestCanaryLifecycle(t *testing.T) {
	p := newPlay(t)
	// Bootstrap: not a deployment.
	assert.Empty(t, p.status(false, "", "", "", 0))
	assert.Empty(t, p.status(false, "Initializing", "h1", "", 0))
	assert.Empty(t, p.status(false, "Initialized", "h1", "h1", 0))

	// A new revision analysed and promoted.
	p.wl = crdwatch.Workload{CommitSHA: "abc1234", CommitTime: t0}
	evs := p.status(false, "Progressing", "h2", "h1", 0)
	require.Equal(t, []event.Kind{event.DeploymentStarted}, kinds(evs))
	started := evs[0]
	assert.Equal(t, event.SourceFlagger, started.Source)
	assert.Equal(t, event.Service{Namespace: "test", Name: "podinfo", Environment: "production"}, started.Service)
	assert.Equal(t, "abc1234", started.Revision)
	assert.Equal(t, p.now, started.Time, "the analysis starts when Flagger wrote Progressing")
	assert.Empty(t, p.status(false, "Promoting", "h2", "h1", 0))
	assert.Empty(t, p.status(false, "Finalising", "h2", "h1", 0))
	evs = p.status(false, "Succeeded", "h2", "h2", 0)
	require.Equal(t, []event.Kind{event.DeploymentSucceeded}, kinds(evs))
	assert.Equal(t, started.DeploymentID, evs[0].DeploymentID)
	assert.Equal(t, p.now, evs[0].Time)
	assert.Empty(t, p.status(false, "Succeeded", "h2", "h2", 0), "seen again: nothing new")

	// A revision whose checks reach the threshold: failed, with the reason.
	assert.Len(t, p.status(false, "Progressing", "h3", "h2", 0), 1)
	assert.Empty(t, p.status(false, "Progressing", "h3", "h2", 10))
	evs = p.status(false, "Failed", "h3", "h2", 0)
	require.Equal(t, []event.Kind{event.DeploymentFailed}, kinds(evs))
	assert.Equal(t, ReasonCanaryAnalysisFailed, evs[0].Reason)
	failed := evs[0].DeploymentID

	// The promoted revision again: a rollback of the failed one, then its
	// promotion.
	evs = p.status(false, "Progressing", "h2", "h2", 0)
	require.Equal(t, []event.Kind{event.DeploymentRolledBack}, kinds(evs))
	assert.Equal(t, failed, evs[0].PreviousDeploymentID)
	assert.NotEqual(t, started.DeploymentID, evs[0].DeploymentID, "a new rollout of an earlier revision")
	evs = p.status(false, "Succeeded", "h2", "h2", 0)
	require.Equal(t, []event.Kind{event.DeploymentSucceeded}, kinds(evs))

	// Failed without the checks seen failing (a deadline): CanaryFailed.
	assert.Len(t, p.status(false, "Progressing", "h4", "h2", 0), 1)
	evs = p.status(false, "Failed", "h4", "h2", 0)
	require.Equal(t, []event.Kind{event.DeploymentFailed}, kinds(evs))
	assert.Equal(t, ReasonCanaryFailed, evs[0].Reason)
}

func TestCanaryInitialList(t *testing.T) {
	// Finished before the source started: not counted.
	p := newPlay(t)
	assert.Empty(t, p.status(true, "Succeeded", "h2", "h2", 0))
	assert.Empty(t, p.status(false, "Succeeded", "h2", "h2", 0))
	// Under analysis when the source started: counted when it finishes.
	p = newPlay(t)
	assert.Empty(t, p.status(true, "Progressing", "h2", "h1", 0))
	evs := p.status(false, "Succeeded", "h2", "h2", 0)
	require.Equal(t, []event.Kind{event.DeploymentSucceeded}, kinds(evs))
}

func TestCanaryRecreated(t *testing.T) {
	p := newPlay(t)
	assert.Empty(t, p.status(false, "Initialized", "h1", "h1", 0))
	p.c.UID = "uid-2"
	assert.Empty(t, p.status(false, "Initialized", "h1", "h1", 0), "a re-created Canary bootstraps again")
	assert.Len(t, p.status(false, "Progressing", "h2", "h1", 0), 1)
}
