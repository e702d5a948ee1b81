// Package enginetest holds the DORA scenarios: whole delivery histories as
// event sequences, with the cumulative metric values they leave, computed
// by hand (the comments in Scenarios show the arithmetic).
//
// Two tests replay them: the engine's scenario test
// (internal/engine/scenario_test.go) through a fresh engine, where it also
// checks the rolling values, and the end-to-end test (e2e/scenarios_test.go)
// through the real otelcol-dora binary, as signed generic webhook
// deliveries, reading its Prometheus endpoint. The package imports nothing
// of the engine, so that the engine's own tests can use it.
package enginetest

import (
	"fmt"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// OTel names of the cumulative metrics a scenario checks (METRICS.md).
const (
	Deployments        = "platform.deployments"
	DeploymentFailures = "platform.deployment.failures"
	LeadTimeDropped    = "platform.lead_time.dropped"
	Incidents          = "platform.incidents"
	Rework             = "platform.deployments.rework"

	LeadTime      = "platform.lead_time"
	LeadTimeStage = "platform.lead_time.stage"
	RecoveryTime  = "platform.recovery_time"
)

// CounterMetrics and HistogramMetrics list the metrics above by type; every
// scenario is checked on all of them.
var (
	CounterMetrics   = []string{Deployments, DeploymentFailures, LeadTimeDropped, Incidents, Rework}
	HistogramMetrics = []string{LeadTime, LeadTimeStage, RecoveryTime}
)

// Series is one series of a metric: the service (the namespace, deployment
// and environment attributes) and the value of the metric's own attribute,
// Label: status (deployments), reason (failures, dropped lead times),
// attributed "true" or "false" (incidents), stage (lead time stages); empty
// for rework, lead time and recovery time.
type Series struct {
	Service event.Service
	Label   string
}

func (s Series) String() string {
	return fmt.Sprintf("%s/%s/%s %q", s.Service.Namespace, s.Service.Name, s.Service.Environment, s.Label)
}

// Counter holds a counter metric's expected values by series.
type Counter map[Series]uint64

// Observations is what a histogram series holds in the end: the sum of its
// observations (seconds) and their count.
type Observations struct {
	Sum   float64
	Count uint64
}

// Histogram holds a histogram metric's expected observations by series.
type Histogram map[Series]Observations

// Expected is every cumulative metric a scenario leaves, by OTel metric
// name (the constants above). A metric that is absent, or has no series,
// expects no series at all.
type Expected struct {
	Counters   map[string]Counter
	Histograms map[string]Histogram
}

// Scenario is one delivery history.
type Scenario struct {
	Name string
	// ServicePaths configures the services deployed from a monorepo, if
	// any; every other setting is the default (see Scenarios).
	ServicePaths []ServicePaths
	// Events are applied in order, each once.
	Events []event.Event
	// Now is when the scenario is looked at: the rolling values depend on
	// it, the cumulative values do not.
	Now  time.Time
	Want Expected
	// EngineOnly, when set, says that the scenario cannot be replayed
	// through the binary's generic webhook source alone, and names the e2e
	// test that replays it through the binary instead. e2e's TestScenarios
	// leaves it out, and checks that the named test exists.
	EngineOnly string
}

// ServicePaths are the path filters of a service deployed from a monorepo
// (shell globs with **): a commit whose paths are known is its change only
// when one of them matches. The engine's scenario test sets them as the
// engine's Config.ServicePaths, the e2e test as the receiver's
// services[].paths (with a placeholder repository).
type ServicePaths struct {
	Namespace string
	Name      string
	Paths     []string
}

// T0 is the time the scenarios' offsets count from.
var T0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// At is T0 plus d.
func At(d time.Duration) time.Time { return T0.Add(d) }

// Days is n days.
func Days(n float64) time.Duration { return time.Duration(n * float64(24*time.Hour)) }

// The scenarios' services. Only WebStaging is not in production.
var (
	Payments   = event.Service{Namespace: "acme", Name: "payments", Environment: "production"}
	Ledger     = event.Service{Namespace: "acme", Name: "ledger", Environment: "production"}
	Web        = event.Service{Namespace: "shop", Name: "web", Environment: "production"}
	API        = event.Service{Namespace: "shop", Name: "api", Environment: "production"}
	Cart       = event.Service{Namespace: "shop", Name: "cart", Environment: "production"}
	Checkout   = event.Service{Namespace: "shop", Name: "checkout", Environment: "production"}
	DB         = event.Service{Namespace: "shop", Name: "db", Environment: "production"}
	WebStaging = event.Service{Namespace: "shop", Name: "web", Environment: "staging"}
)

// Source is the Source of every scenario event. Replays through a webhook
// source get that source's name instead, which changes nothing: the engine
// compares sources only with each other.
const Source = "test"

// Event builders; t is the offset from T0. Their ids are unique within a
// scenario.

func Started(svc event.Service, id, rev string, t time.Duration) event.Event {
	return event.Event{Kind: event.DeploymentStarted, Source: Source, ID: "start/" + id, Time: At(t), Service: svc, DeploymentID: id, Revision: rev}
}

func Succeeded(svc event.Service, id, rev string, t time.Duration) event.Event {
	return event.Event{Kind: event.DeploymentSucceeded, Source: Source, ID: "ok/" + id, Time: At(t), Service: svc, DeploymentID: id, Revision: rev}
}

func Failed(svc event.Service, id, reason string, t time.Duration) event.Event {
	return event.Event{Kind: event.DeploymentFailed, Source: Source, ID: "fail/" + id, Time: At(t), Service: svc, DeploymentID: id, Reason: reason}
}

// RolledBack is the rollback id of svc, abandoning prev.
func RolledBack(svc event.Service, id, prev string, t time.Duration) event.Event {
	return event.Event{Kind: event.DeploymentRolledBack, Source: Source, ID: "rb/" + id, Time: At(t), Service: svc, DeploymentID: id, PreviousDeploymentID: prev}
}

// Change is the commit rev, child of parent, committed at t.
func Change(rev, parent string, t time.Duration) event.Event {
	return event.Event{Kind: event.ChangeCommitted, Source: Source, ID: "commit/" + rev, Time: At(t), Revision: rev, ParentRevision: parent}
}

// Merged is the merge of change changeID as the commit rev.
func Merged(rev, changeID string, t time.Duration) event.Event {
	return event.Event{Kind: event.ChangeMerged, Source: Source, ID: "merged/" + rev, Time: At(t), Revision: rev, ChangeID: changeID}
}

// Opened is the opening of change changeID for review.
func Opened(changeID string, t time.Duration) event.Event {
	return event.Event{Kind: event.ChangeOpened, Source: Source, ID: "opened/" + changeID, Time: At(t), ChangeID: changeID}
}

// Incident is an IncidentOpened or IncidentResolved event of incident id.
func Incident(kind event.Kind, svc event.Service, id string, t time.Duration) event.Event {
	return event.Event{Kind: kind, Source: Source, ID: fmt.Sprintf("%s/%s", kind, id), Time: At(t), Service: svc, IncidentID: id}
}

// History is the first successful deployment of svc, a day before T0: the
// start of the service's history (see METRICS.md, lead time), so that the
// deployments after it record lead times. Its revision is in no scenario's
// commit graph.
func History(svc event.Service) event.Event {
	return Succeeded(svc, "history-"+svc.Name, "history-"+svc.Name, -24*time.Hour)
}

// WithCommitTime sets the commit time the deployment event carries.
func WithCommitTime(ev event.Event, t time.Duration) event.Event {
	ev.CommitTime = At(t)
	return ev
}

// From gives ev another source (another reporter of the same story).
func From(source string, ev event.Event) event.Event {
	ev.Source = source
	return ev
}

// IncidentWindow is the engine's default incident_window, which the
// scenarios run with.
const IncidentWindow = 24 * time.Hour

// WithID gives ev another id (another report of the same thing).
func WithID(ev event.Event, id string) event.Event {
	ev.ID = id
	return ev
}

// AsHotfix marks the deployment event as a hotfix.
func AsHotfix(ev event.Event) event.Event {
	ev.Hotfix = true
	return ev
}

// Reverting marks ev as shipping a revert of rev.
func Reverting(ev event.Event, rev string) event.Event {
	ev.Reverts = rev
	return ev
}

// Touching sets the files the change event's commit touched.
func Touching(ev event.Event, paths ...string) event.Event {
	ev.Paths = paths
	return ev
}
