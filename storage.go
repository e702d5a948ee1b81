package dorareceiver

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// Persistence (internal/persist, driven by internal/ingest): with the
// storage setting, every delivery's new events are logged before the
// engine applies them, and a snapshot of the engine replaces the log every
// snapshot_every events and at shutdown. At start the snapshot is loaded
// and the log replayed before any source starts.

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

// restore opens the storage and has the core load the saved state
// (ingest.Core.Restore).
func (r *doraReceiver) restore(ctx context.Context, host component.Host) error {
	id := *r.cfg.Storage
	client, err := storageClient(ctx, host, id, r.settings.ID)
	if err != nil {
		return err
	}
	return r.core.Restore(ctx, client, id)
}
