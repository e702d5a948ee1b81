package engine

import (
	"slices"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// DeploymentReport explains one production deployment that reached its
// outcome: what it shipped and where each change's lead time went. Apply
// returns one (Outcome.Deployment) when a production deployment succeeds or
// its rollout fails; the receiver turns it into a trace and a log record
// (internal/explain). It holds the numbers the engine recorded for the
// metrics, nothing recomputed.
type DeploymentReport struct {
	Service    event.Service
	Repository string
	// DeploymentID is the engine's id of the deployment; Aliases are the
	// ids other sources gave the same rollout.
	DeploymentID string
	Aliases      []string
	// Source is the source that reported the deployment first.
	Source   string
	Revision string
	// Started is the first event seen of the deployment; Finished its
	// outcome (in production, or failed).
	Started  time.Time
	Finished time.Time
	// BuildEnd is the deployment's start as reported by a start event (the
	// end of the build stage); zero when no start was reported.
	BuildEnd time.Time

	// Failed is set for a failed rollout; Reason says why.
	Failed bool
	Reason string
	// Rework: an unplanned fix (hotfix, revert, rollback, or a deployment
	// while an incident was open), counted in platform.deployments.rework.
	Rework   bool
	Rollback bool
	Hotfix   bool
	// HistoryStart is set for the service's first successful production
	// deployment the engine saw: the commits it ships that are known only
	// from the deployment and older than the service's history start are
	// before_history (those whose push or merge was seen count).
	HistoryStart bool

	// Commits are the commits it shipped for the first time to the
	// service, newest (the deployed revision) first.
	Commits []ShippedCommit
	// Events are the events of the deployment the engine applied, oldest
	// first (at most maxDeploymentEvents); explain links the CI/CD spans
	// among them.
	Events []EventRef
}

// ShippedCommit is one commit a deployment shipped for the first time.
type ShippedCommit struct {
	Revision string
	// CommitTime is zero when no source reported it.
	CommitTime time.Time
	// Recorded is set when LeadTime went into platform.lead_time.
	Recorded bool
	LeadTime time.Duration
	// Dropped is the reason of platform.lead_time.dropped when the lead
	// time was dropped (clock_skew, before_history, too_long). A commit with
	// neither Recorded nor Dropped has no lead time: its time is unknown or
	// the deployment is a rollback.
	Dropped string
	// Stages are its stage boundaries, as recorded in
	// platform.lead_time.stage; set when Recorded.
	Stages StageBoundaries
}

// StageBoundaries are the known boundaries of a commit's lead time, each
// clamped between the previous known one and production; zero when unknown.
type StageBoundaries struct {
	Committed  time.Time
	Opened     time.Time
	Merged     time.Time
	BuildEnd   time.Time
	Production time.Time
}

// Stage is one lead time stage with both boundaries known.
type Stage struct {
	Name       string
	Start, End time.Time
}

// Duration is the stage's length.
func (s Stage) Duration() time.Duration { return s.End.Sub(s.Start) }

// Stages lists the stages whose boundaries are both known, in order
// (coding, review, build, deploy): the observations of
// platform.lead_time.stage for this commit.
func (b StageBoundaries) Stages() []Stage {
	bounds := b.array()
	var out []Stage
	for i, name := range stageNames {
		if bounds[i].IsZero() || bounds[i+1].IsZero() {
			continue
		}
		out = append(out, Stage{Name: name, Start: bounds[i], End: bounds[i+1]})
	}
	return out
}

func (b StageBoundaries) array() [len(stageNames) + 1]time.Time {
	return [...]time.Time{b.Committed, b.Opened, b.Merged, b.BuildEnd, b.Production}
}

func boundariesOf(a [len(stageNames) + 1]time.Time) StageBoundaries {
	return StageBoundaries{Committed: a[0], Opened: a[1], Merged: a[2], BuildEnd: a[3], Production: a[4]}
}

// EventRef names one applied event.
type EventRef struct {
	Source string
	ID     string
	Kind   event.Kind
}

// maxDeploymentEvents bounds the events remembered per deployment.
const maxDeploymentEvents = 8

// noteEvent remembers ev among d's events, for its report.
func (d *deploymentState) noteEvent(ev event.Event) {
	if ev.ID == "" || len(d.events) == maxDeploymentEvents {
		return
	}
	d.events = append(d.events, EventRef{Source: ev.Source, ID: ev.ID, Kind: ev.Kind})
}

// newReport starts the report of d, whose outcome ev is.
func newReport(ev event.Event, d *deploymentState) *DeploymentReport {
	return &DeploymentReport{
		Service:      ev.Service,
		Repository:   ev.Repository,
		DeploymentID: d.id,
		Aliases:      slices.Clone(d.aliases),
		Source:       d.source,
		Revision:     d.revision,
		Started:      d.started,
		Finished:     ev.Time,
		BuildEnd:     d.startSeen,
		Rollback:     d.rollback,
		Hotfix:       d.hotfix,
		Events:       slices.Clone(d.events),
	}
}

// addCommit notes a shipped commit; r may be nil.
func (r *DeploymentReport) addCommit(c ShippedCommit) {
	if r != nil {
		r.Commits = append(r.Commits, c)
	}
}

// LeadTimes returns the recorded lead times, in the order of Commits.
func (r *DeploymentReport) LeadTimes() []time.Duration {
	var out []time.Duration
	for _, c := range r.Commits {
		if c.Recorded {
			out = append(out, c.LeadTime)
		}
	}
	return out
}

// Oldest returns the recorded commit with the longest lead time (the first
// commit of the deployment), or nil.
func (r *DeploymentReport) Oldest() *ShippedCommit {
	var best *ShippedCommit
	for i := range r.Commits {
		c := &r.Commits[i]
		if c.Recorded && (best == nil || c.LeadTime > best.LeadTime) {
			best = c
		}
	}
	return best
}
