package cardinality

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

func deploy(ns, name, env string) event.Event {
	return event.Event{Kind: event.DeploymentSucceeded, Source: "generic", Service: event.Service{Namespace: ns, Name: name, Environment: env}, Team: "t"}
}

func failed(name, reason string) event.Event {
	ev := deploy("shop", name, "production")
	ev.Kind, ev.Reason = event.DeploymentFailed, reason
	return ev
}

// TestServicesFoldAtLimitPlusOne: the limit's services are kept, the next
// one folds (with its team), and folds again on its next event; a service
// admitted before keeps its name.
func TestServicesFoldAtLimitPlusOne(t *testing.T) {
	l := New(Limits{Services: 3, EnvironmentsPerService: 10, Reasons: 10})
	for i := range 3 {
		ev := deploy("shop", fmt.Sprint("s", i), "production")
		folds, admitted := l.Apply(&ev, Sender)
		assert.Empty(t, folds)
		assert.True(t, admitted)
		assert.Equal(t, fmt.Sprint("s", i), ev.Service.Name)
	}
	for range 2 {
		ev := deploy("shop", "s3", "production")
		folds, _ := l.Apply(&ev, Sender)
		assert.Equal(t, []Fold{{AttrService, "s3"}}, folds)
		assert.Equal(t, event.Service{Namespace: Overflow, Name: Overflow, Environment: "production"}, ev.Service)
		assert.Empty(t, ev.Team)
	}
	ev := deploy("shop", "s0", "production")
	folds, admitted := l.Apply(&ev, Sender)
	assert.Empty(t, folds)
	assert.False(t, admitted)
	assert.Equal(t, 3, l.Services(), "the overflow does not count")
}

// TestKnownServicesNeverFolded: past the limit, a mapped service and a
// Kubernetes service are still admitted under their names.
func TestKnownServicesNeverFolded(t *testing.T) {
	l := New(Limits{Services: 1, EnvironmentsPerService: 1, Reasons: 1})
	noise := deploy("", "noise", "production")
	l.Apply(&noise, Sender)
	mapped := deploy("shop", "api", "production")
	folds, _ := l.Apply(&mapped, Mapped)
	assert.Empty(t, folds)
	assert.Equal(t, "api", mapped.Service.Name)
	// A mapped service's environments are bounded like any.
	staging := deploy("shop", "api", "staging")
	folds, _ = l.Apply(&staging, Mapped)
	assert.Equal(t, []Fold{{AttrEnvironment, "staging"}}, folds)
	assert.Equal(t, event.Service{Namespace: "shop", Name: "api", Environment: Overflow}, staging.Service)

	cluster := deploy("web", "front", "preview-42")
	cluster.Kind, cluster.Reason = event.DeploymentFailed, "ProgressDeadlineExceeded"
	l.SetFull(true)
	folds, _ = l.Apply(&cluster, Cluster)
	assert.Empty(t, folds, "Kubernetes events are never folded, even when full")
	assert.Equal(t, event.Service{Namespace: "web", Name: "front", Environment: "preview-42"}, cluster.Service)
	assert.Equal(t, "ProgressDeadlineExceeded", cluster.Reason)
}

// TestEnvironmentsAndReasonsFoldAtLimitPlusOne: each service keeps its
// limit's environments; the reasons are bounded across services, the
// engine's own reasons (and none) not counted.
func TestEnvironmentsAndReasonsFoldAtLimitPlusOne(t *testing.T) {
	l := New(Limits{Services: 10, EnvironmentsPerService: 2, Reasons: 2}, "rollback", "failed")
	for _, env := range []string{"production", "staging"} {
		ev := deploy("shop", "api", env)
		folds, _ := l.Apply(&ev, Sender)
		assert.Empty(t, folds)
	}
	ev := deploy("shop", "api", "pr-1")
	folds, _ := l.Apply(&ev, Sender)
	assert.Equal(t, []Fold{{AttrEnvironment, "pr-1"}}, folds)
	assert.Equal(t, Overflow, ev.Service.Environment)
	other := deploy("shop", "web", "pr-1")
	folds, _ = l.Apply(&other, Sender)
	assert.Empty(t, folds, "the limit is per service")

	for _, r := range []string{"", "rollback", "a", "failed", "b", "a"} {
		ev := failed("api", r)
		folds, _ := l.Apply(&ev, Sender)
		assert.Empty(t, folds, r)
		assert.Equal(t, r, ev.Reason)
	}
	ev = failed("api", "c")
	folds, _ = l.Apply(&ev, Sender)
	assert.Equal(t, []Fold{{AttrReason, "c"}}, folds)
	assert.Equal(t, Overflow, ev.Reason)
	// A reason on another kind of event is not a series.
	ev = deploy("shop", "api", "production")
	ev.Reason = "d"
	folds, _ = l.Apply(&ev, Sender)
	assert.Empty(t, folds)
}

// TestAdmitRestoresWithoutRefolding: values admitted from a restored
// state keep their names even past the limits, and count against them.
func TestAdmitRestoresWithoutRefolding(t *testing.T) {
	before := New(Limits{Services: 2, EnvironmentsPerService: 1, Reasons: 1})
	var kept []event.Event
	for _, ev := range []event.Event{deploy("", "a", "p"), failed("b", "x"), deploy("", "c", "p"), failed("b", "y")} {
		before.Apply(&ev, Sender)
		kept = append(kept, ev)
	}
	after := New(Limits{Services: 2, EnvironmentsPerService: 1, Reasons: 1})
	for _, ev := range kept {
		after.Admit(ev.Service, ev.Reason)
	}
	assert.Equal(t, before.Services(), after.Services())
	for _, probe := range []event.Event{deploy("", "a", "p"), failed("b", "x"), deploy("", "c", "p"), failed("b", "z"), deploy("", "a", "q")} {
		x, y := probe, probe
		f1, _ := before.Apply(&x, Sender)
		f2, _ := after.Apply(&y, Sender)
		assert.Equal(t, f1, f2, "%+v", probe)
		assert.Equal(t, x, y)
	}
}

// TestFullFoldsNewValues: while full (the memory guard), a sender's new
// values fold and admitted ones do not; lifting it admits again.
func TestFullFoldsNewValues(t *testing.T) {
	l := New(Limits{Services: 100, EnvironmentsPerService: 100, Reasons: 100})
	ev := deploy("", "a", "p")
	l.Apply(&ev, Sender)
	l.SetFull(true)
	same := deploy("", "a", "p")
	folds, _ := l.Apply(&same, Sender)
	assert.Empty(t, folds)
	fresh := deploy("", "b", "p")
	folds, _ = l.Apply(&fresh, Sender)
	// The overflow service has no environment yet: that is new too.
	assert.Equal(t, []Fold{{AttrService, "b"}, {AttrEnvironment, "p"}}, folds)
	assert.Equal(t, event.Service{Namespace: Overflow, Name: Overflow, Environment: Overflow}, fresh.Service)
	l.SetFull(false)
	fresh = deploy("", "b", "p")
	folds, _ = l.Apply(&fresh, Sender)
	assert.Empty(t, folds)
}

// TestChangeEventsUntouched: change events name no series.
func TestChangeEventsUntouched(t *testing.T) {
	l := New(Limits{})
	ev := event.Event{Kind: event.ChangeCommitted, Service: event.Service{Name: "x"}, Revision: "r"}
	folds, admitted := l.Apply(&ev, Sender)
	assert.Empty(t, folds)
	assert.False(t, admitted)
	assert.Equal(t, "x", ev.Service.Name)
}

// The same service in two clusters is two services against the limit; a
// folded event keeps its cluster, and every cluster's overflow is one
// overflow service.
func TestClustersAreServices(t *testing.T) {
	l := New(Limits{Services: 1, EnvironmentsPerService: 10, Reasons: 10})
	inCluster := func(c string) event.Event {
		e := deploy("shop", "api", "production")
		e.Service.Cluster = c
		return e
	}
	a := inCluster("eu-1")
	folds, admitted := l.Apply(&a, Sender)
	assert.Empty(t, folds)
	assert.True(t, admitted)
	b := inCluster("us-1")
	folds, _ = l.Apply(&b, Sender)
	assert.Equal(t, []Fold{{AttrService, "api"}}, folds, "the second cluster's api is a second service")
	assert.Equal(t, event.Service{Namespace: Overflow, Name: Overflow, Environment: "production", Cluster: "us-1"}, b.Service)
	c := inCluster("ap-1")
	l.Apply(&c, Sender)
	assert.Equal(t, 1, l.Services(), "the overflow of every cluster does not count")
	l2 := New(Limits{Services: 1, EnvironmentsPerService: 10, Reasons: 10})
	l2.Admit(b.Service, "")
	l2.Admit(a.Service, "")
	assert.Equal(t, 1, l2.Services(), "restored overflow of a cluster does not count either")
}
