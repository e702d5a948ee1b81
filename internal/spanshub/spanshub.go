// Package spanshub lets a dora connector reach the dora receiver it feeds,
// in the same process: the receiver registers its engine under its
// component ID, the connector looks it up by the ID of its `receiver`
// setting. One engine, one state, however the spans arrive (OTLP/HTTP,
// OTLP/gRPC or a connector).
//
// The collector creates every component before it starts any, and starts
// them in an order the connector cannot rely on: a receiver is therefore
// known from its creation (Created), so that a connector naming a receiver
// that is not in any pipeline refuses to start, and takes spans only while
// it runs (Run to Stop); before and after, the connector's exports fail
// with a retryable error (ErrNotRunning).
package spanshub

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
)

// Engine is what a running dora receiver offers a connector.
type Engine interface {
	// IngestTraces classifies the spans of td with p and applies their
	// deployment events like an OTLP export's. It returns once the metrics
	// they change were handed to the metrics pipeline (nil; also when no
	// span is a deployment), or an error: a consumererror.Permanent one
	// (carrying a gRPC status, InvalidArgument or ResourceExhausted) for
	// spans that will never be accepted, a retryable one otherwise (not
	// the leader, storage unavailable, the pipeline refused).
	IngestTraces(ctx context.Context, p *cicdspans.Provider, td ptrace.Traces) error
}

// ErrNotRunning: the receiver exists but does not run (not started yet, or
// shut down): the connector's exports are retried by their sender.
var ErrNotRunning = errors.New("the dora receiver is not running")

var hub = struct {
	sync.Mutex
	created map[component.ID]int
	running map[component.ID]Engine
}{created: map[component.ID]int{}, running: map[component.ID]Engine{}}

// Created records that a receiver with id exists (one call per creation;
// Forget undoes it).
func Created(id component.ID) {
	hub.Lock()
	hub.created[id]++
	hub.Unlock()
}

// Forget undoes Created.
func Forget(id component.ID) {
	hub.Lock()
	defer hub.Unlock()
	if hub.created[id] <= 1 {
		delete(hub.created, id)
		return
	}
	hub.created[id]--
}

// Run makes e the engine of id: connectors reach it from now on.
func Run(id component.ID, e Engine) {
	hub.Lock()
	hub.running[id] = e
	hub.Unlock()
}

// Stop ends what Run started, if e is still the engine of id.
func Stop(id component.ID, e Engine) {
	hub.Lock()
	if hub.running[id] == e {
		delete(hub.running, id)
	}
	hub.Unlock()
}

// Known reports whether a receiver with id was created (and not
// forgotten).
func Known(id component.ID) bool {
	hub.Lock()
	defer hub.Unlock()
	return hub.created[id] > 0 || hub.running[id] != nil
}

// Lookup returns the engine of id, or ErrNotRunning.
func Lookup(id component.ID) (Engine, error) {
	hub.Lock()
	e := hub.running[id]
	hub.Unlock()
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotRunning, id)
	}
	return e, nil
}
