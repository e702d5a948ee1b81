package engine

import (
	"slices"
	"time"
)

// Bounds on per-service memory: enough history to correlate rollbacks,
// incidents and redeployments, small enough for thousands of services.
const (
	maxDeploymentsPerService = 32
	maxRevisionsPerService   = 1024
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
	source         string
	revision       string
	started        time.Time
	finished       time.Time
	outcome        outcome
	rollback       bool
	failureCounted bool
	// aliases are the ids other sources gave the same deployment.
	aliases []string
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

// find returns the deployment with the given id, or nil.
func (s *serviceState) find(id string) *deploymentState {
	for i := len(s.deployments) - 1; i >= 0; i-- {
		if d := s.deployments[i]; d.id == id || slices.Contains(d.aliases, id) {
			return d
		}
	}
	return nil
}

// latestExcept returns the most recent deployment other than id, or nil.
func (s *serviceState) latestExcept(id string) *deploymentState {
	for i := len(s.deployments) - 1; i >= 0; i-- {
		if d := s.deployments[i]; d.id != id && !slices.Contains(d.aliases, id) {
			return d
		}
	}
	return nil
}

// sameRollout returns the latest deployment when it ships revision from
// another source within window of at: Kubernetes and a CI system reporting
// one rollout are one deployment.
func (s *serviceState) sameRollout(source, revision string, at time.Time, window time.Duration) *deploymentState {
	if revision == "" || len(s.deployments) == 0 {
		return nil
	}
	d := s.deployments[len(s.deployments)-1]
	if d.revision != revision || d.source == source {
		return nil
	}
	ref := d.started
	if !d.finished.IsZero() {
		ref = d.finished
	}
	if diff := at.Sub(ref); diff > window || diff < -window {
		return nil
	}
	return d
}

// deployment returns the deployment with the given id, adding it as pending
// when it is new.
func (s *serviceState) deployment(id, source, revision string, at time.Time) *deploymentState {
	if d := s.find(id); d != nil {
		if d.revision == "" {
			d.revision = revision
		}
		return d
	}
	d := &deploymentState{id: id, source: source, revision: revision, started: at}
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

// commitGraph remembers commits reported by change events, with the
// commit before each on its branch, until deployments ship them. It is
// bounded by a count; the oldest commits are forgotten first.
type commitGraph struct {
	max     int
	commits map[string]*commit
	order   []string
}

type commit struct {
	time   time.Time
	parent string
	merged time.Time
}

func newCommitGraph(max int) commitGraph {
	return commitGraph{max: max, commits: map[string]*commit{}}
}

func (g *commitGraph) get(rev string) *commit { return g.commits[rev] }

// add records a commit; a later report of the same commit fills in what
// the first one lacked.
func (g *commitGraph) add(rev, parent string, at time.Time) *commit {
	if c, ok := g.commits[rev]; ok {
		if c.time.IsZero() {
			c.time = at
		}
		if c.parent == "" {
			c.parent = parent
		}
		return c
	}
	for len(g.commits) >= g.max && len(g.order) > 0 {
		delete(g.commits, g.order[0])
		g.order = g.order[1:]
	}
	c := &commit{time: at, parent: parent}
	g.commits[rev] = c
	g.order = append(g.order, rev)
	return c
}

func (g *commitGraph) len() int { return len(g.commits) }
