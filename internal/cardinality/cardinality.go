// Package cardinality bounds the series a sender can make the receiver
// keep: past a limit, a new service, environment or failure reason is
// folded into one overflow value of its attribute (Overflow) before the
// event is logged and applied, so the saved log replays to the same
// series and the engine needs no limit of its own.
package cardinality

import (
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Overflow is the value an attribute takes past its limit. It is the
// value of the folded attribute itself, not an extra marker attribute
// (OpenTelemetry's SDK marks its overflow series otel.metric.overflow=true
// and drops every other attribute): in Prometheus a query by the
// attribute (sum by (deployment)) shows the overflow as one more value,
// the other attributes of the series stay, and no series gains a label.
// The leading underscore keeps it apart from every Kubernetes name (DNS
// labels start with an alphanumeric character).
const Overflow = "_overflow"

// Attributes that fold, as counted and logged.
const (
	AttrService     = "service"
	AttrEnvironment = "environment"
	AttrReason      = "reason"
)

// Limits are the numbers of distinct values admitted.
type Limits struct {
	// Services bounds the services (namespace and name).
	Services int
	// EnvironmentsPerService bounds each service's environments.
	EnvironmentsPerService int
	// Reasons bounds the free-form reasons of failed deployments (the
	// engine's own reasons do not count).
	Reasons int
}

// Origin says how far an event's service is trusted.
type Origin uint8

const (
	// Sender: a service named by a webhook or OTLP sender, folded past the
	// limits.
	Sender Origin = iota
	// Mapped: a service of the services mapping; its service is never
	// folded, its environments and reasons are.
	Mapped
	// Cluster: an event of the Kubernetes source, whose values the cluster
	// and the configuration bound; nothing is folded, everything admitted.
	Cluster
)

// serviceKey is a service without its environments: the same namespace
// and name in two clusters are two services.
type serviceKey struct{ namespace, name, cluster string }

// Limiter remembers the values admitted; not safe for concurrent use.
type Limiter struct {
	limits   Limits
	services map[serviceKey]map[string]struct{}
	reasons  map[string]struct{}
	closed   map[string]bool
	full     bool
}

// New returns a limiter that admits nothing yet; closedReasons are the
// reasons that do not count (the engine's own).
func New(l Limits, closedReasons ...string) *Limiter {
	c := map[string]bool{"": true}
	for _, r := range closedReasons {
		c[r] = true
	}
	return &Limiter{limits: l, services: map[serviceKey]map[string]struct{}{}, reasons: map[string]struct{}{}, closed: c}
}

// Fold is one value folded into Overflow.
type Fold struct {
	Attribute string
	Value     string
}

// Folds reports whether events of kind k carry values that become series
// keys: deployment and incident events (change events are keyed by
// revision, not by service).
func Folds(k event.Kind) bool {
	switch k {
	case event.DeploymentStarted, event.DeploymentSucceeded, event.DeploymentFailed, event.DeploymentRolledBack,
		event.IncidentOpened, event.IncidentResolved:
		return true
	}
	return false
}

// Apply admits the values of ev, folding in place those past their limit
// (or new while the limiter is full, SetFull), and returns the folds and
// whether a value was newly admitted.
func (l *Limiter) Apply(ev *event.Event, o Origin) (folds []Fold, admitted bool) {
	if !Folds(ev.Kind) {
		return nil, false
	}
	k := serviceKey{ev.Service.Namespace, ev.Service.Name, ev.Service.Cluster}
	envs, known := l.services[k]
	if !known {
		if o == Sender && (l.full || l.countedServices() >= l.limits.Services) {
			folds = append(folds, Fold{AttrService, ev.Service.Name})
			ev.Service.Namespace, ev.Service.Name = Overflow, Overflow
			// The team of a service that is not kept is not kept either:
			// the overflow series aggregate many senders' teams.
			ev.Team, ev.TeamFallback = "", false
			// One overflow entry for every cluster (the event keeps its
			// cluster): the limit counts services, not clusters.
			k = serviceKey{Overflow, Overflow, ""}
			envs, known = l.services[k]
		}
		if !known {
			envs = map[string]struct{}{}
			l.services[k] = envs
			admitted = true
		}
	}
	if _, ok := envs[ev.Service.Environment]; !ok {
		if o != Cluster && (l.full || countedValues(envs) >= l.limits.EnvironmentsPerService) {
			folds = append(folds, Fold{AttrEnvironment, ev.Service.Environment})
			ev.Service.Environment = Overflow
		}
		if _, ok := envs[ev.Service.Environment]; !ok {
			envs[ev.Service.Environment] = struct{}{}
			admitted = true
		}
	}
	if ev.Kind == event.DeploymentFailed && !l.closed[ev.Reason] {
		if _, ok := l.reasons[ev.Reason]; !ok {
			if o != Cluster && (l.full || countedValues(l.reasons) >= l.limits.Reasons) {
				folds = append(folds, Fold{AttrReason, ev.Reason})
				ev.Reason = Overflow
			}
			if _, ok := l.reasons[ev.Reason]; !ok {
				l.reasons[ev.Reason] = struct{}{}
				admitted = true
			}
		}
	}
	return folds, admitted
}

// Admit records a service and a failure reason the engine holds (restored
// state) without limits: what has series keeps them after a restart.
func (l *Limiter) Admit(svc event.Service, reason string) {
	if svc.Name != "" {
		k := serviceKey{svc.Namespace, svc.Name, svc.Cluster}
		if svc.Namespace == Overflow && svc.Name == Overflow {
			k.cluster = ""
		}
		envs, ok := l.services[k]
		if !ok {
			envs = map[string]struct{}{}
			l.services[k] = envs
		}
		envs[svc.Environment] = struct{}{}
	}
	if !l.closed[reason] {
		l.reasons[reason] = struct{}{}
	}
}

// SetFull makes every new value of a sender fold (the memory guard), or
// lifts that.
func (l *Limiter) SetFull(full bool) { l.full = full }

// Full reports whether SetFull(true) is in force.
func (l *Limiter) Full() bool { return l.full }

// Services is the number of services admitted, the overflow not counted.
func (l *Limiter) Services() int { return l.countedServices() }

// countedServices counts the services against the limit: every admitted
// one but the overflow (mapped and cluster services take room too, so the
// count restored from the engine's state, which does not say where a
// service came from, is the count before the restart).
func (l *Limiter) countedServices() int {
	n := len(l.services)
	if _, ok := l.services[serviceKey{Overflow, Overflow, ""}]; ok {
		n--
	}
	return n
}

func countedValues(m map[string]struct{}) int {
	if _, ok := m[Overflow]; ok {
		return len(m) - 1
	}
	return len(m)
}
