package persist

// Benchmarks of issue 7, item 5: saving and restoring the state of
// 1,000,000 pending changes through the storage extension (target: under
// 2 s each), with the contrib file_storage extension (bbolt on disk, the
// one otelcol-dora ships) rather than an in-memory fake.
// DORA_BENCH_PENDING sets the count; scripts/bench.sh runs them.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

func benchPending() int {
	if n, err := strconv.Atoi(os.Getenv("DORA_BENCH_PENDING")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

var (
	pendingOnce  sync.Once
	pendingState engine.State
)

// pendingExport is the state of pendingEngine(benchPending()), built once
// per process: building it takes seconds.
func pendingExport(tb testing.TB) engine.State {
	pendingOnce.Do(func() { pendingState = pendingEngine(tb, benchPending()).Export() })
	return pendingState
}

// pendingEngine holds n commits that no deployment has shipped: 1,000
// repositories with a commit chain each, one second apart.
func pendingEngine(tb testing.TB, n int) *engine.Engine {
	eng, err := engine.New(pendingConfig(n), t0)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		s, c := i%1000, i/1000
		parent := ""
		if c > 0 {
			parent = fmt.Sprintf("svc-%d-c%d", s, c-1)
		}
		rev := fmt.Sprintf("svc-%d-c%d", s, c)
		ev := event.Event{Kind: event.ChangeCommitted, Source: "github", ID: "push-" + rev, Time: t0.Add(time.Duration(i) * time.Second),
			Repository: fmt.Sprintf("acme/svc-%d", s), Revision: rev, ParentRevision: parent}
		if _, err := eng.Apply(ev); err != nil {
			tb.Fatal(err)
		}
	}
	return eng
}

func pendingConfig(n int) engine.Config {
	cfg := engine.DefaultConfig()
	cfg.MaxPendingChanges = n
	return cfg
}

// fileStorage starts a real file_storage extension in a temporary
// directory and returns a client of it, closed with the extension at the
// end of the benchmark.
func fileStorage(tb testing.TB) storage.Client {
	ctx := context.Background()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = tb.TempDir()
	ext, err := f.Create(ctx, extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ext.Start(ctx, componenttest.NewNopHost()); err != nil {
		tb.Fatal(err)
	}
	client, err := ext.(storage.Extension).GetClient(ctx, component.KindReceiver, component.MustNewID("dora"), "")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = client.Close(ctx)
		_ = ext.Shutdown(ctx)
	})
	return client
}

// logged appends one event per pending change to the store's log, as the
// receiver does before applying them, so that the snapshot covers them.
func logged(tb testing.TB, s *Store) uint64 {
	ctx := context.Background()
	if _, _, _, err := s.Load(ctx); err != nil {
		tb.Fatal(err)
	}
	seq, err := s.Append(ctx, []event.Event{{Kind: event.ChangeCommitted, Source: "github", ID: "x", Time: t0, Revision: "x"}})
	if err != nil {
		tb.Fatal(err)
	}
	return seq
}

// BenchmarkSaveFileStorage: Export and Store.Snapshot of the engine's
// state into file_storage.
func BenchmarkSaveFileStorage(b *testing.B) {
	n := benchPending()
	eng, err := engine.New(pendingConfig(n), t0)
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.Import(pendingExport(b)); err != nil {
		b.Fatal(err)
	}
	s := New(fileStorage(b))
	seq := logged(b, s)
	ctx := context.Background()
	var size int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var err error
		if size, err = s.Snapshot(ctx, eng.Export(), seq); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "snapshot-MiB")
}

// BenchmarkRestoreFileStorage: Store.Load from file_storage and Import
// into a new engine, checked to hold every pending change.
func BenchmarkRestoreFileStorage(b *testing.B) {
	n := benchPending()
	client := fileStorage(b)
	s := New(client)
	seq := logged(b, s)
	ctx := context.Background()
	if _, err := s.Snapshot(ctx, pendingExport(b), seq); err != nil {
		b.Fatal(err)
	}
	cfg := pendingConfig(n)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		snap, rest, _, err := New(client).Load(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if snap == nil || len(rest) != 0 {
			b.Fatalf("loaded a snapshot (%v) and %d events after it, want a snapshot and none", snap != nil, len(rest))
		}
		if len(snap.Commits) != n {
			b.Fatalf("loaded %d pending changes, want %d", len(snap.Commits), n)
		}
		restored, err := engine.New(cfg, t0)
		if err != nil {
			b.Fatal(err)
		}
		if err := restored.Import(*snap); err != nil {
			b.Fatal(err)
		}
	}
}
