// Package engine computes the DORA metric state from normalized events.
//
// The engine is pure: it does no I/O and never reads a clock. Every time it
// uses comes in with an event, so the same events always give the same state
// and its definitions can be tested table by table. METRICS.md at the root
// of the repository states the definitions; definitions_test.go has a test
// per definition and scenario_test.go replays whole histories. The engine
// is not safe for concurrent use; the receiver serializes calls.
package engine

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Failure reasons the engine assigns itself. Sources may pass others (for
// example Kubernetes' ProgressDeadlineExceeded) in Event.Reason.
const (
	ReasonRollback = "rollback"
	ReasonIncident = "incident"
	ReasonFailed   = "failed"
	ReasonHotfix   = "hotfix"
	ReasonRevert   = "revert"
)

// Reasons a commit's lead time is not recorded, the values of the reason
// attribute of platform.lead_time.dropped.
const (
	DropClockSkew     = "clock_skew"
	DropBeforeHistory = "before_history"
	DropTooLong       = "too_long"
)

// Deployment statuses, the values of the status attribute.
const (
	StatusSuccess = "success"
	StatusFailure = "failure"
)

// Lead time stages, the values of the stage attribute of
// platform.lead_time.stage, in order.
const (
	StageCoding = "coding"
	StageReview = "review"
	StageBuild  = "build"
	StageDeploy = "deploy"
)

// Recovery signals, the values of the receiver's recovery_on setting.
const (
	RecoverOnDeployment       = "deployment"
	RecoverOnRollback         = "rollback"
	RecoverOnIncidentResolved = "incident_resolved"
)

// Hotfix signals, the values of the receiver's hotfix_signals setting.
const (
	HotfixFlag   = "flag"
	HotfixRevert = "revert"
)

// RecoverySignals says which events end a change failure; the first one
// that happens wins.
type RecoverySignals struct {
	// Deployment: the next successful deployment of the service that is
	// not a rollback (a fix forward, a hotfix, the failed rollout
	// completing after all).
	Deployment bool
	// Rollback: a completed rollback.
	Rollback bool
	// IncidentResolved: the resolution of the incidents attributed to the
	// failed deployment (all of them).
	IncidentResolved bool
}

// ParseRecoverySignals reads the names of RecoverOn* constants.
func ParseRecoverySignals(names []string) (RecoverySignals, error) {
	var r RecoverySignals
	for _, n := range names {
		switch n {
		case RecoverOnDeployment:
			r.Deployment = true
		case RecoverOnRollback:
			r.Rollback = true
		case RecoverOnIncidentResolved:
			r.IncidentResolved = true
		default:
			return r, fmt.Errorf("%q is not one of %s, %s, %s", n, RecoverOnDeployment, RecoverOnRollback, RecoverOnIncidentResolved)
		}
	}
	return r, nil
}

// HotfixSignals says what makes a deployment a hotfix, which fails the
// deployment it fixes.
type HotfixSignals struct {
	// Flag: an event of the deployment has Hotfix set, or the deployment
	// ships a commit whose change event had it (a hotfix pull request).
	Flag bool
	// Revert: the deployment ships a commit that reverts a revision an
	// earlier deployment of the service shipped (Event.Reverts).
	Revert bool
}

// ParseHotfixSignals reads the names of Hotfix* constants.
func ParseHotfixSignals(names []string) (HotfixSignals, error) {
	var h HotfixSignals
	for _, n := range names {
		switch n {
		case HotfixFlag:
			h.Flag = true
		case HotfixRevert:
			h.Revert = true
		default:
			return h, fmt.Errorf("%q is not one of %s, %s", n, HotfixFlag, HotfixRevert)
		}
	}
	return h, nil
}

// Config holds the engine's settings. The zero value is not usable: start
// from DefaultConfig.
type Config struct {
	// LeadTimeBounds are the explicit histogram bucket bounds, in seconds;
	// the lead time stages use them too.
	LeadTimeBounds []float64
	// RecoveryTimeBounds are the explicit histogram bucket bounds, in seconds.
	RecoveryTimeBounds []float64
	// DedupWindow is how long an event ID is remembered, measured in event
	// time against the newest event seen.
	DedupWindow time.Duration
	// IncidentWindow is how long after a deployment (its finish, or its
	// start while it rolls out) an incident on the same service is
	// attributed to it.
	IncidentWindow time.Duration
	// MaxPendingChanges bounds the commits remembered while waiting for the
	// deployment that ships them; the oldest are forgotten first.
	MaxPendingChanges int
	// PendingChangeMaxAge is how long a commit is remembered, measured in
	// event time (its commit time, else its merge time) against the newest
	// event seen: an older commit is forgotten and a later deployment of it
	// records no lead time from it.
	PendingChangeMaxAge time.Duration
	// Production lists the environment names (shell globs) that are
	// production. Deployments to every environment are counted; only
	// production ones feed lead time, change failures and recovery time.
	Production []string
	// MergeWindow is how close in time two sources' reports of the same
	// revision of a service must be to count as one deployment.
	MergeWindow time.Duration
	// MaxLeadTime is the longest lead time recorded; longer ones are
	// dropped (reason too_long).
	MaxLeadTime time.Duration
	// RecoveryOn says which events end a change failure.
	RecoveryOn RecoverySignals
	// Hotfix says what makes a deployment a hotfix.
	Hotfix HotfixSignals
	// RollingWindows are the windows of the rolling DORA values.
	RollingWindows []time.Duration
	// TierSets classify the rolling values into performance levels.
	TierSets []TierSet
	// MinWindowCoverage is the share of a rolling window (0..1) that must
	// lie after the service's history start for the window to get levels:
	// below it, RollingPoint.Levels is empty.
	MinWindowCoverage float64
	// ServicePaths are the path filters of services deployed from a
	// monorepo (shell globs with **, see MatchPath), by namespace and name,
	// in every environment: a commit whose paths are known is a change of
	// such a service only when one of its paths matches.
	ServicePaths map[ServiceKey][]string
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
		// As long as the default max_lead_time: an older commit's lead time
		// would be dropped as too_long anyway.
		PendingChangeMaxAge: 90 * 24 * time.Hour,
		Production:          []string{"production", "prod"},
		MergeWindow:         time.Hour,
		MaxLeadTime:         90 * 24 * time.Hour,
		RecoveryOn:          RecoverySignals{Deployment: true, Rollback: true, IncidentResolved: true},
		Hotfix:              HotfixSignals{Flag: true, Revert: true},
		RollingWindows:      []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour},
		TierSets:            DefaultTierSets(),
		// Half the window: a level then rests on at least half of the
		// days its window names (15 of 30), and a short window gets one
		// within hours.
		MinWindowCoverage: 0.5,
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
	if c.PendingChangeMaxAge <= 0 {
		errs = append(errs, errors.New("pending change max age must be positive"))
	}
	for _, p := range c.Production {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("production environment pattern %q: %w", p, err))
		}
	}
	if c.MergeWindow < 0 {
		errs = append(errs, errors.New("merge window must not be negative"))
	}
	if c.MaxLeadTime <= 0 {
		errs = append(errs, errors.New("max lead time must be positive"))
	}
	if err := ValidateWindows(c.RollingWindows); err != nil {
		errs = append(errs, fmt.Errorf("rolling windows: %w", err))
	}
	if err := ValidateMinWindowCoverage(c.MinWindowCoverage); err != nil {
		errs = append(errs, fmt.Errorf("min window coverage: %w", err))
	}
	for k, ps := range c.ServicePaths {
		if err := ValidatePathPatterns(ps); err != nil {
			errs = append(errs, fmt.Errorf("paths of %s/%s: %w", k.Namespace, k.Name, err))
		}
	}
	names := map[string]bool{}
	for _, ts := range c.TierSets {
		if ts.Name == "" {
			errs = append(errs, errors.New("tier set without a name"))
		}
		if names[ts.Name] {
			errs = append(errs, fmt.Errorf("tier set %q named twice", ts.Name))
		}
		names[ts.Name] = true
	}
	return errors.Join(errs...)
}

// MaxRollingWindow is the longest rolling window the engine keeps history
// for.
const MaxRollingWindow = 366 * 24 * time.Hour

// ValidateWindows checks rolling windows: positive, at most
// MaxRollingWindow, and distinct labels.
func ValidateWindows(windows []time.Duration) error {
	var errs []error
	seen := map[string]bool{}
	for i, w := range windows {
		if w <= 0 || w > MaxRollingWindow {
			errs = append(errs, fmt.Errorf("[%d]: %s is not between 0 and %s", i, w, MaxRollingWindow))
			continue
		}
		l := WindowLabel(w)
		if seen[l] {
			errs = append(errs, fmt.Errorf("[%d]: %s is listed twice", i, l))
		}
		seen[l] = true
	}
	return errors.Join(errs...)
}

// ValidateMinWindowCoverage checks Config.MinWindowCoverage: a ratio from
// 0 (levels from the first deployment on) to 1 (levels only for windows
// wholly observed).
func ValidateMinWindowCoverage(v float64) error {
	if !(v >= 0 && v <= 1) { // NaN too
		return fmt.Errorf("must be between 0 and 1, got %v", v)
	}
	return nil
}

// WindowLabel is the window attribute of a rolling window: "1d", "7d" and
// "30d" for whole days, "12h" for whole hours, "90m" for whole minutes,
// else Go's duration form.
func WindowLabel(w time.Duration) string {
	switch {
	case w%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", w/(24*time.Hour))
	case w%time.Hour == 0:
		return fmt.Sprintf("%dh", w/time.Hour)
	case w%time.Minute == 0:
		return fmt.Sprintf("%dm", w/time.Minute)
	}
	return w.String()
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
	// Deployment explains the production deployment that the event
	// finished (succeeded, or its rollout failed); nil otherwise.
	Deployment *DeploymentReport
	// Moved is the service whose series the event changed when it is not
	// the event's own: an incident naming no cluster that the engine
	// counted in a cluster (cluster.go); the zero Service otherwise.
	Moved event.Service
}

// Engine holds the cumulative metric state and what it needs to correlate
// later events with earlier ones.
type Engine struct {
	cfg   Config
	start time.Time
	// version grows with every metric change; Apply compares it.
	version uint64
	// newest is the newest event time applied: rolling history older than
	// the longest window before it is forgotten.
	newest time.Time
	// retention is the longest rolling window.
	retention time.Duration

	seen     dedup
	services map[event.Service]*serviceState
	commits  commitGraph
	changes  changeIndex

	// importedSeen remembers the ids of imported events for the longest
	// rolling window (an import reads at most that far back), so that an
	// import resumed after a crash, or run again, applies nothing twice,
	// even where the per-service memory (deployments, incidents) has
	// forgotten the fact. Live ids only need the dedup window.
	importedSeen dedup
	// imported is set while an imported event is applied: it goes into the
	// rolling history but not into the cumulative counters (count,
	// observe); importFrom is its import window's start.
	imported   bool
	importFrom time.Time

	deployments map[statusKey]uint64
	failures    map[reasonKey]uint64
	dropped     map[reasonKey]uint64
	incidents   map[reasonKey]uint64
	rework      map[event.Service]uint64
	leadTime    map[event.Service]*Histogram
	stages      map[reasonKey]*Histogram
	recovery    map[event.Service]*Histogram

	// teams are the services' teams (attribution.go); filters the
	// monorepo path filters.
	teams   map[event.Service]teamInfo
	filters pathFilters

	// report is the report of the event being applied, if any.
	report *DeploymentReport
	// clusters lists, by service without its cluster, the clusters the
	// service runs in (cluster.go): derived from services.
	clusters map[event.Service][]string
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
	var retention time.Duration
	for _, w := range cfg.RollingWindows {
		retention = max(retention, w)
	}
	e := &Engine{
		cfg:         cfg,
		start:       start,
		retention:   retention,
		seen:        newDedup(),
		services:    map[event.Service]*serviceState{},
		commits:     newCommitGraph(cfg.MaxPendingChanges),
		changes:     newChangeIndex(cfg.MaxPendingChanges),
		deployments: map[statusKey]uint64{},
		failures:    map[reasonKey]uint64{},
		dropped:     map[reasonKey]uint64{},
		incidents:   map[reasonKey]uint64{},
		rework:      map[event.Service]uint64{},
		leadTime:    map[event.Service]*Histogram{},
		stages:      map[reasonKey]*Histogram{},
		recovery:    map[event.Service]*Histogram{},
		teams:       map[event.Service]teamInfo{},
		filters:     newPathFilters(cfg.ServicePaths),
		clusters:    map[event.Service][]string{},
	}
	e.importedSeen = newDedup()
	return e, nil
}

// StartTime is the start of every cumulative series.
func (e *Engine) StartTime() time.Time { return e.start }

// Apply folds one event into the state.
func (e *Engine) Apply(ev event.Event) (Outcome, error) {
	if err := validate(ev); err != nil {
		return Outcome{}, err
	}
	if ev.ID != "" {
		if e.seen.contains(ev.Source, ev.Service.Cluster, ev.ID) || e.importedSeen.contains(ev.Source, ev.Service.Cluster, ev.ID) {
			return Outcome{Duplicate: true}, nil
		}
		if ev.Imported {
			e.importedSeen.add(ev.Source, ev.Service.Cluster, ev.ID, ev.Time, e.retention)
		} else {
			e.seen.add(ev.Source, ev.Service.Cluster, ev.ID, ev.Time, e.cfg.DedupWindow)
		}
	}
	e.imported, e.importFrom = ev.Imported, time.Time{}
	if ev.Imported {
		e.importFrom = ev.ImportFrom
	}
	defer func() { e.imported, e.importFrom = false, time.Time{} }()
	if ev.Time.After(e.newest) {
		e.newest = ev.Time
		e.commits.expire(e.pendingCutoff())
	}
	before := e.version
	var moved event.Service
	if ev.Kind == event.IncidentOpened || ev.Kind == event.IncidentResolved {
		// An incident naming no cluster, of a service in clusters: to
		// the cluster of its likely cause (cluster.go). After the
		// dedup check: its id stays the one it was delivered with.
		if svc := e.incidentCluster(ev); svc != ev.Service {
			ev.Service, moved = svc, svc
		}
	}
	e.noteTeam(ev)
	switch ev.Kind {
	case event.DeploymentStarted:
		e.started(ev)
	case event.DeploymentSucceeded:
		e.succeeded(ev)
	case event.DeploymentFailed:
		e.failed(ev)
	case event.DeploymentRolledBack:
		e.rolledBack(ev)
	case event.ChangeCommitted:
		c := e.commits.add(ev.Revision, ev.ParentRevision, ev.Time)
		e.noteRevertHotfix(c, ev)
		e.notePaths(c, ev.Paths)
	case event.ChangeMerged:
		e.changeMerged(ev)
	case event.ChangeOpened:
		e.changeOpened(ev)
	case event.IncidentOpened:
		e.incidentOpened(ev)
	case event.IncidentResolved:
		e.incidentResolved(ev)
	}
	report := e.report
	e.report = nil
	return Outcome{Changed: e.version != before, Deployment: report, Moved: moved}, nil
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
	case event.ChangeOpened:
		if ev.ChangeID == "" {
			return fmt.Errorf("%s event without a change id", ev.Kind)
		}
	case event.IncidentOpened, event.IncidentResolved:
		if ev.IncidentID == "" {
			return fmt.Errorf("%s event without an incident id", ev.Kind)
		}
	}
	return nil
}

// count increments a counter and notes the change. An imported event
// changes no counter (Event.Imported), only the rolling history: the
// change is noted all the same, so that the rolling values are emitted.
func count[K comparable](e *Engine, m map[K]uint64, k K) {
	if !e.imported {
		m[k]++
	}
	e.version++
}

// observe records v in the histogram of key k, creating it with bounds;
// not for an imported event (see count).
func observe[K comparable](e *Engine, m map[K]*Histogram, k K, bounds []float64, v float64) {
	if e.imported {
		e.version++
		return
	}
	h, ok := m[k]
	if !ok {
		h = newHistogram(bounds)
		m[k] = h
	}
	h.observe(v)
	e.version++
}

func deploymentKey(ev event.Event) string {
	if ev.DeploymentID != "" {
		return ev.DeploymentID
	}
	return "revision:" + ev.Revision
}

// record returns the deployment an event is about: one seen before under
// the same id, the same rollout reported by another source, or a new one.
// It notes what every deployment event may carry: a hotfix flag.
func (e *Engine) record(ev event.Event) (*serviceState, *deploymentState) {
	s := e.service(ev.Service, ev.Time)
	key := deploymentKey(ev)
	d := s.find(key)
	if d == nil {
		if d = s.sameRollout(ev.Source, ev.Revision, ev.Time, e.cfg.MergeWindow); d != nil {
			d.aliases = append(d.aliases, key)
		} else {
			d = s.deployment(key, ev.Source, ev.Revision, ev.Time)
		}
	}
	d.noteEvent(ev)
	if ev.Hotfix && e.cfg.Hotfix.Flag && !d.hotfix {
		e.markHotfix(ev, s, d)
	}
	return s, d
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

// service returns the state of svc, which an event at at is about: the
// service's history starts at the earliest such event (METRICS.md, lead
// time). Change events name a service only by guess (a repository, no
// environment) and carry their commit's time, not when the receiver got
// them, so they do not move it; their commits need no history start.
func (e *Engine) service(svc event.Service, at time.Time) *serviceState {
	s, ok := e.services[svc]
	if !ok {
		s = &serviceState{production: e.production(svc.Environment)}
		e.services[svc] = s
		e.noteCluster(svc)
	}
	s.noteObserved(at)
	// An import observed the service since its window's start, whether or
	// not it found an event that early.
	s.noteObserved(e.importFrom)
	return s
}

func (e *Engine) started(ev event.Event) {
	_, d := e.record(ev)
	d.noteStart(ev.Time)
}

func (e *Engine) succeeded(ev event.Event) {
	s, d := e.record(ev)
	// A failed rollout that completes recovers its own failure; a rollout
	// that caused an incident while it rolled out does not.
	recoversItself := d.outcome == outcomeFailed
	switch d.outcome {
	case outcomePending:
		d.outcome = outcomeSucceeded
		d.finished = ev.Time
		count(e, e.deployments, statusKey{ev.Service, StatusSuccess})
		if s.production {
			e.report = newReport(ev, d)
			e.report.HistoryStart = !s.historyStarted
			e.ship(ev, s, d)
			rework := d.hotfix || d.rollback || s.incidentOpenSince(d.started, ev.Time)
			if rework {
				count(e, e.rework, ev.Service)
			}
			s.addDeployment(d, ev.Time, true, rework, e.cutoff(), e.cfg.RollingWindows)
			e.report.Rework, e.report.Hotfix = rework, d.hotfix
		}
	case outcomeFailed:
		// A failed rollout that completes later is a recovery, not a
		// second deployment.
		d.finished = ev.Time
	case outcomeSucceeded:
		return
	}
	signal := e.cfg.RecoveryOn.Deployment
	if d.rollback {
		signal = e.cfg.RecoveryOn.Rollback
	}
	if signal {
		e.recover(ev.Service, s, ev.Time, func(f *failureState) bool { return recoversItself || f.deployment != d })
	}
}

func (e *Engine) failed(ev event.Event) {
	s, d := e.record(ev)
	finished := d.outcome == outcomePending
	if finished {
		d.outcome = outcomeFailed
		d.finished = ev.Time
		count(e, e.deployments, statusKey{ev.Service, StatusFailure})
		if s.production {
			s.addDeployment(d, ev.Time, false, false, e.cutoff(), e.cfg.RollingWindows)
		}
	}
	reason := ev.Reason
	if reason == "" {
		reason = ReasonFailed
	}
	e.markFailure(ev.Service, s, d, reason, ev.Time)
	if finished && s.production {
		e.report = newReport(ev, d)
		e.report.Failed, e.report.Reason = true, reason
	}
}

func (e *Engine) rolledBack(ev event.Event) {
	s := e.service(ev.Service, ev.Time)
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
			// Abandoned before it finished: a failed deployment whose
			// failure started when it started.
			prev.outcome = outcomeFailed
			count(e, e.deployments, statusKey{ev.Service, StatusFailure})
			if s.production {
				s.addDeployment(prev, ev.Time, false, false, e.cutoff(), e.cfg.RollingWindows)
			}
		}
		e.markFailure(ev.Service, s, prev, ReasonRollback, ev.Time)
	}
	_, d := e.record(ev)
	d.rollback = true
	d.noteStart(ev.Time)
}

// cutoff is the time before which rolling history is forgotten.
func (e *Engine) cutoff() time.Time { return e.newest.Add(-e.retention) }

// markFailure counts d as a change failure once, whatever the number of
// reasons that arrive for it, and starts its recovery clock: at its finish,
// or its start when it never finished, or at, whichever is first.
func (e *Engine) markFailure(svc event.Service, s *serviceState, d *deploymentState, reason string, at time.Time) {
	if d.failureCounted || !s.production {
		return
	}
	d.failureCounted = true
	count(e, e.failures, reasonKey{svc, reason})
	if d.history != nil {
		s.markChangeFailure(d.history)
	}
	since := d.finished
	if since.IsZero() {
		since = d.started
	}
	if since.IsZero() || at.Before(since) {
		since = at
	}
	s.addFailure(&failureState{deployment: d, since: since, detected: at})
}

// recover ends the unrecovered change failures of s that match, detected
// at or before at, and records their recovery times.
func (e *Engine) recover(svc event.Service, s *serviceState, at time.Time, match func(*failureState) bool) {
	kept := s.failures[:0]
	for _, f := range s.failures {
		if !match(f) || at.Before(f.detected) {
			kept = append(kept, f)
			continue
		}
		v := at.Sub(f.since).Seconds()
		observe(e, e.recovery, svc, e.cfg.RecoveryTimeBounds, v)
		s.addRecovery(at, v, e.cutoff())
	}
	clear(s.failures[len(kept):])
	s.failures = kept
}

func (e *Engine) incidentOpened(ev event.Event) {
	s := e.service(ev.Service, ev.Time)
	if inc := s.incident(ev.IncidentID); inc != nil {
		// Reopened (GitHub, GitLab): open again, but the same incident,
		// counted and attributed once.
		inc.resolved = time.Time{}
		return
	}
	inc := s.addIncident(ev.IncidentID, ev.Time)
	var d *deploymentState
	if s.production {
		d = s.causeOf(ev.Time, e.cfg.IncidentWindow)
		if d == nil && e.imported {
			// An imported incident may be older than the deployments the
			// service remembers: the rolling history still has them.
			d = s.causeInHistory(ev.Time, e.cfg.IncidentWindow)
		}
	}
	inc.attributed = d != nil
	count(e, e.incidents, reasonKey{ev.Service, strconv.FormatBool(inc.attributed)})
	if d == nil {
		// Not caused by a deployment we know of: an outage, not a change
		// failure.
		return
	}
	// A deployment that already counts as a change failure (its rollout
	// failed, say) is not failed again: the incident joins that failure,
	// whose recovery then runs from the earlier of the two.
	e.markFailure(ev.Service, s, d, ReasonIncident, ev.Time)
	if f := s.failureOf(d); f != nil {
		f.incidents = append(f.incidents, ev.IncidentID)
		if ev.Time.Before(f.since) {
			f.since = ev.Time
		}
	}
}

func (e *Engine) incidentResolved(ev event.Event) {
	s := e.service(ev.Service, ev.Time)
	inc := s.incident(ev.IncidentID)
	if inc == nil || !inc.resolved.IsZero() {
		return
	}
	inc.resolved = ev.Time
	resolvedAll := func(f *failureState) bool {
		i := slices.Index(f.incidents, ev.IncidentID)
		if i < 0 {
			return false
		}
		f.incidents = slices.Delete(f.incidents, i, i+1)
		return len(f.incidents) == 0 && e.cfg.RecoveryOn.IncidentResolved
	}
	e.recover(ev.Service, s, ev.Time, resolvedAll)
}

func (e *Engine) changeMerged(ev event.Event) {
	c := e.commits.add(ev.Revision, "", time.Time{})
	if c.merged().isZero() {
		c.more().merged = instantOf(ev.Time)
	}
	e.noteRevertHotfix(c, ev)
	if ev.ChangeID != "" {
		ch := e.changes.get(ev.ChangeID)
		ch.mergeRevision = ev.Revision
		if c.opened().isZero() && !ch.opened.IsZero() {
			c.more().opened = instantOf(ch.opened)
		}
	}
}

// noteRevertHotfix keeps what a change event says of its commit: the
// revision it reverts (given, or the merge commit of the change it reverts,
// when that change's merge is known) and a hotfix mark. ship reads them.
func (e *Engine) noteRevertHotfix(c *commit, ev event.Event) {
	if c.reverts() == "" {
		reverts := ev.Reverts
		if reverts == "" && ev.RevertsChange != "" {
			if ch, ok := e.changes.changes[ev.RevertsChange]; ok {
				reverts = ch.mergeRevision
			}
		}
		if reverts != "" && reverts != c.rev {
			c.more().reverts = reverts
		}
	}
	if ev.Hotfix && !c.hotfix() {
		c.more().hotfix = true
	}
}

func (e *Engine) changeOpened(ev event.Event) {
	ch := e.changes.get(ev.ChangeID)
	if !ch.opened.IsZero() && !ev.Time.Before(ch.opened) {
		return
	}
	ch.opened = ev.Time
	if c := e.commits.get(ch.mergeRevision); c != nil {
		c.more().opened = instantOf(ev.Time)
	}
}

// pendingCutoff is the age limit of pending changes: a commit recorded
// before it is forgotten.
func (e *Engine) pendingCutoff() instant {
	return instantOf(e.newest.Add(-e.cfg.PendingChangeMaxAge))
}

// pendingCommit returns the commit of rev unless unknown or expired. The
// expiry sweep forgets commits in the order they were added, so an old
// commit reported after a newer one may still be held: it is checked here.
func (e *Engine) pendingCommit(rev string) *commit {
	c := e.commits.get(rev)
	if c == nil || c.recorded() < e.pendingCutoff() {
		return nil
	}
	return c
}

// Validate reports whether Apply would accept ev, without applying it, so
// that a delivery with several events is applied whole or not at all.
func Validate(ev event.Event) error { return validate(ev) }
