package engine

import (
	"time"
)

// Bounds on per-service memory: enough history to correlate rollbacks,
// incidents and redeployments, small enough for thousands of services.
const (
	maxDeploymentsPerService = 32
	maxRevisionsPerService   = 256
	maxOpenIncidents         = 256
)

type outcome uint8

const (
	outcomePending outcome = iota
	outcomeSucceeded
	outcomeFailed
)

type deploymentState struct {
	id             string
	revision       string
	started        time.Time
	finished       time.Time
	outcome        outcome
	rollback       bool
	failureCounted bool
}

// serviceState is what the engine remembers about one service.
type serviceState struct {
	// deployments, oldest first, at most maxDeploymentsPerService.
	deployments []*deploymentState
	// deployedRevisions remembers revisions whose lead time was recorded,
	// so that a redeployment of the same commit does not record it again.
	deployedRevisions map[string]struct{}
	revisionOrder     []string
	// failingSince is when the unrecovered change failure started; zero
	// while the service is healthy.
	failingSince time.Time
	// failingIncident is the incident that made the service fail, if any;
	// its resolution is a recovery.
	failingIncident string
	openIncidents   []string
}

// deployment returns the deployment with the given id, adding it as pending
// when it is new.
func (s *serviceState) deployment(id, revision string, at time.Time) *deploymentState {
	for i := len(s.deployments) - 1; i >= 0; i-- {
		if d := s.deployments[i]; d.id == id {
			if d.revision == "" {
				d.revision = revision
			}
			return d
		}
	}
	d := &deploymentState{id: id, revision: revision, started: at}
	if len(s.deployments) == maxDeploymentsPerService {
		copy(s.deployments, s.deployments[1:])
		s.deployments = s.deployments[:len(s.deployments)-1]
	}
	s.deployments = append(s.deployments, d)
	return d
}

// lastSucceededWithin returns the most recent deployment that succeeded at
// or before at and no longer than window before it.
func (s *serviceState) lastSucceededWithin(at time.Time, window time.Duration) *deploymentState {
	var best *deploymentState
	for _, d := range s.deployments {
		if d.outcome != outcomeSucceeded || d.finished.After(at) || at.Sub(d.finished) > window {
			continue
		}
		if best == nil || d.finished.After(best.finished) {
			best = d
		}
	}
	return best
}

func (s *serviceState) revisionDeployed(rev string) bool {
	_, ok := s.deployedRevisions[rev]
	return ok
}

func (s *serviceState) markRevisionDeployed(rev string) {
	if s.deployedRevisions == nil {
		s.deployedRevisions = map[string]struct{}{}
	}
	if len(s.revisionOrder) == maxRevisionsPerService {
		delete(s.deployedRevisions, s.revisionOrder[0])
		s.revisionOrder = s.revisionOrder[1:]
	}
	s.deployedRevisions[rev] = struct{}{}
	s.revisionOrder = append(s.revisionOrder, rev)
}

func (s *serviceState) incidentOpen(id string) bool {
	for _, open := range s.openIncidents {
		if open == id {
			return true
		}
	}
	return false
}

func (s *serviceState) openIncident(id string) {
	if len(s.openIncidents) == maxOpenIncidents {
		s.openIncidents = s.openIncidents[1:]
	}
	s.openIncidents = append(s.openIncidents, id)
}

func (s *serviceState) closeIncident(id string) {
	for i, open := range s.openIncidents {
		if open == id {
			s.openIncidents = append(s.openIncidents[:i], s.openIncidents[i+1:]...)
			return
		}
	}
}

// dedup remembers applied event IDs for a window of event time.
type dedup struct {
	ids    map[dedupKey]struct{}
	order  []dedupEntry
	newest time.Time
}

type dedupKey struct{ source, id string }

type dedupEntry struct {
	key dedupKey
	at  time.Time
}

func newDedup() dedup { return dedup{ids: map[dedupKey]struct{}{}} }

func (d *dedup) contains(source, id string) bool {
	_, ok := d.ids[dedupKey{source, id}]
	return ok
}

// add records id and forgets ids older than window before the newest event
// time seen. Event time, not arrival order, drives expiry, keeping it pure.
func (d *dedup) add(source, id string, at time.Time, window time.Duration) {
	k := dedupKey{source, id}
	d.ids[k] = struct{}{}
	d.order = append(d.order, dedupEntry{k, at})
	if at.After(d.newest) {
		d.newest = at
	}
	cutoff := d.newest.Add(-window)
	n := 0
	for n < len(d.order) && d.order[n].at.Before(cutoff) {
		delete(d.ids, d.order[n].key)
		n++
	}
	if n > 0 {
		d.order = append(d.order[:0], d.order[n:]...)
	}
}

// pendingChanges maps a commit to its commit time until a deployment ships
// it, bounded by a count; the oldest entries are forgotten first.
type pendingChanges struct {
	max   int
	times map[string]time.Time
	order []string
}

func newPendingChanges(max int) pendingChanges {
	return pendingChanges{max: max, times: map[string]time.Time{}}
}

func (p *pendingChanges) add(rev string, at time.Time) {
	if _, ok := p.times[rev]; ok {
		return
	}
	for len(p.times) >= p.max && len(p.order) > 0 {
		delete(p.times, p.order[0])
		p.order = p.order[1:]
	}
	p.times[rev] = at
	p.order = append(p.order, rev)
}

// take returns the commit time of rev. The entry stays, since the same
// commit may ship to several services.
func (p *pendingChanges) take(rev string) (time.Time, bool) {
	t, ok := p.times[rev]
	return t, ok
}
