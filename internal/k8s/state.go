package k8s

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Phases of a saved rollout (RolloutState.Phase).
const (
	PhasePending   = "pending"
	PhaseSucceeded = "succeeded"
	PhaseFailed    = "failed"
)

// DeploymentState is what the tracker knows of one Deployment, as saved in
// a Store.
type DeploymentState struct {
	Namespace  string
	Name       string
	UID        types.UID
	Generation int64
	// TemplateHash identifies the current pod template; History holds the
	// earlier ones, oldest first (for rollback detection).
	TemplateHash uint64
	History      []uint64
	// Rollout is the current template's rollout.
	Rollout RolloutState
}

// RolloutState is one rollout of a saved Deployment.
type RolloutState struct {
	ID      string
	Started time.Time
	// Phase is PhasePending, PhaseSucceeded or PhaseFailed.
	Phase string
	// Preexisting marks a rollout that had finished before tracking began:
	// it is never counted.
	Preexisting bool
}

// SavedState is what a Store holds for the tracker.
type SavedState struct {
	// Since is when the store began tracking; zero when it holds nothing.
	Since       time.Time
	Deployments []DeploymentState
}

// Store keeps the tracker's state across restarts (the receiver's storage
// extension). SaveDeployments writes since and the changed Deployments and
// removes the deleted ones, all at once.
type Store interface {
	LoadDeployments(ctx context.Context) (SavedState, error)
	SaveDeployments(ctx context.Context, since time.Time, put []DeploymentState, deleted []types.NamespacedName) error
}

func phaseName(p phase) string {
	switch p {
	case phaseSucceeded:
		return PhaseSucceeded
	case phaseFailed:
		return PhaseFailed
	}
	return PhasePending
}

func parsePhase(name string) (phase, error) {
	switch name {
	case PhasePending:
		return phasePending, nil
	case PhaseSucceeded:
		return phaseSucceeded, nil
	case PhaseFailed:
		return phaseFailed, nil
	}
	return 0, fmt.Errorf("unknown rollout phase %q", name)
}

func (tr *tracked) state(key types.NamespacedName) DeploymentState {
	return DeploymentState{
		Namespace: key.Namespace, Name: key.Name,
		UID: tr.uid, Generation: tr.generation, TemplateHash: tr.hash,
		History: slices.Clone(tr.history),
		Rollout: RolloutState{ID: tr.rollout.id(key.Namespace, key.Name, tr.uid), Started: tr.rollout.started, Phase: phaseName(tr.rollout.phase), Preexisting: tr.rollout.preexisting},
	}
}

// rolloutGeneration is the generation at the end of a rollout ID
// ("...@GENERATION").
func rolloutGeneration(id string) (int64, bool) {
	i := strings.LastIndexByte(id, '@')
	if i < 0 {
		return 0, false
	}
	gen, err := strconv.ParseInt(id[i+1:], 10, 64)
	return gen, err == nil
}

// restore replaces the tracker's state with a saved one. A store that held
// nothing starts tracking at now.
func (t *tracker) restore(saved SavedState, now time.Time) error {
	deployments := map[types.NamespacedName]*tracked{}
	for _, d := range saved.Deployments {
		key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
		p, err := parsePhase(d.Rollout.Phase)
		if err != nil {
			return fmt.Errorf("saved Deployment %s: %w", key, err)
		}
		r := rollout{started: d.Rollout.Started, phase: p, preexisting: d.Rollout.Preexisting}
		// IDs are saved whole; keep only the generation when the ID is
		// the one rolloutID derives from it.
		if gen, ok := rolloutGeneration(d.Rollout.ID); ok && rolloutID(d.Namespace, d.Name, d.UID, gen) == d.Rollout.ID {
			r.generation = gen
		} else {
			r.savedID = d.Rollout.ID
		}
		deployments[key] = &tracked{
			uid: d.UID, generation: d.Generation, hash: d.TemplateHash, history: slices.Clone(d.History),
			rollout: r,
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deployments = deployments
	// A store that held nothing is a first start: the first list is taken
	// as without a store.
	t.restored = !saved.Since.IsZero()
	t.since = saved.Since
	if t.since.IsZero() {
		t.since, t.sinceDirty = now, true
	}
	t.dirty = map[types.NamespacedName]bool{}
	return nil
}

// changes returns what changed since the last call: the Deployments to
// save and those to delete. keys lists both, for redirty.
func (t *tracker) changes() (since time.Time, put []DeploymentState, deleted []types.NamespacedName, keys []types.NamespacedName, changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key := range t.dirty {
		keys = append(keys, key)
		if tr, ok := t.deployments[key]; ok {
			put = append(put, tr.state(key))
		} else {
			deleted = append(deleted, key)
		}
	}
	clear(t.dirty)
	changed = len(keys) > 0 || t.sinceDirty
	t.sinceDirty = false
	return t.since, put, deleted, keys, changed
}

// redirty marks keys changed again after a failed save.
func (t *tracker) redirty(keys []types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		t.markDirty(k)
	}
	t.sinceDirty = true
}

// prune forgets the Deployments for which live is false: deleted while the
// receiver was down (or no longer watched).
func (t *tracker) prune(live func(types.NamespacedName) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for key := range t.deployments {
		if !live(key) {
			delete(t.deployments, key)
			t.markDirty(key)
			n++
		}
	}
	return n
}
