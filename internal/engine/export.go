package engine

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// StateVersion is the version of State that Export writes. Import reads it
// and every earlier version; a later version is refused. A change to State
// that an older Import would misread (a field renamed or given another
// meaning; a new field that is not simply absent in old states) needs a new
// version, and Import must keep reading the old ones (internal/persist has
// a version 1 fixture that it must keep loading).
const StateVersion = 1

// State is a copy of the whole engine state, the cumulative counters and
// histograms with their start time and everything needed to correlate later
// events with earlier ones: recent deployments, open change failures and
// incidents, the rolling history, the commit graph of pending changes, the
// change requests, the teams and the window of event ids seen. It is plain
// data that encodes to JSON; Export and Import turn an engine into a State
// and back, so that the receiver can keep it across restarts.
//
// The configuration is not part of it: an engine is restored with the
// configuration it runs with now. Settings read when an event is applied
// (windows, buckets of new series, production environments, path filters)
// take effect from the restore on; histogram series keep the bounds they
// were created with.
//
// Its size is bounded by the engine's own bounds: per service at most
// maxDeploymentsPerService deployments, maxIncidentsPerService incidents,
// maxFailuresPerService open failures, maxRevisionsPerService shipped
// revisions and the rolling history of the longest window (capped at
// maxHistoryPerService deployments, maxLeadTimesPerService lead times and
// maxRecoveriesPerService recoveries); MaxPendingChanges commits and as many
// change requests; the event ids of the last DedupWindow of event time.
type State struct {
	// Version is StateVersion when written by Export.
	Version int `json:"version"`
	// Start is the start time of every cumulative series.
	Start time.Time `json:"start"`
	// Changes counts the metric changes applied so far.
	Changes uint64 `json:"changes"`
	// Newest is the newest event time applied.
	Newest time.Time `json:"newest,omitzero"`

	Dedup DedupState `json:"dedup"`
	// ImportedDedup are the ids of the imported events of the longest
	// rolling window (Engine.importedSeen). States written before the
	// history import existed lack it: nothing was imported.
	ImportedDedup  DedupState           `json:"imported_dedup,omitzero"`
	Services       []ServiceState       `json:"services,omitempty"`
	Commits        []CommitState        `json:"commits,omitempty"`
	ChangeRequests []ChangeRequestState `json:"change_requests,omitempty"`
	Teams          []TeamState          `json:"teams,omitempty"`
	// PathFilters are the services with monorepo path filters when the
	// state was exported, in the order that CommitState.Touches indexes.
	PathFilters []ServiceKey `json:"path_filters,omitempty"`

	Deployments     []CounterState   `json:"deployments,omitempty"`
	Failures        []CounterState   `json:"failures,omitempty"`
	LeadTimeDropped []CounterState   `json:"lead_time_dropped,omitempty"`
	Incidents       []CounterState   `json:"incidents,omitempty"`
	Rework          []CounterState   `json:"rework,omitempty"`
	LeadTime        []HistogramState `json:"lead_time,omitempty"`
	LeadTimeStages  []HistogramState `json:"lead_time_stages,omitempty"`
	RecoveryTime    []HistogramState `json:"recovery_time,omitempty"`
}

// ServiceID is an event.Service in a State.
type ServiceID struct {
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	Environment string `json:"environment,omitempty"`
	// Cluster is absent from the state saved before clusters existed:
	// those services are a single-cluster installation's, cluster "".
	Cluster string `json:"cluster,omitempty"`
}

func serviceID(s event.Service) ServiceID { return ServiceID(s) }

func (s ServiceID) service() event.Service { return event.Service(s) }

// DedupState is the window of event ids seen, oldest first.
type DedupState struct {
	Newest time.Time   `json:"newest,omitzero"`
	IDs    []SeenState `json:"ids,omitempty"`
}

// SeenState is one event id seen, with its event time.
type SeenState struct {
	Source string `json:"source"`
	// Cluster scopes the id: the same rollout id from two clusters is two
	// events (absent in state saved before clusters existed).
	Cluster string    `json:"cluster,omitempty"`
	ID      string    `json:"id"`
	At      time.Time `json:"at"`
}

// ServiceState is what the engine remembers of one service.
type ServiceState struct {
	Service ServiceID `json:"service"`
	// Deployments, oldest first.
	Deployments []DeploymentState `json:"deployments,omitempty"`
	// DeployedRevisions are the revisions shipped, oldest first.
	DeployedRevisions []DeployedRevisionState `json:"deployed_revisions,omitempty"`
	HistoryStarted    bool                    `json:"history_started,omitempty"`
	// HistoryStart is the start of the service's history (the earliest
	// deployment or incident event about it). States written before it
	// existed lack it: Import takes the earliest time the service's state
	// holds, which is no earlier than the true start.
	HistoryStart time.Time `json:"history_start,omitzero"`
	// Failures are the change failures not recovered yet, oldest first.
	Failures []FailureState `json:"failures,omitempty"`
	// Incidents, oldest first.
	Incidents []IncidentState `json:"incidents,omitempty"`
	// The rolling history, oldest first.
	History    []DeployRecordState `json:"history,omitempty"`
	LeadTimes  []SampleState       `json:"lead_times,omitempty"`
	Recoveries []SampleState       `json:"recoveries,omitempty"`
	Deployed   bool                `json:"deployed,omitempty"`
}

// Deployment outcomes in a State.
const (
	outcomePendingName   = "pending"
	outcomeSucceededName = "succeeded"
	outcomeFailedName    = "failed"
)

// DeploymentState is one deployment of a service.
type DeploymentState struct {
	ID        string    `json:"id"`
	Source    string    `json:"source,omitempty"`
	Revision  string    `json:"revision,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	StartSeen time.Time `json:"start_seen,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	// Outcome is pending, succeeded or failed.
	Outcome        string `json:"outcome"`
	Rollback       bool   `json:"rollback,omitempty"`
	Hotfix         bool   `json:"hotfix,omitempty"`
	FailureCounted bool   `json:"failure_counted,omitempty"`
	// History is the index of its entry in the service's History, -1 when
	// it has none (no outcome yet, or the entry left the window).
	History int             `json:"history"`
	Aliases []string        `json:"aliases,omitempty"`
	Events  []EventRefState `json:"events,omitempty"`
}

// EventRefState names one applied event; Kind is its event.Kind name.
type EventRefState struct {
	Source string `json:"source"`
	ID     string `json:"id"`
	Kind   string `json:"kind"`
}

// DeployedRevisionState is a revision a service shipped and the deployment
// that shipped it first.
type DeployedRevisionState struct {
	Revision   string `json:"revision"`
	Deployment string `json:"deployment"`
}

// FailureState is a change failure waiting for its recovery.
type FailureState struct {
	// Deployment is the index of the failed deployment in the service's
	// Deployments, -1 when it is no longer remembered.
	Deployment int       `json:"deployment"`
	Since      time.Time `json:"since"`
	Detected   time.Time `json:"detected"`
	Incidents  []string  `json:"incidents,omitempty"`
}

// IncidentState is one incident of a service.
type IncidentState struct {
	ID         string    `json:"id"`
	Opened     time.Time `json:"opened"`
	Resolved   time.Time `json:"resolved,omitzero"`
	Attributed bool      `json:"attributed,omitempty"`
}

// DeployRecordState is one production deployment of the rolling history.
type DeployRecordState struct {
	At            time.Time `json:"at"`
	Success       bool      `json:"success,omitempty"`
	ChangeFailure bool      `json:"change_failure,omitempty"`
	Rework        bool      `json:"rework,omitempty"`
}

// SampleState is one lead time or recovery time (seconds) at the time it
// was recorded.
type SampleState struct {
	At time.Time `json:"at"`
	V  float64   `json:"v"`
}

// CommitState is one commit of the commit graph.
type CommitState struct {
	Revision string    `json:"revision"`
	Time     time.Time `json:"time,omitzero"`
	Parent   string    `json:"parent,omitempty"`
	Merged   time.Time `json:"merged,omitzero"`
	Opened   time.Time `json:"opened,omitzero"`
	Reverts  string    `json:"reverts,omitempty"`
	// Hotfix marks a commit of a hotfix change.
	Hotfix bool `json:"hotfix,omitempty"`
	// PathsKnown is set when its files were known; Touches then lists the
	// State.PathFilters they matched, by index.
	PathsKnown bool    `json:"paths_known,omitempty"`
	Touches    []int32 `json:"touches,omitempty"`
}

// ChangeRequestState is one change (pull or merge request) by id.
type ChangeRequestState struct {
	ID            string    `json:"id"`
	Opened        time.Time `json:"opened,omitzero"`
	MergeRevision string    `json:"merge_revision,omitempty"`
}

// TeamState is the team a service's events named last.
type TeamState struct {
	Service  ServiceID `json:"service"`
	Team     string    `json:"team"`
	Fallback bool      `json:"fallback,omitempty"`
}

// CounterState is one counter series; Label as in CounterPoint.
type CounterState struct {
	Service ServiceID `json:"service"`
	Label   string    `json:"label,omitempty"`
	Value   uint64    `json:"value"`
}

// HistogramState is one histogram series; Label as in HistogramPoint.
type HistogramState struct {
	Service ServiceID `json:"service"`
	Label   string    `json:"label,omitempty"`
	Bounds  []float64 `json:"bounds"`
	Counts  []uint64  `json:"counts"`
	Count   uint64    `json:"count"`
	Sum     float64   `json:"sum"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
}

// Seen reports whether Apply would take ev for a redelivery: its id was
// applied within the dedup window.
func (e *Engine) Seen(ev event.Event) bool {
	return ev.ID != "" && (e.seen.contains(ev.Source, ev.Service.Cluster, ev.ID) || e.importedSeen.contains(ev.Source, ev.Service.Cluster, ev.ID))
}

// utc drops the location and the monotonic reading, so that a State is
// the same before and after a trip through JSON.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Round(0)
}

// Export copies the whole state. The copy shares nothing with the engine:
// it may be encoded while the engine goes on.
func (e *Engine) Export() State {
	st := State{
		Version: StateVersion,
		Start:   utc(e.start),
		Changes: e.version,
		Newest:  utc(e.newest),
		Dedup:   exportDedup(&e.seen),
	}
	st.ImportedDedup = exportDedup(&e.importedSeen)

	svcs := make([]event.Service, 0, len(e.services))
	for svc := range e.services {
		svcs = append(svcs, svc)
	}
	slices.SortFunc(svcs, compareService)
	for _, svc := range svcs {
		st.Services = append(st.Services, exportService(svc, e.services[svc]))
	}

	st.Commits = make([]CommitState, 0, e.commits.len())
	for i := range e.commits.len() {
		c := e.commits.at(i)
		st.Commits = append(st.Commits, CommitState{
			Revision: c.rev, Time: c.time.time(), Parent: c.parent, Merged: c.merged().time(), Opened: c.opened().time(),
			Reverts: c.reverts(), Hotfix: c.hotfix(), PathsKnown: c.pathsKnown(), Touches: slices.Clone(c.touches()),
		})
	}
	for _, id := range e.changes.order {
		c := e.changes.changes[id]
		st.ChangeRequests = append(st.ChangeRequests, ChangeRequestState{ID: id, Opened: utc(c.opened), MergeRevision: c.mergeRevision})
	}
	for svc, t := range e.teams {
		st.Teams = append(st.Teams, TeamState{Service: serviceID(svc), Team: t.name, Fallback: t.fallback})
	}
	slices.SortFunc(st.Teams, func(a, b TeamState) int { return compareService(a.Service.service(), b.Service.service()) })
	st.PathFilters = slices.Clone(e.filters.keys)

	for k, v := range e.deployments {
		st.Deployments = append(st.Deployments, CounterState{Service: serviceID(k.svc), Label: k.status, Value: v})
	}
	sortCounters(st.Deployments)
	st.Failures = exportCounters(e.failures)
	st.LeadTimeDropped = exportCounters(e.dropped)
	st.Incidents = exportCounters(e.incidents)
	for svc, v := range e.rework {
		st.Rework = append(st.Rework, CounterState{Service: serviceID(svc), Value: v})
	}
	sortCounters(st.Rework)
	for svc, h := range e.leadTime {
		st.LeadTime = append(st.LeadTime, exportHistogram(svc, "", h))
	}
	for k, h := range e.stages {
		st.LeadTimeStages = append(st.LeadTimeStages, exportHistogram(k.svc, k.reason, h))
	}
	for svc, h := range e.recovery {
		st.RecoveryTime = append(st.RecoveryTime, exportHistogram(svc, "", h))
	}
	for _, hs := range [][]HistogramState{st.LeadTime, st.LeadTimeStages, st.RecoveryTime} {
		slices.SortFunc(hs, func(a, b HistogramState) int {
			return cmp.Or(compareService(a.Service.service(), b.Service.service()), cmp.Compare(a.Label, b.Label))
		})
	}
	return st
}

func exportService(svc event.Service, s *serviceState) ServiceState {
	out := ServiceState{Service: serviceID(svc), HistoryStarted: s.historyStarted, HistoryStart: utc(s.historyStart), Deployed: s.deployed}
	history := map[*deployRecord]int{}
	for i, r := range s.history {
		history[r] = i
		out.History = append(out.History, DeployRecordState{At: utc(r.at), Success: r.success, ChangeFailure: r.changeFailure, Rework: r.rework})
	}
	deployments := map[*deploymentState]int{}
	for i, d := range s.deployments {
		deployments[d] = i
		ds := DeploymentState{
			ID: d.id, Source: d.source, Revision: d.revision,
			Started: utc(d.started), StartSeen: utc(d.startSeen), Finished: utc(d.finished),
			Outcome:  outcomeName(d.outcome),
			Rollback: d.rollback, Hotfix: d.hotfix, FailureCounted: d.failureCounted,
			History: -1,
			Aliases: slices.Clone(d.aliases),
		}
		if i, ok := history[d.history]; ok && d.history != nil {
			ds.History = i
		}
		for _, ev := range d.events {
			ds.Events = append(ds.Events, EventRefState{Source: ev.Source, ID: ev.ID, Kind: ev.Kind.String()})
		}
		out.Deployments = append(out.Deployments, ds)
	}
	for _, rev := range s.revisionOrder {
		out.DeployedRevisions = append(out.DeployedRevisions, DeployedRevisionState{Revision: rev, Deployment: s.deployedRevisions[rev]})
	}
	for _, f := range s.failures {
		fs := FailureState{Deployment: -1, Since: utc(f.since), Detected: utc(f.detected), Incidents: slices.Clone(f.incidents)}
		if i, ok := deployments[f.deployment]; ok {
			fs.Deployment = i
		}
		out.Failures = append(out.Failures, fs)
	}
	for _, inc := range s.incidents {
		out.Incidents = append(out.Incidents, IncidentState{ID: inc.id, Opened: utc(inc.opened), Resolved: utc(inc.resolved), Attributed: inc.attributed})
	}
	out.LeadTimes = exportSamples(s.leadTimes)
	out.Recoveries = exportSamples(s.recoveries)
	return out
}

func exportSamples(in []sample) []SampleState {
	var out []SampleState
	for _, x := range in {
		out = append(out, SampleState{At: utc(x.at), V: x.v})
	}
	return out
}

func exportCounters(m map[reasonKey]uint64) []CounterState {
	var out []CounterState
	for k, v := range m {
		out = append(out, CounterState{Service: serviceID(k.svc), Label: k.reason, Value: v})
	}
	sortCounters(out)
	return out
}

func sortCounters(cs []CounterState) {
	slices.SortFunc(cs, func(a, b CounterState) int {
		return cmp.Or(compareService(a.Service.service(), b.Service.service()), cmp.Compare(a.Label, b.Label))
	})
}

func exportHistogram(svc event.Service, label string, h *Histogram) HistogramState {
	return HistogramState{
		Service: serviceID(svc), Label: label,
		Bounds: slices.Clone(h.Bounds), Counts: slices.Clone(h.Counts),
		Count: h.Count, Sum: h.Sum, Min: h.Min, Max: h.Max,
	}
}

func outcomeName(o outcome) string {
	switch o {
	case outcomeSucceeded:
		return outcomeSucceededName
	case outcomeFailed:
		return outcomeFailedName
	}
	return outcomePendingName
}

func parseOutcome(name string) (outcome, error) {
	switch name {
	case outcomePendingName:
		return outcomePending, nil
	case outcomeSucceededName:
		return outcomeSucceeded, nil
	case outcomeFailedName:
		return outcomeFailed, nil
	}
	return 0, fmt.Errorf("unknown deployment outcome %q", name)
}

// ErrStateVersion is wrapped by Import's error for a State of a version it
// cannot read.
var ErrStateVersion = errors.New("unsupported engine state version")

// Import replaces the engine's state with st, which Export wrote (by this
// version or an earlier one). The engine keeps its configuration; see
// State. A state that is inconsistent or of an unknown version is refused,
// and the engine is left as it was.
func (e *Engine) Import(st State) error {
	if st.Version < 1 || st.Version > StateVersion {
		return fmt.Errorf("%w %d: this build reads versions 1 to %d; was the state written by a newer otelcol-dora?", ErrStateVersion, st.Version, StateVersion)
	}
	fresh, err := New(e.cfg, st.Start)
	if err != nil {
		return err
	}
	if err := fresh.load(st); err != nil {
		return fmt.Errorf("engine state version %d: %w", st.Version, err)
	}
	*e = *fresh
	return nil
}

func exportDedup(d *dedup) DedupState {
	st := DedupState{Newest: utc(d.newest)}
	for _, e := range d.live() {
		st.IDs = append(st.IDs, SeenState{Source: e.key.source, Cluster: e.key.cluster, ID: e.key.id, At: utc(e.at)})
	}
	return st
}

func loadDedup(d *dedup, st DedupState) error {
	d.newest = st.Newest
	d.ids = make(map[dedupKey]struct{}, len(st.IDs))
	d.order = make([]dedupEntry, 0, len(st.IDs))
	for i, s := range st.IDs {
		k := dedupKey{s.Source, s.Cluster, s.ID}
		if _, dup := d.ids[k]; dup {
			return fmt.Errorf("ids[%d]: %s/%s listed twice", i, s.Source, s.ID)
		}
		d.ids[k] = struct{}{}
		d.order = append(d.order, dedupEntry{k, s.At})
	}
	return nil
}

// load fills a new engine from st.
func (e *Engine) load(st State) error {
	e.version = st.Changes
	e.newest = st.Newest
	if err := loadDedup(&e.seen, st.Dedup); err != nil {
		return fmt.Errorf("dedup.%w", err)
	}
	if err := loadDedup(&e.importedSeen, st.ImportedDedup); err != nil {
		return fmt.Errorf("imported_dedup.%w", err)
	}

	for i, ss := range st.Services {
		svc := ss.Service.service()
		if _, dup := e.services[svc]; dup {
			return fmt.Errorf("services[%d]: %v listed twice", i, svc)
		}
		s, err := e.loadService(ss)
		if err != nil {
			return fmt.Errorf("services[%d] (%s/%s/%s): %w", i, svc.Namespace, svc.Name, svc.Environment, err)
		}
		e.services[svc] = s
		e.noteCluster(svc)
	}

	// Commits name path filters by index in the exporting engine's list;
	// the configuration may have changed since.
	remap := make([]int32, len(st.PathFilters))
	for i, k := range st.PathFilters {
		remap[i] = -1
		if j, ok := e.filters.index[k]; ok {
			remap[i] = j
		}
	}
	e.commits.reserve(len(st.Commits))
	for i, cs := range st.Commits {
		if cs.Revision == "" {
			return fmt.Errorf("commits[%d]: no revision", i)
		}
		if e.commits.get(cs.Revision) != nil {
			return fmt.Errorf("commits[%d]: %s listed twice", i, cs.Revision)
		}
		c := commit{rev: cs.Revision, time: instantOf(cs.Time), parent: e.commits.intern(cs.Parent)}
		if !cs.Merged.IsZero() || !cs.Opened.IsZero() || cs.Reverts != "" || cs.Hotfix || cs.PathsKnown {
			c.extra = &commitExtra{merged: instantOf(cs.Merged), opened: instantOf(cs.Opened), reverts: cs.Reverts, hotfix: cs.Hotfix, pathsKnown: cs.PathsKnown}
		}
		for _, t := range cs.Touches {
			if t < 0 || int(t) >= len(remap) {
				return fmt.Errorf("commits[%d]: path filter %d of %d", i, t, len(remap))
			}
			if remap[t] >= 0 {
				x := c.more()
				x.touches = append(x.touches, remap[t])
			}
		}
		if c.extra != nil {
			slices.Sort(c.extra.touches)
		}
		e.commits.push(c)
	}
	for i, cs := range st.ChangeRequests {
		if _, dup := e.changes.changes[cs.ID]; dup {
			return fmt.Errorf("change_requests[%d]: %s listed twice", i, cs.ID)
		}
		e.changes.changes[cs.ID] = &changeInfo{opened: cs.Opened, mergeRevision: cs.MergeRevision}
		e.changes.order = append(e.changes.order, cs.ID)
	}
	for _, t := range st.Teams {
		e.teams[t.Service.service()] = teamInfo{name: t.Team, fallback: t.Fallback}
	}

	for _, c := range st.Deployments {
		e.deployments[statusKey{c.Service.service(), c.Label}] = c.Value
	}
	for _, x := range []struct {
		from []CounterState
		to   map[reasonKey]uint64
	}{{st.Failures, e.failures}, {st.LeadTimeDropped, e.dropped}, {st.Incidents, e.incidents}} {
		for _, c := range x.from {
			x.to[reasonKey{c.Service.service(), c.Label}] = c.Value
		}
	}
	for _, c := range st.Rework {
		e.rework[c.Service.service()] = c.Value
	}
	for name, x := range map[string]struct {
		from  []HistogramState
		put   func(HistogramState, *Histogram)
		label bool
	}{
		"lead_time":        {st.LeadTime, func(h HistogramState, v *Histogram) { e.leadTime[h.Service.service()] = v }, false},
		"lead_time_stages": {st.LeadTimeStages, func(h HistogramState, v *Histogram) { e.stages[reasonKey{h.Service.service(), h.Label}] = v }, true},
		"recovery_time":    {st.RecoveryTime, func(h HistogramState, v *Histogram) { e.recovery[h.Service.service()] = v }, false},
	} {
		for i, h := range x.from {
			if len(h.Counts) != len(h.Bounds)+1 {
				return fmt.Errorf("%s[%d]: %d counts for %d bounds", name, i, len(h.Counts), len(h.Bounds))
			}
			if err := validBounds(h.Bounds); err != nil {
				return fmt.Errorf("%s[%d]: %w", name, i, err)
			}
			x.put(h, &Histogram{Bounds: slices.Clone(h.Bounds), Counts: slices.Clone(h.Counts), Count: h.Count, Sum: h.Sum, Min: h.Min, Max: h.Max})
		}
	}
	return nil
}

func (e *Engine) loadService(ss ServiceState) (*serviceState, error) {
	s := &serviceState{
		production:     e.production(ss.Service.Environment),
		historyStarted: ss.HistoryStarted,
		deployed:       ss.Deployed,
	}
	for _, r := range ss.History {
		s.history = append(s.history, &deployRecord{at: r.At, success: r.Success, changeFailure: r.ChangeFailure, rework: r.Rework})
	}
	for i, ds := range ss.Deployments {
		o, err := parseOutcome(ds.Outcome)
		if err != nil {
			return nil, fmt.Errorf("deployments[%d]: %w", i, err)
		}
		d := &deploymentState{
			id: ds.ID, source: ds.Source, revision: ds.Revision,
			started: ds.Started, startSeen: ds.StartSeen, finished: ds.Finished,
			outcome: o, rollback: ds.Rollback, hotfix: ds.Hotfix, failureCounted: ds.FailureCounted,
			aliases: slices.Clone(ds.Aliases),
		}
		switch {
		case ds.History == -1:
		case ds.History >= 0 && ds.History < len(s.history):
			d.history = s.history[ds.History]
		default:
			return nil, fmt.Errorf("deployments[%d]: history entry %d of %d", i, ds.History, len(s.history))
		}
		for _, ref := range ds.Events {
			k, ok := event.ParseKind(ref.Kind)
			if !ok {
				return nil, fmt.Errorf("deployments[%d]: unknown event kind %q", i, ref.Kind)
			}
			d.events = append(d.events, EventRef{Source: ref.Source, ID: ref.ID, Kind: k})
		}
		s.deployments = append(s.deployments, d)
	}
	for _, r := range ss.DeployedRevisions {
		if s.revisionDeployed(r.Revision) {
			return nil, fmt.Errorf("deployed revision %s listed twice", r.Revision)
		}
		if s.deployedRevisions == nil {
			s.deployedRevisions = map[string]string{}
		}
		s.deployedRevisions[r.Revision] = r.Deployment
		s.revisionOrder = append(s.revisionOrder, r.Revision)
	}
	for i, fs := range ss.Failures {
		f := &failureState{since: fs.Since, detected: fs.Detected, incidents: slices.Clone(fs.Incidents)}
		switch {
		case fs.Deployment == -1:
			// A deployment no longer remembered: only its identity was
			// used (failureOf), and no event can name it any more.
			f.deployment = &deploymentState{}
		case fs.Deployment >= 0 && fs.Deployment < len(s.deployments):
			f.deployment = s.deployments[fs.Deployment]
		default:
			return nil, fmt.Errorf("failures[%d]: deployment %d of %d", i, fs.Deployment, len(s.deployments))
		}
		s.failures = append(s.failures, f)
	}
	for _, inc := range ss.Incidents {
		s.incidents = append(s.incidents, &incidentState{id: inc.ID, opened: inc.Opened, resolved: inc.Resolved, attributed: inc.Attributed})
	}
	for _, x := range ss.LeadTimes {
		s.leadTimes = append(s.leadTimes, sample{x.At, x.V})
	}
	for _, x := range ss.Recoveries {
		s.recoveries = append(s.recoveries, sample{x.At, x.V})
	}
	s.historyStart = ss.HistoryStart
	if s.historyStart.IsZero() {
		// A state from before history_start: the earliest time it holds
		// of the service. Later than the true start at worst, so commits
		// known only from deployments are dropped rather than poisoning.
		for _, d := range s.deployments {
			s.noteObserved(d.started)
			s.noteObserved(d.finished)
		}
		for _, inc := range s.incidents {
			s.noteObserved(inc.opened)
		}
		for _, r := range s.history {
			s.noteObserved(r.at)
		}
	}
	return s, nil
}
