package argorollouts

import (
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// maxHistory is how many earlier revisions are remembered per Rollout for
// rollback detection: Argo Rollouts' default revisionHistoryLimit.
const maxHistory = 10

type phase uint8

const (
	phasePending phase = iota
	phaseSucceeded
	phaseFailed
)

// rollout is one revision being rolled out.
type rollout struct {
	id      string
	started time.Time
	phase   phase
	// preexisting marks a rollout already finished when the source
	// started: an earlier run counted it (or none did); it is not counted.
	preexisting bool
}

// tracked is the source's state of one Rollout.
type tracked struct {
	uid types.UID
	// hash is the revision's pod hash; empty until the controller wrote
	// one.
	hash string
	// history holds earlier hashes, oldest first.
	history []string
	rollout rollout
}

func (t *tracked) clone() *tracked {
	c := *t
	c.history = slices.Clone(t.history)
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
		tr = &tracked{uid: r.UID, hash: r.PodHash}
		tr.rollout = rollout{id: rolloutID(r), started: now}
		if initial {
			if p, _ := evaluate(r); p != phasePending {
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
	if r.Observed && r.PodHash != "" && r.PodHash != tr.hash {
		if tr.hash == "" {
			// The controller's first hash of the revision already tracked.
			tr.hash = r.PodHash
		} else {
			// A new revision, or an earlier one again: a rollback
			// (`kubectl argo rollouts undo`, or the template set back).
			previous := tr.rollout
			rollback := slices.Contains(tr.history, r.PodHash)
			tr.history = append(tr.history, tr.hash)
			if len(tr.history) > maxHistory {
				tr.history = tr.history[1:]
			}
			tr.hash = r.PodHash
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
	}
	if tr.rollout.preexisting {
		return tr, out
	}
	switch p, reason := evaluate(r); {
	case p == phaseSucceeded && tr.rollout.phase != phaseSucceeded:
		// From pending: promoted. From failed: retried after an abort and
		// promoted, which the engine takes as the recovery.
		tr.rollout.phase = phaseSucceeded
		out = append(out, t.newEvent(event.DeploymentSucceeded, r, tr.rollout, clamp(r.ProgressingUpdated, tr.rollout.started, now)))
	case p == phaseFailed && tr.rollout.phase == phasePending:
		tr.rollout.phase = phaseFailed
		at := r.AbortedAt
		if at.IsZero() {
			at = r.ProgressingUpdated
		}
		ev := t.newEvent(event.DeploymentFailed, r, tr.rollout, clamp(at, tr.rollout.started, now))
		ev.Reason = reason
		out = append(out, ev)
	}
	return tr, out
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
func evaluate(r *Rollout) (phase, string) {
	if !r.Observed || r.PodHash == "" {
		return phasePending, ""
	}
	if r.Abort || r.Phase == phaseDegraded {
		switch {
		case r.AnalysisFailed:
			return phaseFailed, ReasonAnalysisRunFailed
		case r.ProgressingReason == reasonTimedOut:
			return phaseFailed, ReasonProgressDeadlineExceeded
		case r.InvalidSpec:
			return phaseFailed, ReasonInvalidSpec
		}
		return phaseFailed, ReasonRolloutAborted
	}
	// Fully promoted (the controller's IsFullyPromoted) and healthy.
	if r.Phase == phaseHealthy && r.StableRS == r.PodHash {
		return phaseSucceeded, ""
	}
	return phasePending, ""
}

// clamp bounds an outcome's time by the rollout's start (second-granular
// status times) and now (clock skew); zero is now.
func clamp(t, started, now time.Time) time.Time {
	switch {
	case t.IsZero() || t.After(now):
		return now
	case t.Before(started):
		return started
	}
	return t
}
