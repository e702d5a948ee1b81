package k8s

import (
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Reasons the Deployment controller writes on the Progressing condition.
const (
	reasonNewReplicaSetAvailable   = "NewReplicaSetAvailable"
	reasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
)

// maxHistory is how many earlier template revisions are remembered per
// Deployment for rollback detection; it matches the Deployment default
// revisionHistoryLimit.
const maxHistory = 10

type phase uint8

const (
	phasePending phase = iota
	phaseSucceeded
	phaseFailed
)

// rollout is one pod-template revision being rolled out.
type rollout struct {
	// generation introduced the template; with the Deployment's
	// namespace, name and UID it names the rollout (see rolloutID), so
	// that no ID string is kept per Deployment.
	generation int64
	// savedID is the ID a restored state held when it is not the one
	// rolloutID derives (an older format); empty otherwise.
	savedID string
	started time.Time
	phase   phase
	// preexisting marks a rollout that had already finished when the
	// receiver started: it was counted (or not) by an earlier run, so none
	// of its transitions are counted now.
	preexisting bool
	// byRevision marks a rollout found running by the first list, to be
	// named by its revision (see observe) once the controller has written
	// it.
	byRevision bool
}

type tracked struct {
	uid        types.UID
	generation int64
	hash       uint64
	// history holds earlier template hashes, oldest first.
	history []uint64
	rollout rollout
}

func (a *tracked) equal(b *tracked) bool {
	return a.uid == b.uid && a.generation == b.generation && a.hash == b.hash &&
		slices.Equal(a.history, b.history) && a.rollout == b.rollout
}

func (a *tracked) clone() *tracked {
	c := *a
	c.history = slices.Clone(a.history)
	return &c
}

// tracker turns successive observations of Deployments into rollout events.
// It keeps its own per-Deployment state rather than trusting the informer's
// old object, so that relists after a watch expiry or an API server restart
// are compared with what was last seen, not re-counted.
//
// With a Store, that state also survives the receiver: restore loads it
// before the informers start, and the Deployments of their first list are
// then compared with what the previous run saw (see observe).
type tracker struct {
	env *EnvironmentConfig

	mu          sync.Mutex
	deployments map[types.NamespacedName]*tracked
	// restored is set when the state came from a Store that held one;
	// since is when that store started tracking: a Deployment it does not
	// know but created after since was created while the receiver was
	// down.
	restored bool
	since    time.Time
	// dirty holds the Deployments changed (or forgotten) since the last
	// save. It is nil until restore (only a Source with a Store restores):
	// without a store nothing is saved, and marking every Deployment would
	// only cost memory.
	// save; sinceDirty is set until since is saved.
	dirty      map[types.NamespacedName]bool
	sinceDirty bool
}

func newTracker(env *EnvironmentConfig) *tracker {
	return &tracker{env: env, deployments: map[types.NamespacedName]*tracked{}}
}

// observe folds one observation of d, made at now, into the tracker and
// returns the events it implies. initial is true for objects of the
// informer's first list: Deployments that existed when the receiver started.
//
// Without a restored state, those are taken as they are: a finished rollout
// was counted (or not) before the receiver ran, an unfinished one is
// counted when it finishes. With a restored state, the first list is
// compared with what the previous run saw, so that what happened while the
// receiver was down is counted once: a Deployment created after the store
// started tracking is a new rollout, a newer template or generation than
// the saved one is a rollout (or a rollback) and its status is evaluated
// as usual. Several template changes while down are one rollout, the last.
func (t *tracker) observe(d *Deployment, initial bool, now time.Time) []event.Event {
	t.mu.Lock()
	defer t.mu.Unlock()

	key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
	tr, ok := t.deployments[key]
	if t.dirty != nil {
		var before *tracked
		if ok {
			before = tr.clone()
		}
		defer func() {
			if before == nil || !before.equal(t.deployments[key]) {
				t.dirty[key] = true
			}
		}()
	}
	var out []event.Event
	switch {
	case !ok || tr.uid != d.UID:
		tr = &tracked{uid: d.UID, generation: d.Generation, hash: d.TemplateHash}
		tr.rollout = rollout{generation: d.Generation, started: now}
		t.deployments[key] = tr
		switch {
		case initial && t.restored && !d.CreationTimestamp.IsZero() && !d.CreationTimestamp.Time.Before(t.since.Truncate(time.Second)):
			// Created while the receiver was down (creation times have
			// whole seconds): its creation is a rollout, which started
			// when it was created.
			if created := d.CreationTimestamp.Time; created.Before(now) {
				tr.rollout.started = created
			}
			out = append(out, t.newEvent(event.DeploymentStarted, d, tr.rollout, tr.rollout.started))
		case initial:
			// Existing before the receiver: only an unfinished rollout can
			// still be counted, when it finishes. It is named by its
			// revision, as the history import names it (the generation
			// that introduced it is not known, and a scale since would
			// change the current one), so that both are one rollout.
			tr.rollout.byRevision = true
			tr.rollout.nameByRevision(d)
			if p := evaluate(d); p != phasePending {
				tr.rollout.phase = p
				tr.rollout.preexisting = true
			}
			return nil
		default:
			out = append(out, t.newEvent(event.DeploymentStarted, d, tr.rollout, now))
		}
	case d.Generation > tr.generation && d.TemplateHash != tr.hash:
		// A new pod-template revision. Both checks matter: a scale bumps
		// the generation but not the template, and an API server upgrade
		// can change defaulted template fields without a new generation.
		previous := tr.rollout
		rollback := slices.Contains(tr.history, d.TemplateHash)
		tr.history = append(tr.history, tr.hash)
		if len(tr.history) > maxHistory {
			tr.history = tr.history[1:]
		}
		tr.hash = d.TemplateHash
		tr.rollout = rollout{generation: d.Generation, started: now}
		at, finishedWhileDown := now, false
		if initial {
			// Only a restored state knows a Deployment at the first list:
			// the template changed while the receiver was down. When the
			// rollout has finished, its start is unknown (after the
			// previous one's) and its outcome is at the Progressing
			// condition's time, which the rollback (if it is one) must not
			// follow, or its recovery would end before it began.
			if evaluate(d) != phasePending {
				finishedWhileDown = true
				tr.rollout.started = previous.started
				at = conditionTime(d, tr.rollout, now)
				tr.rollout.started = at
			}
		}
		switch {
		case rollback:
			ev := t.newEvent(event.DeploymentRolledBack, d, tr.rollout, at)
			ev.PreviousDeploymentID = previous.id(d.Namespace, d.Name, d.UID)
			out = append(out, ev)
		case finishedWhileDown:
			// Finished while the receiver was down: no start event, so
			// that no build or deploy stage is made up from a start time
			// nobody observed.
		default:
			// A rollout superseded before it finished never reached
			// production as such; only its successor is counted.
			out = append(out, t.newEvent(event.DeploymentStarted, d, tr.rollout, now))
		}
	}
	if d.Generation > tr.generation {
		tr.generation = d.Generation
	}
	// Each decoded object carries its own copy of the UID: keep the
	// stored object's, so that the tracker does not hold an older one.
	tr.uid = d.UID

	if tr.rollout.preexisting {
		return out
	}
	tr.rollout.nameByRevision(d)
	switch p := evaluate(d); {
	case p == phaseSucceeded && tr.rollout.phase != phaseSucceeded:
		// From pending: a successful deployment. From failed: the rollout
		// completed after its deadline, which the engine takes as recovery.
		tr.rollout.phase = phaseSucceeded
		out = append(out, t.newEvent(event.DeploymentSucceeded, d, tr.rollout, conditionTime(d, tr.rollout, now)))
	case p == phaseFailed && tr.rollout.phase == phasePending:
		tr.rollout.phase = phaseFailed
		ev := t.newEvent(event.DeploymentFailed, d, tr.rollout, conditionTime(d, tr.rollout, now))
		ev.Reason = reasonProgressDeadlineExceeded
		out = append(out, ev)
	}
	return out
}

// forget drops a deleted Deployment. An unfinished rollout of it is not
// counted.
func (t *tracker) forget(namespace, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := types.NamespacedName{Namespace: namespace, Name: name}
	if _, ok := t.deployments[key]; ok {
		delete(t.deployments, key)
		t.markDirty(key)
	}
}

// markDirty records that key must be saved; t.mu is held.
func (t *tracker) markDirty(key types.NamespacedName) {
	if t.dirty != nil {
		t.dirty[key] = true
	}
}

func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.deployments)
}

func (t *tracker) newEvent(kind event.Kind, d *Deployment, r rollout, at time.Time) event.Event {
	id := r.id(d.Namespace, d.Name, d.UID)
	return event.Event{
		Kind:         kind,
		Source:       event.SourceKubernetes,
		ID:           id + "/" + kind.String(),
		Time:         at,
		Service:      event.Service{Namespace: d.Namespace, Name: d.Name, Environment: t.env.environmentFor(d.Namespace, d.Environment)},
		DeploymentID: id,
		Revision:     d.CommitSHA,
		CommitTime:   d.CommitTime,
		Team:         d.Team,
	}
}

// rolloutID names a rollout across restarts: the object (UID, so a
// re-created Deployment is another) and the generation that introduced the
// template (so a rollback to an old template is a new rollout).
func rolloutID(namespace, name string, uid types.UID, generation int64) string {
	return namespace + "/" + name + "/" + string(uid) + "@" + strconv.FormatInt(generation, 10)
}

// id is the rollout's ID; namespace, name and uid are its Deployment's.
func (r *rollout) id(namespace, name string, uid types.UID) string {
	if r.savedID != "" {
		return r.savedID
	}
	return rolloutID(namespace, name, uid, r.generation)
}

// nameByRevision names a rollout marked byRevision by the revision of d
// once the controller has acted on d's latest spec: the revision
// annotation is then the current ReplicaSet's. The first list may see a
// spec change (a scale) not acted on yet; no event is emitted for the
// rollout before (evaluate waits for the same).
func (r *rollout) nameByRevision(d *Deployment) {
	if r.byRevision && d.Revision > 0 && d.ObservedGeneration >= d.Generation {
		r.savedID = revisionRolloutID(d.Namespace, d.Name, d.UID, d.Revision)
		r.byRevision = false
	}
}

// evaluate reads a rollout's outcome from the Deployment's status, as
// `kubectl rollout status` does.
func evaluate(d *Deployment) phase {
	if d.ObservedGeneration < d.Generation {
		// The controller has not acted on the latest spec yet.
		return phasePending
	}
	if d.Progressing.Status == corev1.ConditionFalse && d.Progressing.Reason == reasonProgressDeadlineExceeded {
		return phaseFailed
	}
	if d.Progressing.Reason == reasonNewReplicaSetAvailable &&
		d.UpdatedReplicas == d.Replicas && d.AvailableReplicas == d.Replicas {
		return phaseSucceeded
	}
	return phasePending
}

// conditionTime is when the outcome happened: the Progressing condition's
// update time, which the controller sets when the reason changes, so a
// transition seen late (after a watch gap) keeps its real time. It is
// clamped to the rollout's observed start (second granularity, or a
// condition older than the rollout) and to now (clock skew).
func conditionTime(d *Deployment, r rollout, now time.Time) time.Time {
	t := d.Progressing.LastUpdateTime
	switch {
	case t.IsZero() || t.After(now):
		return now
	case t.Before(r.started):
		return r.started
	}
	return t
}
