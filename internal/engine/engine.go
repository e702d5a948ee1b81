// Package engine computes the DORA metric state from normalized events.
//
// The engine is pure: it does no I/O and never reads a clock. Every time it
// uses comes in with an event, so the same events always give the same state
// and its definitions can be tested table by table. It is not safe for
// concurrent use; the receiver serializes calls.
package engine

import (
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Failure reasons the engine assigns itself. Sources may pass others (for
// example Kubernetes' ProgressDeadlineExceeded) in Event.Reason.
const (
	ReasonRollback = "rollback"
	ReasonIncident = "incident"
	ReasonFailed   = "failed"
)

// Deployment statuses, the values of the status attribute.
const (
	StatusSuccess = "success"
	StatusFailure = "failure"
)

// Config holds the engine's settings. The zero value is not usable: start
// from DefaultConfig.
type Config struct {
	// LeadTimeBounds are the explicit histogram bucket bounds, in seconds.
	LeadTimeBounds []float64
	// RecoveryTimeBounds are the explicit histogram bucket bounds, in seconds.
	RecoveryTimeBounds []float64
	// DedupWindow is how long an event ID is remembered, measured in event
	// time against the newest event seen.
	DedupWindow time.Duration
	// IncidentWindow is how long after a successful deployment an incident
	// on the same service is attributed to it.
	IncidentWindow time.Duration
	// MaxPendingChanges bounds the commits remembered while waiting for the
	// deployment that ships them; the oldest are forgotten first.
	MaxPendingChanges int
	// Production lists the environment names (shell globs) that are
	// production. Deployments to every environment are counted; only
	// production ones feed lead time, change failures and recovery time.
	Production []string
	// MergeWindow is how close in time two sources' reports of the same
	// revision of a service must be to count as one deployment.
	MergeWindow time.Duration
}

// DefaultConfig returns the settings used when the receiver config says
// nothing else.
func DefaultConfig() Config {
	return Config{
		// 5m .. 30d: DORA's lead time bands run from under an hour to months.
		LeadTimeBounds: []float64{300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800, 2592000},
		// 1m .. 7d: elite recovery is under an hour, low is over a week.
		RecoveryTimeBounds: []float64{60, 300, 600, 1800, 3600, 7200, 14400, 86400, 604800},
		DedupWindow:        24 * time.Hour,
		IncidentWindow:     24 * time.Hour,
		MaxPendingChanges:  100000,
		Production:         []string{"production", "prod"},
		MergeWindow:        time.Hour,
	}
}

// Validate reports settings the engine cannot work with.
func (c Config) Validate() error {
	var errs []error
	if err := validBounds(c.LeadTimeBounds); err != nil {
		errs = append(errs, fmt.Errorf("lead time buckets: %w", err))
	}
	if err := validBounds(c.RecoveryTimeBounds); err != nil {
		errs = append(errs, fmt.Errorf("recovery time buckets: %w", err))
	}
	if c.DedupWindow <= 0 {
		errs = append(errs, errors.New("dedup window must be positive"))
	}
	if c.IncidentWindow <= 0 {
		errs = append(errs, errors.New("incident window must be positive"))
	}
	if c.MaxPendingChanges <= 0 {
		errs = append(errs, errors.New("max pending changes must be positive"))
	}
	for _, p := range c.Production {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("production environment pattern %q: %w", p, err))
		}
	}
	if c.MergeWindow < 0 {
		errs = append(errs, errors.New("merge window must not be negative"))
	}
	return errors.Join(errs...)
}

func validBounds(b []float64) error {
	if len(b) == 0 {
		return errors.New("at least one bound is required")
	}
	for i := range b {
		if b[i] <= 0 {
			return fmt.Errorf("bound %v is not positive", b[i])
		}
		if i > 0 && b[i] <= b[i-1] {
			return fmt.Errorf("bounds must increase strictly (%v after %v)", b[i], b[i-1])
		}
	}
	return nil
}

// Outcome says what applying one event did.
type Outcome struct {
	// Duplicate is true when the event's ID had been applied before; nothing
	// changed.
	Duplicate bool
	// Changed is true when a metric value changed (a counter grew or a
	// histogram got an observation).
	Changed bool
}

// Engine holds the cumulative metric state and what it needs to correlate
// later events with earlier ones.
type Engine struct {
	cfg   Config
	start time.Time

	seen     dedup
	services map[event.Service]*serviceState
	commits  commitGraph

	deployments map[statusKey]uint64
	failures    map[reasonKey]uint64
	leadTime    map[event.Service]*Histogram
	recovery    map[event.Service]*Histogram
}

type statusKey struct {
	svc    event.Service
	status string
}

type reasonKey struct {
	svc    event.Service
	reason string
}

// New returns an engine whose counters start at start (the receiver's start
// time, passed in because the engine reads no clock).
func New(cfg Config, start time.Time) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Engine{
		cfg:         cfg,
		start:       start,
		seen:        newDedup(),
		services:    map[event.Service]*serviceState{},
		commits:     newCommitGraph(cfg.MaxPendingChanges),
		deployments: map[statusKey]uint64{},
		failures:    map[reasonKey]uint64{},
		leadTime:    map[event.Service]*Histogram{},
		recovery:    map[event.Service]*Histogram{},
	}, nil
}

// StartTime is the start of every cumulative series.
func (e *Engine) StartTime() time.Time { return e.start }

// Apply folds one event into the state.
func (e *Engine) Apply(ev event.Event) (Outcome, error) {
	if err := validate(ev); err != nil {
		return Outcome{}, err
	}
	if ev.ID != "" {
		if e.seen.contains(ev.Source, ev.ID) {
			return Outcome{Duplicate: true}, nil
		}
		e.seen.add(ev.Source, ev.ID, ev.Time, e.cfg.DedupWindow)
	}
	var changed bool
	switch ev.Kind {
	case event.DeploymentStarted:
		e.record(ev)
	case event.DeploymentSucceeded:
		changed = e.succeeded(ev)
	case event.DeploymentFailed:
		changed = e.failed(ev)
	case event.DeploymentRolledBack:
		changed = e.rolledBack(ev)
	case event.ChangeCommitted:
		e.commits.add(ev.Revision, ev.ParentRevision, ev.Time)
	case event.ChangeMerged:
		if c := e.commits.add(ev.Revision, "", time.Time{}); c.merged.IsZero() {
			c.merged = ev.Time
		}
	case event.IncidentOpened:
		changed = e.incidentOpened(ev)
	case event.IncidentResolved:
		changed = e.incidentResolved(ev)
	}
	return Outcome{Changed: changed}, nil
}

func validate(ev event.Event) error {
	if !ev.Kind.Valid() {
		return fmt.Errorf("unknown event kind %d", ev.Kind)
	}
	if ev.Time.IsZero() {
		return fmt.Errorf("%s event without a time", ev.Kind)
	}
	switch ev.Kind {
	case event.DeploymentStarted, event.DeploymentSucceeded, event.DeploymentFailed, event.DeploymentRolledBack:
		if ev.Service.Name == "" {
			return fmt.Errorf("%s event without a service name", ev.Kind)
		}
		if ev.DeploymentID == "" && ev.Revision == "" {
			return fmt.Errorf("%s event needs a deployment id or a revision", ev.Kind)
		}
	case event.ChangeCommitted, event.ChangeMerged:
		if ev.Revision == "" {
			return fmt.Errorf("%s event without a revision", ev.Kind)
		}
	case event.IncidentOpened, event.IncidentResolved:
		if ev.IncidentID == "" {
			return fmt.Errorf("%s event without an incident id", ev.Kind)
		}
	}
	return nil
}

func deploymentKey(ev event.Event) string {
	if ev.DeploymentID != "" {
		return ev.DeploymentID
	}
	return "revision:" + ev.Revision
}

// record returns the deployment an event is about: one seen before under
// the same id, the same rollout reported by another source, or a new one.
func (e *Engine) record(ev event.Event) (*serviceState, *deploymentState) {
	s := e.service(ev.Service)
	key := deploymentKey(ev)
	if d := s.find(key); d != nil {
		return s, d
	}
	if d := s.sameRollout(ev.Source, ev.Revision, ev.Time, e.cfg.MergeWindow); d != nil {
		d.aliases = append(d.aliases, key)
		return s, d
	}
	return s, s.deployment(key, ev.Source, ev.Revision, ev.Time)
}

// production reports whether env is a production environment.
func (e *Engine) production(env string) bool {
	for _, p := range e.cfg.Production {
		if ok, _ := path.Match(p, env); ok {
			return true
		}
	}
	return false
}

func (e *Engine) service(svc event.Service) *serviceState {
	s, ok := e.services[svc]
	if !ok {
		s = &serviceState{}
		e.services[svc] = s
	}
	return s
}

func (e *Engine) succeeded(ev event.Event) bool {
	s, d := e.record(ev)
	changed := false
	switch d.outcome {
	case outcomePending:
		d.outcome = outcomeSucceeded
		d.finished = ev.Time
		e.deployments[statusKey{ev.Service, StatusSuccess}]++
		changed = true
		if e.production(ev.Service.Environment) && e.observeLeadTime(ev, s) {
			changed = true
		}
	case outcomeFailed:
		// A failed rollout that completes later is a recovery, not a
		// second deployment.
		d.finished = ev.Time
	case outcomeSucceeded:
		return false
	}
	if !s.failingSince.IsZero() && !ev.Time.Before(s.failingSince) {
		e.histogram(e.recovery, ev.Service, e.cfg.RecoveryTimeBounds).observe(ev.Time.Sub(s.failingSince).Seconds())
		s.failingSince = time.Time{}
		s.failingIncident = ""
		changed = true
	}
	return changed
}

// maxLeadTimeWalk bounds how many commits one deployment attributes.
const maxLeadTimeWalk = 1000

// observeLeadTime records the lead time of every commit the deployment
// ships for the first time to this service: the deployed revision and its
// ancestors (from push events) back to the last commit the service
// already shipped. Each commit is recorded once per service.
func (e *Engine) observeLeadTime(ev event.Event, s *serviceState) bool {
	recorded := false
	rev := ev.Revision
	for i := 0; rev != "" && i < maxLeadTimeWalk && !s.revisionDeployed(rev); i++ {
		s.markRevisionDeployed(rev)
		c := e.commits.get(rev)
		var committed time.Time
		if c != nil {
			committed = c.time
		}
		if committed.IsZero() && rev == ev.Revision {
			committed = ev.CommitTime
		}
		// A commit time after the deployment is clock skew between the
		// committer and the deployer: meaningless, so not recorded.
		if !committed.IsZero() && !ev.Time.Before(committed) {
			e.histogram(e.leadTime, ev.Service, e.cfg.LeadTimeBounds).observe(ev.Time.Sub(committed).Seconds())
			recorded = true
		}
		if c == nil {
			break
		}
		rev = c.parent
	}
	return recorded
}

func (e *Engine) failed(ev event.Event) bool {
	s, d := e.record(ev)
	changed := false
	if d.outcome == outcomePending {
		d.outcome = outcomeFailed
		d.finished = ev.Time
		e.deployments[statusKey{ev.Service, StatusFailure}]++
		changed = true
	}
	reason := ev.Reason
	if reason == "" {
		reason = ReasonFailed
	}
	return e.markFailure(ev.Service, s, d, reason, ev.Time) || changed
}

func (e *Engine) rolledBack(ev event.Event) bool {
	s := e.service(ev.Service)
	changed := false
	var prev *deploymentState
	switch {
	case ev.PreviousDeploymentID != "":
		prev = s.find(ev.PreviousDeploymentID)
		if prev == nil {
			// Deployed before the engine's memory: its outcome was counted,
			// if at all, by an earlier run; only the change failure is new.
			prev = s.deployment(ev.PreviousDeploymentID, ev.Source, "", ev.Time)
			prev.outcome = outcomeSucceeded
		}
	default:
		// Sources that report a rollback without naming what it replaces
		// (CDEvents): the rollback replaces the latest deployment.
		prev = s.latestExcept(deploymentKey(ev))
	}
	if prev != nil {
		if prev.outcome == outcomePending {
			prev.outcome = outcomeFailed
			prev.finished = ev.Time
			e.deployments[statusKey{ev.Service, StatusFailure}]++
			changed = true
		}
		if e.markFailure(ev.Service, s, prev, ReasonRollback, ev.Time) {
			changed = true
		}
	}
	_, d := e.record(ev)
	d.rollback = true
	return changed
}

// markFailure counts d as a change failure once, whatever the number of
// reasons that arrive for it, and starts the recovery clock of the service.
func (e *Engine) markFailure(svc event.Service, s *serviceState, d *deploymentState, reason string, at time.Time) bool {
	if d.failureCounted || !e.production(svc.Environment) {
		return false
	}
	d.failureCounted = true
	e.failures[reasonKey{svc, reason}]++
	if s.failingSince.IsZero() {
		s.failingSince = at
	}
	return true
}

func (e *Engine) incidentOpened(ev event.Event) bool {
	s := e.service(ev.Service)
	if s.incidentOpen(ev.IncidentID) {
		return false
	}
	s.openIncident(ev.IncidentID)
	d := s.lastSucceededWithin(ev.Time, e.cfg.IncidentWindow)
	if d == nil || d.failureCounted {
		// Not caused by a deployment we know of (or already counted): an
		// outage, but not a change failure.
		return false
	}
	if e.markFailure(ev.Service, s, d, ReasonIncident, ev.Time) {
		if s.failingIncident == "" {
			s.failingIncident = ev.IncidentID
		}
		return true
	}
	return false
}

func (e *Engine) incidentResolved(ev event.Event) bool {
	s := e.service(ev.Service)
	if !s.incidentOpen(ev.IncidentID) {
		return false
	}
	s.closeIncident(ev.IncidentID)
	if s.failingIncident != ev.IncidentID || s.failingSince.IsZero() || ev.Time.Before(s.failingSince) {
		return false
	}
	e.histogram(e.recovery, ev.Service, e.cfg.RecoveryTimeBounds).observe(ev.Time.Sub(s.failingSince).Seconds())
	s.failingSince = time.Time{}
	s.failingIncident = ""
	return true
}

func (e *Engine) histogram(m map[event.Service]*Histogram, svc event.Service, bounds []float64) *Histogram {
	h, ok := m[svc]
	if !ok {
		h = newHistogram(bounds)
		m[svc] = h
	}
	return h
}

// Validate reports whether Apply would accept ev, without applying it, so
// that a delivery with several events is applied whole or not at all.
func Validate(ev event.Event) error { return validate(ev) }
