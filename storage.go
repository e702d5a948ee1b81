package dorareceiver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/persist"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Persistence (internal/persist): with the storage setting, every
// delivery's new events are logged before the engine applies them, and a
// snapshot of the engine replaces the log every snapshot_every events and
// at shutdown. At start the snapshot is loaded and the log replayed before
// any source starts.

// storageClient gets the receiver's client of the storage extension id.
func storageClient(ctx context.Context, host component.Host, id, owner component.ID) (storage.Client, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("storage: extension %q not found: configure it under extensions and list it in service::extensions", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("storage: extension %q is not a storage extension", id)
	}
	client, err := se.GetClient(ctx, component.KindReceiver, owner, "")
	if err != nil {
		return nil, fmt.Errorf("storage: extension %q: %w", id, err)
	}
	return client, nil
}

// restore opens the storage and loads the saved state into the engine:
// the snapshot (the counters keep their original start time), then the
// events logged after it, in order.
func (r *doraReceiver) restore(ctx context.Context, host component.Host) error {
	id := *r.cfg.Storage
	client, err := storageClient(ctx, host, id, r.settings.ID)
	if err != nil {
		return err
	}
	began := time.Now()
	store := persist.New(client)
	// Each logged event passes the check a delivery's events pass; one
	// that fails (logged by an older build, or written by hand) is set
	// aside instead of failing the start: a start that fails on it would
	// fail again on every restart.
	now := time.Now()
	snap, events, last, setAside, err := store.LoadChecked(ctx, func(ev event.Event) error { return r.checkEvent(&ev, now) })
	if err == nil && snap != nil {
		err = r.engine.Import(*snap)
	}
	if err == nil {
		for _, l := range events {
			if aerr := r.replay(l.Event); aerr != nil {
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
	r.store, r.storageClient = store, client
	for _, sa := range setAside {
		r.logger.Error("A logged event could not be replayed and was set aside; the receiver starts without it. It is kept in the storage for inspection.",
			zap.Stringer("storage", id), zap.Uint64("event", sa.Seq), zap.String("key", sa.Key), zap.Error(sa.Err))
	}
	r.tel.setAside(ctx, len(setAside))
	r.logger.Info("DORA state restored from storage",
		zap.Stringer("storage", id),
		zap.Bool("snapshot", snap != nil),
		zap.Int("events_replayed", len(events)),
		zap.Int("events_set_aside", len(setAside)),
		zap.Uint64("last_event", last),
		zap.Time("counters_start", r.engine.StartTime()),
		zap.Duration("took", time.Since(began)))
	if len(events) > 0 || len(setAside) > 0 {
		// Start with a short log, without the events set aside.
		r.mu.Lock()
		r.snapshotLocked(ctx)
		r.mu.Unlock()
	}
	return nil
}

// replay applies a logged event, turning a panic of the engine into an
// error: the event is set aside rather than crashing every start.
func (r *doraReceiver) replay(ev event.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the engine panicked applying it: %v", p)
		}
	}()
	_, err = r.engine.Apply(ev)
	return err
}

// logEvents makes the events of a delivery that the engine has not seen
// durable before they are applied; r.mu is held. Redeliveries are not
// logged again. It fails with ErrStorageUnavailable.
func (r *doraReceiver) logEvents(ctx context.Context, events []event.Event) error {
	if r.store == nil {
		return nil
	}
	fresh := make([]event.Event, 0, len(events))
	for _, ev := range events {
		if !r.engine.Seen(ev) {
			fresh = append(fresh, ev)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if _, err := r.store.Append(ctx, fresh); err != nil {
		return fmt.Errorf("%w: %v", webhook.ErrStorageUnavailable, err)
	}
	r.sinceSnapshot += len(fresh)
	return nil
}

// maybeSnapshot takes a snapshot when snapshot_every events were logged
// since the last one; r.mu is held.
func (r *doraReceiver) maybeSnapshot(ctx context.Context) {
	if r.store != nil && r.sinceSnapshot >= r.cfg.SnapshotEvery {
		// Not the delivery's to cancel: its sender may leave meanwhile.
		r.snapshotLocked(context.WithoutCancel(ctx))
	}
}

// snapshotLocked saves the engine's state in place of the logged events;
// r.mu is held, so the state is exactly that after the last logged event.
// A failure is logged: the log keeps the events, and the next delivery
// tries again.
func (r *doraReceiver) snapshotLocked(ctx context.Context) {
	began := time.Now()
	last, _ := r.store.Seq()
	size, err := r.store.Snapshot(ctx, r.engine.Export(), last)
	if err != nil {
		r.logger.Warn("Saving a snapshot of the DORA state failed; the event log keeps the events", zap.Error(err))
		return
	}
	r.logger.Debug("Snapshot of the DORA state saved",
		zap.Uint64("last_event", last), zap.Int("events", r.sinceSnapshot), zap.Int("bytes", size), zap.Duration("took", time.Since(began)))
	r.sinceSnapshot = 0
}

// closeStorage takes the last snapshot and closes the client.
func (r *doraReceiver) closeStorage(ctx context.Context) error {
	r.mu.Lock()
	stored := r.store != nil
	r.mu.Unlock()
	if !stored {
		return nil
	}
	r.mu.Lock()
	if r.sinceSnapshot > 0 {
		r.snapshotLocked(ctx)
	}
	client := r.storageClient
	r.store, r.storageClient = nil, nil
	r.mu.Unlock()
	return client.Close(ctx)
}

// applyAsync is the sink of sources that need no answer (Kubernetes): the
// change is emitted soon after, without waiting. When the storage fails it
// retries, with backoff, until it works or the receiver stops; then the
// source saves no more of its own state, so the event is derived again at
// the next start.
func (r *doraReceiver) applyAsync(ev event.Event) error {
	backoff := 100 * time.Millisecond
	for {
		_, _, err := r.applyAll(context.Background(), event.SourceKubernetes, []event.Event{ev})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, webhook.ErrNotLeader):
			// The leadership ended: the next leader derives the event
			// again from the cluster.
			return err
		case !errors.Is(err, webhook.ErrStorageUnavailable):
			// A source produced an event the engine cannot use: a bug in
			// the source, not bad user input, so it is logged loudly.
			r.logger.Error("Event rejected by the engine", zap.String("source", ev.Source), zap.String("id", ev.ID), zap.Error(err))
			return nil
		}
		r.logger.Warn("Storage unavailable; retrying the event", zap.String("source", ev.Source), zap.String("id", ev.ID),
			zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-r.closing:
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
