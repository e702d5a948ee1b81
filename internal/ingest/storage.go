package ingest

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/persist"
)

// Persistence (internal/persist): with a storage, every delivery's new
// events are logged before the engine applies them, and a snapshot of the
// engine replaces the log every SnapshotEvery events and at Stop. Restore
// loads the snapshot and replays the log before any source starts.

// Restore loads the state saved with client (of the storage extension id)
// into the engine: the snapshot (the counters keep their original start
// time), then the events logged after it, in order. From here on the core
// logs to it, and Stop closes it; on error the client is closed.
func (c *Core) Restore(ctx context.Context, client storage.Client, id component.ID) error {
	began := time.Now()
	store := persist.New(client)
	// Each logged event passes the check a delivery's events pass; one
	// that fails (logged by an older build, or written by hand) is set
	// aside instead of failing the start: a start that fails on it would
	// fail again on every restart.
	now := time.Now()
	snap, events, last, setAside, err := store.LoadChecked(ctx, func(ev event.Event) error { return c.set.Check(&ev, now) })
	if err == nil && snap != nil {
		err = c.engine.Import(*snap)
	}
	if err == nil {
		for _, l := range events {
			if aerr := c.replay(l.Event); aerr != nil {
				sa, serr := store.SetAsideLogged(ctx, l.Seq, aerr)
				if serr != nil {
					err = fmt.Errorf("replaying logged event %d (%s %s): %w; setting it aside failed: %w", l.Seq, l.Event.Source, l.Event.ID, aerr, serr)
					break
				}
				setAside = append(setAside, sa)
			}
		}
	}
	if err != nil {
		_ = client.Close(ctx)
		return fmt.Errorf("storage: loading the state saved in %q: %w", id, err)
	}
	c.mu.Lock()
	c.store, c.storageClient = store, client
	c.mu.Unlock()
	logger := c.set.Logger
	for _, sa := range setAside {
		logger.Error("A logged event could not be replayed and was set aside; the receiver starts without it. It is kept in the storage for inspection.",
			zap.Stringer("storage", id), zap.Uint64("event", sa.Seq), zap.String("key", sa.Key), zap.Error(sa.Err))
	}
	if c.set.SetAside != nil {
		c.set.SetAside(ctx, len(setAside))
	}
	logger.Info("DORA state restored from storage",
		zap.Stringer("storage", id),
		zap.Bool("snapshot", snap != nil),
		zap.Int("events_replayed", len(events)),
		zap.Int("events_set_aside", len(setAside)),
		zap.Uint64("last_event", last),
		zap.Time("counters_start", c.engine.StartTime()),
		zap.Duration("took", time.Since(began)))
	if len(events) > 0 || len(setAside) > 0 {
		// Start with a short log, without the events set aside.
		c.mu.Lock()
		c.snapshotLocked(ctx)
		c.mu.Unlock()
	}
	return nil
}

// replay applies a logged event, turning a panic of the engine into an
// error: the event is set aside rather than crashing every start.
func (c *Core) replay(ev event.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the engine panicked applying it: %v", p)
		}
	}()
	_, err = c.engine.Apply(ev)
	return err
}

// logEvents makes the events of a delivery that the engine has not seen
// durable before they are applied, with values in the same write; c.mu is
// held. Redeliveries are not logged again. It fails with
// ErrStorageUnavailable.
func (c *Core) logEvents(ctx context.Context, events []event.Event, values map[string][]byte) error {
	if c.store == nil {
		return nil
	}
	fresh := make([]event.Event, 0, len(events))
	for _, ev := range events {
		if !c.engine.Seen(ev) {
			fresh = append(fresh, ev)
		}
	}
	if len(fresh) == 0 && len(values) == 0 {
		return nil
	}
	if _, err := c.store.AppendWith(ctx, fresh, values); err != nil {
		return fmt.Errorf("%w: %v", ErrStorageUnavailable, err)
	}
	c.sinceSnapshot += len(fresh)
	return nil
}

// maybeSnapshot takes a snapshot when SnapshotEvery events were logged
// since the last one; c.mu is held.
func (c *Core) maybeSnapshot(ctx context.Context) {
	if c.store != nil && c.sinceSnapshot >= c.set.SnapshotEvery {
		// Not the delivery's to cancel: its sender may leave meanwhile.
		c.snapshotLocked(context.WithoutCancel(ctx))
	}
}

// snapshotLocked saves the engine's state in place of the logged events;
// c.mu is held, so the state is exactly that after the last logged event.
// A failure is logged: the log keeps the events, and the next delivery
// tries again.
func (c *Core) snapshotLocked(ctx context.Context) {
	began := time.Now()
	last, _ := c.store.Seq()
	size, err := c.store.Snapshot(ctx, c.engine.Export(), last)
	if err != nil {
		c.set.Logger.Warn("Saving a snapshot of the DORA state failed; the event log keeps the events", zap.Error(err))
		return
	}
	c.set.Logger.Debug("Snapshot of the DORA state saved",
		zap.Uint64("last_event", last), zap.Int("events", c.sinceSnapshot), zap.Int("bytes", size), zap.Duration("took", time.Since(began)))
	c.sinceSnapshot = 0
}

// closeStorage takes the last snapshot and closes the client.
func (c *Core) closeStorage(ctx context.Context) error {
	c.mu.Lock()
	if c.store == nil {
		c.mu.Unlock()
		return nil
	}
	if c.sinceSnapshot > 0 {
		c.snapshotLocked(ctx)
	}
	client := c.storageClient
	c.store, c.storageClient = nil, nil
	c.mu.Unlock()
	return client.Close(ctx)
}
