// Package ingest is the receiver's ingest core: it applies the events of
// every source to the engine (checked, folded past the series limits,
// logged to the storage first), emits the changed metrics to the pipeline
// and tells a delivery when its change was taken (apply -> log -> emit ->
// acknowledge). It owns the engine's lock. The webhook handler and the
// Kubernetes source call it; the receiver starts and stops it with the
// leadership.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/cardinality"
	"github.com/otelcol-dora/dorareceiver/internal/emitter"
	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/persist"
)

var (
	// ErrNotLeader: this replica does not apply events (a follower, or a
	// leader that lost its lease); the sender should retry (503) and
	// reaches the next leader.
	ErrNotLeader = errors.New("this replica is no longer the leader")
	// ErrStorageUnavailable: the events could not be made durable (the
	// storage extension failed); nothing was applied and the sender should
	// retry (503).
	ErrStorageUnavailable = errors.New("the receiver's storage is unavailable")
	// ErrPipelineRefused: the metrics pipeline did not take the data; the
	// sender should retry (503).
	ErrPipelineRefused = errors.New("the metrics pipeline refused the data")
	// ErrInvalidEvent marks events the engine cannot use (400).
	ErrInvalidEvent = errors.New("invalid event")
)

// Result says what the engine did with a delivery's events.
type Result struct {
	Accepted   int
	Duplicates int
}

// Limits are the series limits (the limiter, internal/cardinality) and the
// memory guard's budget (0: off).
type Limits struct {
	Series        cardinality.Limits
	MaxStateBytes int64
}

// Settings are what the core needs from the receiver.
type Settings struct {
	Logger  *zap.Logger
	Engine  *engine.Engine
	Emitter *emitter.Emitter
	// Next is the metrics pipeline (nil: none uses the receiver);
	// ObsReport counts what is sent to it.
	Next      consumer.Metrics
	ObsReport *receiverhelper.ObsReport
	// EmitInterval is the period of the full emission.
	EmitInterval time.Duration
	// SnapshotEvery: a snapshot replaces the log every so many events.
	SnapshotEvery int
	Limits        Limits
	// Mapped are the services of the services mapping, by namespace and
	// name: never folded.
	Mapped map[[2]string]bool
	// Resolve applies the services mapping to an event before its check.
	Resolve func(*event.Event)
	// Check is what every event passes before it is logged or applied,
	// from a delivery or from the saved log.
	Check func(ev *event.Event, now time.Time) error
	// Explain receives the deployment reports of one delivery; it must
	// not block.
	Explain func([]*engine.DeploymentReport)
	// Folded counts a value folded into the overflow value; SetAside the
	// logged events set aside at restore.
	Folded   func(ctx context.Context, source, attribute string)
	SetAside func(ctx context.Context, n int)
	// Host receives the memory guard's component status; nil: none.
	Host component.Host
	// Closing is closed when the receiver shuts down: retries stop.
	Closing <-chan struct{}
}

// Core is the ingest core. Its methods are safe for concurrent use.
type Core struct {
	set Settings

	// mu serializes the engine and the emitter, which are not safe for
	// concurrent use; sources call in from their own goroutines.
	mu      sync.Mutex
	engine  *engine.Engine
	emitter *emitter.Emitter
	// seq numbers the metric changes; flushed is the last one an emission
	// handed to the pipeline, so a webhook can wait for its own change.
	seq uint64
	// touched are the services of the events applied since the last
	// emission, which an emission triggered by a change sends alone;
	// fullNext makes the next emission send every service (the first one,
	// and the one after a refused emission). Both under mu.
	//
	// The services of the events are enough: every series the engine
	// changes while applying an event is one of the event's service
	// (engine.Apply keys every counter and histogram, failures from
	// rollbacks, hotfixes, reverts and incidents, recoveries, unattributed
	// incidents and the team attribute by ev.Service, and keeps the rolling
	// history in that service's state), and the emitter renders whole the
	// metrics that merge services (disabled service attributes, team
	// aggregates). Rolling values of other services only move with time:
	// the periodic emission, which sends everything, refreshes them.
	touched  map[event.Service]struct{}
	fullNext bool

	// series folds values past the limits (series.go); foldWarned
	// rate-limits its warnings; both under mu.
	series     *cardinality.Limiter
	foldWarned map[foldWarnKey]*foldWarning

	// store keeps the state in the storage extension (storage.go); nil
	// without it. sinceSnapshot counts the events logged since the last
	// snapshot; all under mu.
	store         *persist.Store
	storageClient storage.Client
	sinceSnapshot int

	// active is set (under mu) while the core applies events: from Start
	// to Deactivate.
	active bool

	flushMu  sync.Mutex
	flushed  uint64
	flushErr error
	flushCh  chan struct{}

	// changed wakes the emit loop for a delivery waiting for its emission;
	// later for a change nobody waits for (Apply, ApplyAsync, Import),
	// which is gathered longer. Their buffers of one coalesce bursts.
	changed chan struct{}
	later   chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// New returns a core that applies nothing until Start.
func New(set Settings) *Core {
	return &Core{
		set:      set,
		engine:   set.Engine,
		emitter:  set.Emitter,
		changed:  make(chan struct{}, 1),
		later:    make(chan struct{}, 1),
		flushCh:  make(chan struct{}),
		touched:  map[event.Service]struct{}{},
		fullNext: true,
	}
}

// Store is the storage of the state, nil before Restore or without one.
func (c *Core) Store() *persist.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store
}

// Start begins applying events and emitting: after Restore, when there
// is a storage.
func (c *Core) Start() {
	c.mu.Lock()
	c.series, c.foldWarned = c.newLimiter(c.store != nil), map[foldWarnKey]*foldWarning{}
	c.checkBudgetLocked()
	c.mu.Unlock()

	c.stop = make(chan struct{})
	c.done = make(chan struct{})
	go c.emitLoop()
	c.mu.Lock()
	c.active = true
	stored := c.store != nil
	c.mu.Unlock()
	if stored {
		// Send the restored totals without waiting for a change.
		c.notify()
	}
}

// Deactivate stops applying events: from here on they get ErrNotLeader.
func (c *Core) Deactivate() {
	c.mu.Lock()
	c.active = false
	c.mu.Unlock()
}

// Stop ends the emission (with a last one when final), answers the
// deliveries still waiting for an emission with ErrNotLeader, saves the
// state and closes the storage. Call Deactivate, and stop the sources,
// first.
func (c *Core) Stop(ctx context.Context, final bool) error {
	c.Deactivate()
	if c.stop != nil {
		close(c.stop)
		<-c.done
		c.stop = nil
		if final {
			// Send the final state so push exporters get the last changes.
			c.emit(ctx, true)
		}
	}
	c.failWaitingDeliveries(ErrNotLeader)
	return c.closeStorage(ctx)
}

// failWaitingDeliveries answers the deliveries waiting for an emission
// that will not come from this replica: they get 503 and are sent again
// to the next leader, which recognizes them if they were logged.
func (c *Core) failWaitingDeliveries(err error) {
	c.mu.Lock()
	target := c.seq
	c.mu.Unlock()
	c.settleFlush(target, err)
}

// settleFlush records that the changes up to target were handed to the
// pipeline, with err when they were not taken, and wakes the deliveries
// waiting for them (waitFlushed).
func (c *Core) settleFlush(target uint64, err error) {
	c.flushMu.Lock()
	if target > c.flushed {
		c.flushed = target
	}
	c.flushErr = err
	close(c.flushCh)
	c.flushCh = make(chan struct{})
	c.flushMu.Unlock()
}

// Ingest applies a delivery's events and, when they changed a metric,
// waits until an emission carrying the change has been handed to the
// pipeline, so the sender hears 503 when the pipeline refuses (and
// retries; the redelivery is then recognized by its id).
func (c *Core) Ingest(ctx context.Context, events []event.Event) (Result, error) {
	res, seq, err := c.applyAll(ctx, events, nil)
	if err != nil || seq == 0 {
		return res, err
	}
	return res, c.waitFlushed(ctx, seq)
}

// Import applies a batch of the history import (internal/history): like a
// delivery, whole, logged before it is applied, but values (the import's
// progress, persist.HistoryKey) are saved in the same storage write as the
// batch's events, so that a crash keeps both or neither, and it does not
// wait for an emission: the import does not answer anyone, and the next
// emission carries its effect on the rolling values. Without a storage
// the values are dropped: there is nothing to resume from. Imported
// production deployments are not explained (no trace or log record per
// deployment): a month of them would flood the pipeline.
func (c *Core) Import(ctx context.Context, events []event.Event, values map[string][]byte) (Result, error) {
	res, _, err := c.applyAll(ctx, events, values)
	return res, err
}

// Apply applies a delivery's events as Ingest does, and answers once they
// are applied (and, with storage, logged) without waiting for the emission
// that carries them: for the gateway's agents' records, which are the
// agents' cluster events and are taken as the local Kubernetes source's
// are (ApplyAsync). Durable once logged, they reach the pipeline with the
// next emission, which a refused one does not skip (fullNext).
func (c *Core) Apply(ctx context.Context, events []event.Event) (Result, error) {
	res, _, err := c.applyAll(ctx, events, nil)
	return res, err
}

// applyAll applies a delivery's events whole: all are checked first, so a
// bad one leaves nothing half applied; with storage, those the engine has
// not seen are logged, durably, with values, before any is applied, and
// when that fails none is (ErrStorageUnavailable). It returns the change
// number to wait for, or 0 when no metric changed.
func (c *Core) applyAll(ctx context.Context, events []event.Event, values map[string][]byte) (Result, uint64, error) {
	now := time.Now()
	for i := range events {
		c.set.Resolve(&events[i])
		if err := c.set.Check(&events[i], now); err != nil {
			return Result{}, 0, fmt.Errorf("%w: event %d: %w", ErrInvalidEvent, i, err)
		}
	}
	var res Result
	var reports []*engine.DeploymentReport
	changed := false
	c.mu.Lock()
	if !c.active {
		// A follower, or a leader that just lost the lease.
		c.mu.Unlock()
		return res, 0, ErrNotLeader
	}
	admitted := c.foldLocked(ctx, events)
	if err := c.logEvents(ctx, events, values); err != nil {
		c.mu.Unlock()
		return res, 0, err
	}
	for _, ev := range events {
		out, err := c.engine.Apply(ev)
		if err != nil {
			// Validated above; the engine only refuses invalid events.
			c.mu.Unlock()
			return res, 0, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
		}
		if out.Duplicate {
			res.Duplicates++
			continue
		}
		res.Accepted++
		svc := ev.Service
		if out.Moved != (event.Service{}) {
			// An incident naming no cluster, counted in a cluster's.
			svc = out.Moved
		}
		c.touched[svc] = struct{}{}
		changed = changed || out.Changed
		if out.Deployment != nil && !ev.Imported {
			reports = append(reports, out.Deployment)
		}
	}
	// A redelivery's effect was applied before, but the emission that
	// carried it may have been refused: then it waits for a fresh one too,
	// so a 2xx always means the pipeline has the data.
	if res.Duplicates > 0 && c.lastFlushFailed() {
		changed = true
	}
	var seq uint64
	if changed {
		c.seq++
		seq = c.seq
	}
	if admitted {
		c.checkBudgetLocked()
	}
	c.maybeSnapshot(ctx)
	c.mu.Unlock()
	if changed {
		// A delivery that waits (Ingest) wakes the loop at once itself
		// (waitFlushed).
		c.notifyLater()
	}
	if len(reports) > 0 && c.set.Explain != nil {
		c.set.Explain(reports)
	}
	return res, seq, nil
}

func (c *Core) lastFlushFailed() bool {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	return c.flushErr != nil
}

func (c *Core) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *Core) notifyLater() {
	select {
	case c.later <- struct{}{}:
	default:
	}
}

// waitFlushed blocks until an emission that includes change seq has been
// consumed by the pipeline, and returns ErrPipelineRefused if it failed.
func (c *Core) waitFlushed(ctx context.Context, seq uint64) error {
	for {
		c.flushMu.Lock()
		if c.flushed >= seq {
			err := c.flushErr
			c.flushMu.Unlock()
			if err != nil {
				return fmt.Errorf("%w: %v", ErrPipelineRefused, err)
			}
			return nil
		}
		ch := c.flushCh
		c.flushMu.Unlock()
		c.notify()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ApplyAsync is the sink of sources that need no answer (Kubernetes): the
// change is emitted soon after, without waiting. When the storage fails it
// retries, with backoff, until it works or the receiver stops; then the
// source saves no more of its own state, so the event is derived again at
// the next start.
func (c *Core) ApplyAsync(ev event.Event) error {
	backoff := 100 * time.Millisecond
	for {
		_, _, err := c.applyAll(context.Background(), []event.Event{ev}, nil)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotLeader):
			// The leadership ended: the next leader derives the event
			// again from the cluster.
			return err
		case !errors.Is(err, ErrStorageUnavailable):
			// A source produced an event the engine cannot use: a bug in
			// the source, not bad user input, so it is logged loudly.
			c.set.Logger.Error("Event rejected by the engine", zap.String("source", ev.Source), zap.String("id", ev.ID), zap.Error(err))
			return nil
		}
		c.set.Logger.Warn("Storage unavailable; retrying the event", zap.String("source", ev.Source), zap.String("id", ev.ID),
			zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-c.set.Closing:
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// changeGather is how long a change waits for others before it is emitted:
// far below what a webhook sender notices, long enough to gather the
// deliveries that a burst's senders have in flight.
const changeGather = 100 * time.Microsecond

// asyncGather is how long a change nobody waits for (a rollout, an agent's
// record, an imported batch) waits for others before it is emitted: far
// below a scrape interval.
const asyncGather = 50 * time.Millisecond

// emitLoop sends the series of the services that changed when a change
// comes, and the whole state every EmitInterval, so that every series is
// refreshed (an exporter's expiration never drops one, rolling values
// follow the clock).
func (c *Core) emitLoop() {
	defer close(c.done)
	ticker := time.NewTicker(c.set.EmitInterval)
	defer ticker.Stop()
	for {
		full := false
		select {
		case <-c.stop:
			return
		case <-c.changed:
			// Deliveries that arrive together are sent in one emission:
			// without this pause an emission starts at the first change of
			// a burst and carries only it, and every other delivery of the
			// burst waits for the next one (figures in BENCHMARKS.md).
			time.Sleep(changeGather)
		case <-c.later:
			// Nobody waits for this change: it is gathered with the others
			// of the next asyncGather, unless a waiting delivery comes
			// first (an emission per forwarded record halved the
			// gateway's ingest; BENCHMARKS.md).
			select {
			case <-c.stop:
				return
			case <-c.changed:
				time.Sleep(changeGather)
			case <-time.After(asyncGather):
			}
		case <-ticker.C:
			full = true
		}
		c.emit(context.Background(), full)
	}
}

// emit sends the cumulative state: of every service when full (or when
// fullNext asks for it), else of the services touched since the last
// emission. When the pipeline refuses it, nothing is lost: the next
// emission is full and carries the same totals.
func (c *Core) emit(ctx context.Context, full bool) {
	c.mu.Lock()
	target := c.seq
	now := time.Now()
	var md pmetric.Metrics
	if full || c.fullNext {
		md = c.emitter.Emit(c.engine.SnapshotAt(now), now)
	} else if c.emitter.NeedsEveryService() {
		md = c.emitter.EmitServices(c.engine.SnapshotAt(now), now, c.touched)
	} else {
		// Only the touched services' state: the cost of a change's
		// emission does not grow with the services held.
		md = c.emitter.EmitServices(c.engine.SnapshotServicesAt(now, c.touched), now, c.touched)
	}
	clear(c.touched)
	c.fullNext = false
	if full {
		// Pending changes and incidents grow without new series.
		c.checkBudgetLocked()
	}
	c.mu.Unlock()

	var err error
	if n := md.DataPointCount(); n > 0 && c.set.Next != nil {
		ctx = c.set.ObsReport.StartMetricsOp(ctx)
		err = c.set.Next.ConsumeMetrics(ctx, md)
		c.set.ObsReport.EndMetricsOp(ctx, "dora", n, err)
		if err != nil {
			c.set.Logger.Warn("Pipeline refused DORA metrics; they will be sent again with the next emission", zap.Error(err))
			c.mu.Lock()
			c.fullNext = true
			c.mu.Unlock()
		}
	}

	c.settleFlush(target, err)
}

// reportStatus reports the component's status, when there is a host.
func (c *Core) reportStatus(ev *componentstatus.Event) {
	if c.set.Host != nil {
		componentstatus.ReportStatus(c.set.Host, ev)
	}
}
