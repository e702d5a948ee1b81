package argorollouts

import (
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// rollout is one revision being rolled out.
type rollout struct {
	id      string
	started time.Time
	phase   crdwatch.Phase
	// preexisting marks a rollout already finished when the source
	// started: an earlier run counted it (or none did); it is not counted.
	preexisting bool
}

// tracked is the source's state of one Rollout.
type tracked struct {
	uid types.UID
	// revisions are the pod hashes; the current one is empty until the
	// controller wrote one.
	revisions crdwatch.Revisions
	rollout   rollout
}

func (t *tracked) clone() *tracked {
	c := *t
	c.revisions = t.revisions.Clone()
	return &c
}

// tracker turns successive observations of Rollouts into events. It is
// used by the worker only (one goroutine): no lock.
type tracker struct {
	env      *k8s.EnvironmentConfig
	rollouts map[string]*tracked
}

func newTracker(env *k8s.EnvironmentConfig) *tracker {
	return &tracker{env: env, rollouts: map[string]*tracked{}}
}

// observe returns the events that the observation of r at now implies and
// the Rollout's state after them, which commit stores once the events are
// taken. initial is true for a Rollout of the first list: it existed when
// the source started, and only a revision unfinished then is counted (when
// it finishes), as the Kubernetes source does with Deployments.
func (t *tracker) observe(key string, r *Rollout, initial bool, now time.Time) (*tracked, []event.Event) {
	prev := t.rollouts[key]
	var out []event.Event
	var tr *tracked
	switch {
	case prev == nil || prev.uid != r.UID:
		tr = &tracked{uid: r.UID, revisions: crdwatch.Revisions{Current: r.PodHash}}
		tr.rollout = rollout{id: rolloutID(r), started: now}
		if initial {
			if p, _ := evaluate(r); p != crdwatch.PhasePending {
				tr.rollout.phase, tr.rollout.preexisting = p, true
			}
			return tr, nil
		}
		// A new Rollout: its first revision is deployed (Argo Rollouts
		// skips the steps for it). It started when it was created.
		if c := r.CreationTimestamp.Time; !c.IsZero() && c.Before(now) {
			tr.rollout.started = c
		}
		out = append(out, t.newEvent(event.DeploymentStarted, r, tr.rollout, tr.rollout.started))
	default:
		tr = prev.clone()
	}
	// A new revision, or an earlier one again: a rollback (`kubectl argo
	// rollouts undo`, or the template set back). Only once the controller
	// has observed the spec is its hash the revision's.
	if changed, rollback := tr.revisions.Next(observedHash(r)); changed {
		previous := tr.rollout
		tr.rollout = rollout{id: rolloutID(r), started: now}
		if rollback {
			ev := t.newEvent(event.DeploymentRolledBack, r, tr.rollout, now)
			ev.PreviousDeploymentID = previous.id
			out = append(out, ev)
		} else {
			// The canary's steps (or the blue-green preview) run from
			// here: their time is the deploy stage of the lead time.
			out = append(out, t.newEvent(event.DeploymentStarted, r, tr.rollout, now))
		}
	}
	if tr.rollout.preexisting {
		return tr, out
	}
	switch p, reason := evaluate(r); {
	case p == crdwatch.PhaseSucceeded && tr.rollout.phase != crdwatch.PhaseSucceeded:
		// From pending: promoted. From failed: retried after an abort and
		// promoted, which the engine takes as the recovery.
		tr.rollout.phase = crdwatch.PhaseSucceeded
		out = append(out, t.newEvent(event.DeploymentSucceeded, r, tr.rollout, crdwatch.Clamp(r.ProgressingUpdated, tr.rollout.started, now)))
	case p == crdwatch.PhaseFailed && tr.rollout.phase == crdwatch.PhasePending:
		tr.rollout.phase = crdwatch.PhaseFailed
		at := r.AbortedAt
		if at.IsZero() {
			at = r.ProgressingUpdated
		}
		ev := t.newEvent(event.DeploymentFailed, r, tr.rollout, crdwatch.Clamp(at, tr.rollout.started, now))
		ev.Reason = reason
		out = append(out, ev)
	}
	return tr, out
}

// observedHash is the revision's pod hash once the controller has observed
// the Rollout's spec, else "".
func observedHash(r *Rollout) string {
	if !r.Observed {
		return ""
	}
	return r.PodHash
}

// commit stores the state observe returned.
func (t *tracker) commit(key string, tr *tracked) { t.rollouts[key] = tr }

// forget drops a deleted Rollout: an unfinished revision of it is not
// counted.
func (t *tracker) forget(key string) { delete(t.rollouts, key) }

func (t *tracker) newEvent(kind event.Kind, r *Rollout, ro rollout, at time.Time) event.Event {
	return event.Event{
		Kind:         kind,
		Source:       event.SourceArgoRollouts,
		ID:           ro.id + "/" + kind.String(),
		Time:         at,
		Service:      event.Service{Namespace: r.Namespace, Name: r.Name, Environment: crdwatch.EnvironmentFor(t.env, r.Namespace, r.Environment)},
		DeploymentID: ro.id,
		Revision:     r.CommitSHA,
		CommitTime:   r.CommitTime,
		Team:         r.Team,
	}
}

// rolloutID names a rollout across restarts: the Rollout (UID: a
// re-created one is another) and the generation that introduced the
// revision (so a rollback to an earlier one is a new rollout), with the
// workload's for a Rollout that takes its template from a Deployment.
func rolloutID(r *Rollout) string {
	id := r.Namespace + "/" + r.Name + "/" + string(r.UID) + "@" + strconv.FormatInt(r.Generation, 10)
	if r.WorkloadGeneration != "" {
		id += "." + r.WorkloadGeneration
	}
	return id
}

// evaluate reads the revision's outcome from the status the controller
// wrote (its rolloututil.CalculateRolloutPhase), and the reason of a
// failure.
func evaluate(r *Rollout) (crdwatch.Phase, string) {
	if !r.Observed || r.PodHash == "" {
		return crdwatch.PhasePending, ""
	}
	if r.Abort || r.Phase == phaseDegraded {
		switch {
		case r.AnalysisFailed:
			return crdwatch.PhaseFailed, ReasonAnalysisRunFailed
		case r.ProgressingReason == reasonTimedOut:
			return crdwatch.PhaseFailed, ReasonProgressDeadlineExceeded
		case r.InvalidSpec:
			return crdwatch.PhaseFailed, ReasonInvalidSpec
		}
		return crdwatch.PhaseFailed, ReasonRolloutAborted
	}
	// Fully promoted (the controller's IsFullyPromoted) and healthy.
	if r.Phase == phaseHealthy && r.StableRS == r.PodHash {
		return crdwatch.PhaseSucceeded, ""
	}
	return crdwatch.PhasePending, ""
}
