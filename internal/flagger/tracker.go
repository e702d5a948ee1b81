package flagger

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

type rollout struct {
	id      string
	started time.Time
	phase   crdwatch.Phase
	// preexisting marks a revision not counted: finished before the
	// source started, or Flagger's bootstrap of a new Canary (the target
	// as it already runs copied to the primary: no change shipped).
	preexisting bool
	// maxFailedChecks is the most failed checks seen during the analysis:
	// Flagger resets status.failedChecks when it writes phase Failed.
	maxFailedChecks int64
	// workload is the target's commit, environment and team when the
	// revision was first seen.
	workload crdwatch.Workload
}

type tracked struct {
	uid types.UID
	// revisions are the applied specs' hashes; the current one is empty
	// until Flagger wrote one.
	revisions crdwatch.Revisions
	rollout   rollout
}

func (t *tracked) clone() *tracked {
	c := *t
	c.revisions = t.revisions.Clone()
	return &c
}

// tracker turns successive observations of Canaries into events; the
// worker alone uses it.
type tracker struct {
	env      *k8s.EnvironmentConfig
	canaries map[string]*tracked
}

func newTracker(env *k8s.EnvironmentConfig) *tracker {
	return &tracker{env: env, canaries: map[string]*tracked{}}
}

// observe returns the events the observation of c at now implies and the
// Canary's state after them (commit stores it once they are taken).
// workload reads the target's commit, environment and team; it is called
// when a new revision is seen. initial: c came with the first list.
func (t *tracker) observe(key string, c *Canary, initial bool, now time.Time, workload func() crdwatch.Workload) (*tracked, []event.Event) {
	prev := t.canaries[key]
	var out []event.Event
	var tr *tracked
	switch {
	case prev == nil || prev.uid != c.UID:
		tr = &tracked{uid: c.UID, revisions: crdwatch.Revisions{Current: c.AppliedSpec}}
		tr.rollout = rollout{id: rolloutID(c), started: now, maxFailedChecks: c.FailedChecks}
		switch p, _ := evaluate(c, tr.rollout); {
		case initial && p != crdwatch.PhasePending:
			tr.rollout.phase, tr.rollout.preexisting = p, true
			return tr, nil
		case initial:
			// Under analysis when the source started: counted when it
			// finishes.
			tr.rollout.workload = workload()
			return tr, nil
		case analysing(c):
			// Created while the source was not watching and already
			// analysing a revision.
			tr.rollout.workload = workload()
			tr.rollout.started = crdwatch.Clamp(c.TransitionTime, time.Time{}, now)
			out = append(out, t.newEvent(event.DeploymentStarted, c, tr.rollout, tr.rollout.started))
		default:
			tr.rollout.preexisting = true
			return tr, nil
		}
	default:
		tr = prev.clone()
	}
	// Flagger's first hash is the bootstrap's; a later one is a new
	// revision, or an earlier one again: a rollback.
	if changed, rollback := tr.revisions.Next(c.AppliedSpec); changed {
		previous := tr.rollout
		// Flagger writes the new hash with phase Progressing and the
		// time of that transition: the analysis (the canary's steps)
		// runs from there, the deploy stage of the lead time.
		at := crdwatch.Clamp(c.TransitionTime, previous.started, now)
		tr.rollout = rollout{id: rolloutID(c), started: at, maxFailedChecks: c.FailedChecks, workload: workload()}
		if rollback {
			ev := t.newEvent(event.DeploymentRolledBack, c, tr.rollout, at)
			ev.PreviousDeploymentID = previous.id
			out = append(out, ev)
		} else {
			out = append(out, t.newEvent(event.DeploymentStarted, c, tr.rollout, at))
		}
	}
	tr.rollout.maxFailedChecks = max(tr.rollout.maxFailedChecks, c.FailedChecks)
	if tr.rollout.preexisting {
		return tr, out
	}
	switch p, reason := evaluate(c, tr.rollout); {
	case p == crdwatch.PhaseSucceeded && tr.rollout.phase != crdwatch.PhaseSucceeded:
		tr.rollout.phase = crdwatch.PhaseSucceeded
		out = append(out, t.newEvent(event.DeploymentSucceeded, c, tr.rollout, crdwatch.Clamp(c.TransitionTime, tr.rollout.started, now)))
	case p == crdwatch.PhaseFailed && tr.rollout.phase == crdwatch.PhasePending:
		tr.rollout.phase = crdwatch.PhaseFailed
		ev := t.newEvent(event.DeploymentFailed, c, tr.rollout, crdwatch.Clamp(c.TransitionTime, tr.rollout.started, now))
		ev.Reason = reason
		out = append(out, ev)
	}
	return tr, out
}

func (t *tracker) commit(key string, tr *tracked) { t.canaries[key] = tr }

func (t *tracker) forget(key string) { delete(t.canaries, key) }

func (t *tracker) newEvent(kind event.Kind, c *Canary, r rollout, at time.Time) event.Event {
	return event.Event{
		Kind:         kind,
		Source:       event.SourceFlagger,
		ID:           r.id + "/" + kind.String(),
		Time:         at,
		Service:      event.Service{Namespace: c.Namespace, Name: c.Target, Environment: crdwatch.EnvironmentFor(t.env, c.Namespace, r.workload.Environment)},
		DeploymentID: r.id,
		Revision:     r.workload.CommitSHA,
		CommitTime:   r.workload.CommitTime,
		Team:         r.workload.Team,
	}
}

// rolloutID names one analysis of a revision: the Canary (UID), Flagger's
// hash of the revision and the time Flagger began analysing it, so that a
// rollback to an earlier revision is a new rollout.
func rolloutID(c *Canary) string {
	return c.Namespace + "/" + c.Name + "/" + string(c.UID) + "@" + c.AppliedSpec + "@" + c.TransitionTime.UTC().Format(time.RFC3339)
}

// analysing reports whether Flagger is analysing or promoting a revision.
func analysing(c *Canary) bool {
	switch c.Phase {
	case "", flaggerInitializing, flaggerInitialized, flaggerSucceeded, flaggerFailed, flaggerTerminating, flaggerTerminated:
		return false
	}
	return true
}

// evaluate reads the revision's outcome from the phase Flagger wrote.
func evaluate(c *Canary, r rollout) (crdwatch.Phase, string) {
	switch c.Phase {
	case flaggerSucceeded:
		if c.PromotedSpec == c.AppliedSpec {
			return crdwatch.PhaseSucceeded, ""
		}
	case flaggerFailed:
		if max(r.maxFailedChecks, c.FailedChecks) >= c.Threshold {
			return crdwatch.PhaseFailed, ReasonCanaryAnalysisFailed
		}
		return crdwatch.PhaseFailed, ReasonCanaryFailed
	}
	return crdwatch.PhasePending, ""
}
