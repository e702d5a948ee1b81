package engine

import (
	"slices"
	"time"
)

// Bounds on per-service memory: enough history to correlate rollbacks,
// incidents and redeployments, and to compute the rolling values, small
// enough for thousands of services.
const (
	maxDeploymentsPerService = 32
	maxRevisionsPerService   = 1024
	maxIncidentsPerService   = 256
	maxFailuresPerService    = 32
	// Rolling history: per service, the newest entries within the longest
	// window are kept, at most this many.
	maxHistoryPerService    = 4096
	maxLeadTimesPerService  = 4096
	maxRecoveriesPerService = 1024
)

type outcome uint8

const (
	outcomePending outcome = iota
	outcomeSucceeded
	outcomeFailed
)

type deploymentState struct {
	id       string
	source   string
	revision string
	// started is the time of the first event seen for the deployment.
	started time.Time
	// startSeen is the time of its DeploymentStarted (or rollback) event;
	// zero when no start was reported.
	startSeen      time.Time
	finished       time.Time
	outcome        outcome
	rollback       bool
	hotfix         bool
	failureCounted bool
	// history is its entry in the service's rolling history, once it has an
	// outcome.
	history *deployRecord
	// aliases are the ids other sources gave the same deployment.
	aliases []string
	// events are the applied events of the deployment, for its report.
	events []EventRef
}

func (d *deploymentState) noteStart(at time.Time) {
	if d.startSeen.IsZero() || at.Before(d.startSeen) {
		d.startSeen = at
	}
	if at.Before(d.started) {
		d.started = at
	}
}

// failureState is a change failure waiting for its recovery.
type failureState struct {
	deployment *deploymentState
	// since is when the failure started (the failed deployment's finish,
	// or its start, or the incident it caused, whichever is first).
	since time.Time
	// detected is when the engine learnt of it; a recovery comes after.
	detected time.Time
	// incidents are the open incidents attributed to the deployment.
	incidents []string
}

type incidentState struct {
	id         string
	opened     time.Time
	resolved   time.Time
	attributed bool
}

// deployRecord is one production deployment with an outcome, for the
// rolling values.
type deployRecord struct {
	at            time.Time
	success       bool
	changeFailure bool
	rework        bool
}

// sample is one lead time or recovery time, at the time it was recorded.
type sample struct {
	at time.Time
	v  float64
}

// serviceState is what the engine remembers about one service.
type serviceState struct {
	production bool
	// deployments, oldest first, at most maxDeploymentsPerService.
	deployments []*deploymentState
	// deployedRevisions maps the revisions the service shipped (whose lead
	// time was handled) to the deployment that shipped them first, so that a
	// redeployment of the same commit does not record it again and a revert
	// finds the deployment it reverts.
	deployedRevisions map[string]string
	revisionOrder     []string
	// historyStarted is set by the first successful production deployment
	// (DeploymentReport.HistoryStart).
	historyStarted bool
	// historyStart is the start of the service's history: the earliest
	// event time of the deployment and incident events applied about it.
	// A commit known only from a deployment (never pushed or merged while
	// the receiver watched) and committed before it is before_history.
	historyStart time.Time
	// failures are the change failures not recovered yet, oldest first.
	failures []*failureState
	// incidents, oldest first, at most maxIncidentsPerService.
	incidents []*incidentState

	// Rolling history, oldest first (by arrival).
	history    []*deployRecord
	leadTimes  []sample
	recoveries []sample
	// deployed is set once a production deployment had an outcome: such
	// services get rolling values, zero deployments included.
	deployed bool
	// rolling caches the rolling values: every change to history (its
	// records included), leadTimes and recoveries goes through the methods
	// below, which update or invalidate it.
	rolling rollingCache
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

// causeOf returns the deployment an incident that starts at at belongs to:
// the latest deployment (by start) that started at or before at, whatever
// its outcome, in progress included, with at no later than window after
// its finish (or after its start when it had not finished by at). A
// rollback still rolling out at at is skipped: it undoes the deployment
// before it, which stays the cause. nil when there is none.
func (s *serviceState) causeOf(at time.Time, window time.Duration) *deploymentState {
	var best *deploymentState
	for _, d := range s.deployments {
		if d.started.IsZero() || d.started.After(at) {
			continue
		}
		finishedBy := !d.finished.IsZero() && !d.finished.After(at)
		if d.rollback && !finishedBy {
			continue
		}
		ref := d.started
		if finishedBy {
			ref = d.finished
		}
		if at.Sub(ref) > window {
			continue
		}
		if best == nil || !d.started.Before(best.started) {
			best = d
		}
	}
	return best
}

// causeInHistory is causeOf for an imported incident older than the
// deployments s remembers (maxDeploymentsPerService; an import reads a
// month of them before the incidents): the latest deployment of the
// rolling history that finished at or before at, within window. It
// returns the deployment of an open failure of that record, so a second
// incident joins it, or else a stand-in for it that is not kept among the
// deployments (a failure of it is exported as a deployment no longer
// remembered). nil when there is none.
func (s *serviceState) causeInHistory(at time.Time, window time.Duration) *deploymentState {
	var best *deployRecord
	for _, r := range s.history {
		if r.at.After(at) || at.Sub(r.at) > window {
			continue
		}
		if best == nil || !r.at.Before(best.at) {
			best = r
		}
	}
	if best == nil {
		return nil
	}
	for _, f := range s.failures {
		if f.deployment.history == best {
			return f.deployment
		}
	}
	d := &deploymentState{started: best.at, finished: best.at, outcome: outcomeSucceeded, history: best, failureCounted: best.changeFailure}
	if !best.success {
		d.outcome = outcomeFailed
	}
	return d
}

// hotfixTarget returns the deployment a hotfix (except) follows: the latest
// other deployment that started at or before at, whatever its outcome, as
// for an incident (causeOf): after a failed rollout the hotfix fixes that
// rollout, which already counts as a change failure and is not counted
// again, not the healthy deployment before it. A rollback still rolling
// out is left out, as by causeOf.
func (s *serviceState) hotfixTarget(at time.Time, except *deploymentState) *deploymentState {
	var best *deploymentState
	for _, d := range s.deployments {
		if d == except || d.started.After(at) {
			continue
		}
		if d.rollback && (d.finished.IsZero() || d.finished.After(at)) {
			continue
		}
		if best == nil || !d.started.Before(best.started) {
			best = d
		}
	}
	return best
}

// noteObserved moves the start of the service's history back to at when at
// is earlier; a zero at is no time.
func (s *serviceState) noteObserved(at time.Time) {
	if at.IsZero() {
		return
	}
	if s.historyStart.IsZero() || at.Before(s.historyStart) {
		s.historyStart = at
	}
}

func (s *serviceState) revisionDeployed(rev string) bool {
	_, ok := s.deployedRevisions[rev]
	return ok
}

func (s *serviceState) markRevisionDeployed(rev, deploymentID string) {
	if s.deployedRevisions == nil {
		s.deployedRevisions = map[string]string{}
	}
	if len(s.revisionOrder) == maxRevisionsPerService {
		delete(s.deployedRevisions, s.revisionOrder[0])
		s.revisionOrder = s.revisionOrder[1:]
	}
	s.deployedRevisions[rev] = deploymentID
	s.revisionOrder = append(s.revisionOrder, rev)
}

func (s *serviceState) addFailure(f *failureState) {
	if len(s.failures) == maxFailuresPerService {
		s.failures[0] = nil
		s.failures = s.failures[1:]
	}
	s.failures = append(s.failures, f)
}

// failureOf returns the unrecovered failure of d, or nil.
func (s *serviceState) failureOf(d *deploymentState) *failureState {
	for _, f := range s.failures {
		if f.deployment == d {
			return f
		}
	}
	return nil
}

// incident returns the incident with the given id, or nil.
func (s *serviceState) incident(id string) *incidentState {
	for i := len(s.incidents) - 1; i >= 0; i-- {
		if s.incidents[i].id == id {
			return s.incidents[i]
		}
	}
	return nil
}

func (s *serviceState) addIncident(id string, at time.Time) *incidentState {
	if len(s.incidents) == maxIncidentsPerService {
		s.incidents[0] = nil
		s.incidents = s.incidents[1:]
	}
	inc := &incidentState{id: id, opened: at}
	s.incidents = append(s.incidents, inc)
	return inc
}

// incidentOpenSince reports whether an incident of s opened before since
// and was still open at t: a deployment that started at since and succeeded
// at t was made during it. An incident that opened once the deployment had
// started (one it may have caused, see causeOf) does not count.
func (s *serviceState) incidentOpenSince(since, t time.Time) bool {
	for _, inc := range s.incidents {
		if inc.opened.Before(since) && (inc.resolved.IsZero() || inc.resolved.After(t)) {
			return true
		}
	}
	return false
}

// addDeployment adds d's outcome at at to the rolling history.
func (s *serviceState) addDeployment(d *deploymentState, at time.Time, success, rework bool, cutoff time.Time, windows []time.Duration) {
	r := &deployRecord{at: at, success: success, rework: rework, changeFailure: d.failureCounted}
	d.history = r
	s.deployed = true
	s.rolling.addDeployment(r)
	s.history = appendBounded(s.history, r, maxHistoryPerService, cutoff, func(r *deployRecord) time.Time { return r.at },
		func(r *deployRecord) { s.rolling.forgetDeployment(r, windows) })
}

// markChangeFailure marks r, the history record of a deployment of s, as
// a change failure. r may have left the history already: the counts are
// recomputed rather than updated.
func (s *serviceState) markChangeFailure(r *deployRecord) {
	r.changeFailure = true
	s.rolling.counts.stale()
}

func (s *serviceState) addLeadTime(at time.Time, v float64, cutoff time.Time) {
	x := sample{at, v}
	s.rolling.leadByValue.insert(x)
	s.rolling.leadTimes.stale()
	s.leadTimes = appendBounded(s.leadTimes, x, maxLeadTimesPerService, cutoff, sampleTime, s.rolling.leadByValue.remove)
}

func (s *serviceState) addRecovery(at time.Time, v float64, cutoff time.Time) {
	x := sample{at, v}
	s.rolling.recoveriesByValue.insert(x)
	s.rolling.recoveries.stale()
	s.recoveries = appendBounded(s.recoveries, x, maxRecoveriesPerService, cutoff, sampleTime, s.rolling.recoveriesByValue.remove)
}

func sampleTime(x sample) time.Time { return x.at }

// appendBounded appends v, then forgets entries from the front while they
// are older than cutoff or more than limit remain, calling forget with
// each. Entries arrive roughly in time order; one that arrives late stays
// until those before it go.
func appendBounded[T any](list []T, v T, limit int, cutoff time.Time, at func(T) time.Time, forget func(T)) []T {
	list = append(list, v)
	n := 0
	for n < len(list) && (len(list)-n > limit || at(list[n]).Before(cutoff)) {
		forget(list[n])
		n++
	}
	if n == 0 {
		return list
	}
	clear(list[:n])
	// Move the rest to the front so that the backing array does not grow
	// without end.
	kept := copy(list, list[n:])
	clear(list[kept:])
	return list[:kept]
}

// dedup remembers applied event IDs for a window of event time.
type dedup struct {
	ids map[dedupKey]struct{}
	// order holds the ids in the order they were added from order[head];
	// the expired prefix is dropped only once it is half the slice, so
	// that expiry costs O(1) per id instead of a copy of the whole window.
	order  []dedupEntry
	head   int
	newest time.Time
}

// dedupKey is an event id within its source and cluster: event ids are
// unique within one cluster's source (a rollout's id names its namespace,
// Deployment and revision), not across clusters.
type dedupKey struct{ source, cluster, id string }

type dedupEntry struct {
	key dedupKey
	at  time.Time
}

func newDedup() dedup { return dedup{ids: map[dedupKey]struct{}{}} }

func (d *dedup) contains(source, cluster, id string) bool {
	_, ok := d.ids[dedupKey{source, cluster, id}]
	return ok
}

// add records id and forgets ids older than window before the newest event
// time seen. Event time, not arrival order, drives expiry, keeping it pure.
func (d *dedup) add(source, cluster, id string, at time.Time, window time.Duration) {
	k := dedupKey{source, cluster, id}
	d.ids[k] = struct{}{}
	d.order = append(d.order, dedupEntry{k, at})
	if at.After(d.newest) {
		d.newest = at
	}
	d.expire(d.newest.Add(-window))
}

// expire forgets the ids, oldest added first, recorded before cutoff.
func (d *dedup) expire(cutoff time.Time) {
	for d.head < len(d.order) && d.order[d.head].at.Before(cutoff) {
		delete(d.ids, d.order[d.head].key)
		d.order[d.head] = dedupEntry{}
		d.head++
	}
	if d.head > 0 && d.head >= len(d.order)/2 {
		d.order = append(d.order[:0], d.order[d.head:]...)
		d.head = 0
	}
}

// live returns the remembered ids, oldest added first.
func (d *dedup) live() []dedupEntry { return d.order[d.head:] }

// commitGraph remembers commits reported by change events, with the
// commit before each on its branch, until deployments ship them. It is
// bounded by a count and by age; the oldest commits are forgotten first.
//
// It holds up to a million commits, so its layout is compact: the commits
// live by value in a ring buffer in the order they were added (no object
// per commit), the index maps a revision to its sequence number, and times
// are Unix nanoseconds.
type commitGraph struct {
	max   int
	index map[string]uint64
	// ring holds n commits from ring[head], the oldest first; first is
	// the sequence number of the oldest.
	ring  []commit
	head  int
	n     int
	first uint64
}

type commit struct {
	rev    string
	parent string
	time   instant
	// extra holds what only some commits have, kept out of line.
	extra *commitExtra
}

type commitExtra struct {
	// merged is set for a merge commit (ChangeMerged), opened when the
	// change's ChangeOpened is known too.
	merged instant
	opened instant
	// reverts is the revision this commit reverts, when known.
	reverts string
	// hotfix marks a commit of a hotfix change (Event.Hotfix on its change
	// event): the deployment that ships it is a hotfix.
	hotfix bool
	// pathsKnown is set when a source gave the files the commit touched;
	// touches then holds the indices of the monorepo path filters they
	// match (Engine.filters), the paths themselves are not kept.
	pathsKnown bool
	touches    []int32
}

// recorded is the commit's age reference: its commit time, else its merge
// time; 0 when neither is known.
func (c *commit) recorded() instant {
	if !c.time.isZero() {
		return c.time
	}
	return c.merged()
}

func (c *commit) merged() instant {
	if c.extra == nil {
		return 0
	}
	return c.extra.merged
}

func (c *commit) opened() instant {
	if c.extra == nil {
		return 0
	}
	return c.extra.opened
}

func (c *commit) reverts() string {
	if c.extra == nil {
		return ""
	}
	return c.extra.reverts
}

func (c *commit) hotfix() bool { return c.extra != nil && c.extra.hotfix }

func (c *commit) pathsKnown() bool { return c.extra != nil && c.extra.pathsKnown }

func (c *commit) touches() []int32 {
	if c.extra == nil {
		return nil
	}
	return c.extra.touches
}

func (c *commit) more() *commitExtra {
	if c.extra == nil {
		c.extra = &commitExtra{}
	}
	return c.extra
}

// instant is a time as Unix nanoseconds, 0 for the zero time: a third of
// a time.Time's size.
type instant int64

func instantOf(t time.Time) instant {
	if t.IsZero() {
		return 0
	}
	return instant(t.UnixNano())
}

func (i instant) isZero() bool { return i == 0 }

func (i instant) time() time.Time {
	if i == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(i)).UTC()
}

func newCommitGraph(max int) commitGraph {
	return commitGraph{max: max, index: map[string]uint64{}}
}

// get returns the commit of rev, nil when unknown. The pointer is valid
// until the next add.
func (g *commitGraph) get(rev string) *commit {
	seq, ok := g.index[rev]
	if !ok {
		return nil
	}
	return g.at(int(seq - g.first))
}

// at returns the i-th oldest commit.
func (g *commitGraph) at(i int) *commit { return &g.ring[(g.head+i)%len(g.ring)] }

// add records a commit; a later report of the same commit fills in what
// the first one lacked.
func (g *commitGraph) add(rev, parent string, at time.Time) *commit {
	if c := g.get(rev); c != nil {
		if c.time.isZero() {
			c.time = instantOf(at)
		}
		if c.parent == "" {
			c.parent = g.intern(parent)
		}
		return c
	}
	return g.push(commit{rev: rev, parent: g.intern(parent), time: instantOf(at)})
}

// intern returns rev sharing the memory of the known commit's revision,
// when there is one: a commit's parent is usually the previous commit.
func (g *commitGraph) intern(rev string) string {
	if c := g.get(rev); c != nil {
		return c.rev
	}
	return rev
}

// reserve makes room for n commits at once (at most max), for an empty
// graph about to be filled from a saved state: no rehashing as it grows.
func (g *commitGraph) reserve(n int) {
	n = min(n, g.max)
	if g.n > 0 || n <= len(g.ring) {
		return
	}
	g.index = make(map[string]uint64, n)
	g.ring, g.head = make([]commit, n), 0
}

// push appends a new commit, forgetting the oldest when full.
func (g *commitGraph) push(c commit) *commit {
	for g.n >= g.max && g.n > 0 {
		g.popOldest()
	}
	if g.n == len(g.ring) {
		g.grow()
	}
	i := (g.head + g.n) % len(g.ring)
	g.ring[i] = c
	g.index[c.rev] = g.first + uint64(g.n)
	g.n++
	return &g.ring[i]
}

func (g *commitGraph) grow() {
	size := min(max(2*len(g.ring), 1024), g.max)
	ring := make([]commit, size)
	for i := range g.n {
		ring[i] = *g.at(i)
	}
	g.ring, g.head = ring, 0
}

func (g *commitGraph) popOldest() {
	c := &g.ring[g.head]
	delete(g.index, c.rev)
	*c = commit{}
	g.head = (g.head + 1) % len(g.ring)
	g.n--
	g.first++
}

// expire forgets the commits recorded before cutoff, oldest added first,
// up to the first younger one.
func (g *commitGraph) expire(cutoff instant) {
	for g.n > 0 && g.at(0).recorded() < cutoff {
		g.popOldest()
	}
}

func (g *commitGraph) len() int { return g.n }

// changeIndex links ChangeOpened and ChangeMerged events by change id,
// bounded by a count like the commit graph.
type changeIndex struct {
	max     int
	changes map[string]*changeInfo
	order   []string
}

type changeInfo struct {
	opened        time.Time
	mergeRevision string
}

func newChangeIndex(max int) changeIndex {
	return changeIndex{max: max, changes: map[string]*changeInfo{}}
}

// get returns the change with the given id, adding it when it is new.
func (x *changeIndex) get(id string) *changeInfo {
	if c, ok := x.changes[id]; ok {
		return c
	}
	for len(x.changes) >= x.max && len(x.order) > 0 {
		delete(x.changes, x.order[0])
		x.order = x.order[1:]
	}
	c := &changeInfo{}
	x.changes[id] = c
	x.order = append(x.order, id)
	return c
}
