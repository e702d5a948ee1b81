package crdwatch

import (
	"slices"
	"time"
)

// Phase is the outcome of a progressive rollout's revision as its
// controller reports it.
type Phase uint8

const (
	PhasePending Phase = iota
	PhaseSucceeded
	PhaseFailed
)

// MaxRevisions is how many earlier revisions are remembered per resource for
// rollback detection: Argo Rollouts' default revisionHistoryLimit, which
// Flagger's canaries are given too.
const MaxRevisions = 10

// Revisions is a resource's current revision (the pod-template hash its
// controller applies) and the earlier ones, oldest first, so that a
// template set back to an earlier revision reads as a rollback.
type Revisions struct {
	Current string
	earlier []string
}

// Next makes hash the current revision. changed is false when hash is
// empty, the current one, or the first hash of a resource whose revision
// was tracked before the controller wrote one; rollback is true when hash
// is one of the earlier revisions.
func (r *Revisions) Next(hash string) (changed, rollback bool) {
	switch {
	case hash == "" || hash == r.Current:
		return false, false
	case r.Current == "":
		r.Current = hash
		return false, false
	}
	rollback = slices.Contains(r.earlier, hash)
	r.earlier = append(r.earlier, r.Current)
	if len(r.earlier) > MaxRevisions {
		r.earlier = r.earlier[1:]
	}
	r.Current = hash
	return true, rollback
}

// Clone returns a copy that shares nothing with r.
func (r Revisions) Clone() Revisions {
	r.earlier = slices.Clone(r.earlier)
	return r
}

// Clamp bounds a status time by lo (the rollout's start: status times are
// second-granular) and now (clock skew); a zero time is now.
func Clamp(t, lo, now time.Time) time.Time {
	switch {
	case t.IsZero() || t.After(now):
		return now
	case t.Before(lo):
		return lo
	}
	return t
}
