package engine_test

// Benchmarks of issue 7, item 5 (scripts/bench.sh runs them and writes
// BENCHMARKS.md). Each event-kind benchmark applies b.N fresh events of that
// kind to a warm engine: 1,000 services x 3 environments, each with a commit
// chain and a deployment already counted. Events are built before the timer
// starts, so the figures are the engine's own cost.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

const (
	benchServices = 1000
	benchCommits  = 10 // commits per service chain in the warm state
)

var (
	benchT0   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	benchEnvs = []string{"development", "staging", "production"}
	benchPath = []string{"cmd/main.go", "internal/api/handler.go"}
)

func benchSvc(i int) event.Service {
	return event.Service{Namespace: "ns", Name: fmt.Sprintf("svc-%d", i%benchServices), Environment: benchEnvs[(i/benchServices)%len(benchEnvs)]}
}

func benchRev(svc, n int) string { return fmt.Sprintf("svc-%d-c%d", svc, n) }

// warm returns an engine with 3,000 series: per service a chain of
// benchCommits commits deployed to the three environments, and the time of
// its newest event.
func warm(b *testing.B) (*engine.Engine, time.Time) {
	b.Helper()
	eng, err := engine.New(engine.DefaultConfig(), benchT0)
	if err != nil {
		b.Fatal(err)
	}
	at := benchT0
	apply := func(ev event.Event) {
		if _, err := eng.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
	for s := range benchServices {
		repo := fmt.Sprintf("acme/svc-%d", s)
		for c := range benchCommits {
			parent := ""
			if c > 0 {
				parent = benchRev(s, c-1)
			}
			apply(event.Event{Kind: event.ChangeCommitted, Source: "github", ID: "push-" + benchRev(s, c), Time: at, Repository: repo,
				Revision: benchRev(s, c), ParentRevision: parent, Paths: benchPath})
		}
	}
	at = at.Add(time.Hour)
	for i := range benchServices * len(benchEnvs) {
		svc := benchSvc(i)
		rev := benchRev(i%benchServices, benchCommits-1)
		id := fmt.Sprintf("%s/%s/%s@warm", svc.Namespace, svc.Name, svc.Environment)
		apply(event.Event{Kind: event.DeploymentStarted, Source: "kubernetes", ID: id + "/started", Time: at, Service: svc, DeploymentID: id, Revision: rev, Team: "team-a"})
		apply(event.Event{Kind: event.DeploymentSucceeded, Source: "kubernetes", ID: id + "/succeeded", Time: at.Add(time.Minute), Service: svc, DeploymentID: id, Revision: rev, Team: "team-a"})
	}
	return eng, at.Add(time.Hour)
}

// kindBench applies setup(i) untimed for every i, then times event(i).
func kindBench(b *testing.B, setup func(i int, at time.Time) []event.Event, ev func(i int, at time.Time) event.Event) {
	eng, at := warm(b)
	evs := make([]event.Event, b.N)
	for i := range b.N {
		t := at.Add(time.Duration(i) * time.Second)
		if setup != nil {
			for _, s := range setup(i, t) {
				if _, err := eng.Apply(s); err != nil {
					b.Fatal(err)
				}
			}
		}
		evs[i] = ev(i, t.Add(500*time.Millisecond))
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range evs {
		if _, err := eng.Apply(evs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func deployID(i int, svc event.Service) string {
	return fmt.Sprintf("%s/%s/%s@%d", svc.Namespace, svc.Name, svc.Environment, i)
}

// newCommit is the commit event that extends service i's chain by one, for
// the i-th timed event.
func newCommit(i int, at time.Time) event.Event {
	s := i % benchServices
	n := benchCommits + i/benchServices
	return event.Event{Kind: event.ChangeCommitted, Source: "github", ID: "push-" + benchRev(s, n), Time: at,
		Repository: fmt.Sprintf("acme/svc-%d", s), Revision: benchRev(s, n), ParentRevision: benchRev(s, n-1), Paths: benchPath}
}

func BenchmarkApplyDeploymentStarted(b *testing.B) {
	kindBench(b, func(i int, at time.Time) []event.Event { return []event.Event{newCommit(i, at)} },
		func(i int, at time.Time) event.Event {
			svc := benchSvc(i)
			return event.Event{Kind: event.DeploymentStarted, Source: "kubernetes", ID: deployID(i, svc) + "/started", Time: at, Service: svc,
				DeploymentID: deployID(i, svc), Revision: newCommit(i, at).Revision, Team: "team-a"}
		})
}

// Succeeded ships one new commit to production (lead time, stages, rolling).
func BenchmarkApplyDeploymentSucceeded(b *testing.B) {
	prod := func(i int) event.Service {
		return event.Service{Namespace: "ns", Name: fmt.Sprintf("svc-%d", i%benchServices), Environment: "production"}
	}
	kindBench(b, func(i int, at time.Time) []event.Event {
		svc := prod(i)
		c := newCommit(i, at)
		return []event.Event{c, {Kind: event.DeploymentStarted, Source: "kubernetes", ID: deployID(i, svc) + "/started", Time: at, Service: svc,
			DeploymentID: deployID(i, svc), Revision: c.Revision, Team: "team-a"}}
	}, func(i int, at time.Time) event.Event {
		svc := prod(i)
		return event.Event{Kind: event.DeploymentSucceeded, Source: "kubernetes", ID: deployID(i, svc) + "/succeeded", Time: at, Service: svc,
			DeploymentID: deployID(i, svc), Revision: newCommit(i, at).Revision, Team: "team-a"}
	})
}

func BenchmarkApplyDeploymentFailed(b *testing.B) {
	kindBench(b, func(i int, at time.Time) []event.Event {
		svc := benchSvc(i)
		c := newCommit(i, at)
		return []event.Event{c, {Kind: event.DeploymentStarted, Source: "kubernetes", ID: deployID(i, svc) + "/started", Time: at, Service: svc,
			DeploymentID: deployID(i, svc), Revision: c.Revision}}
	}, func(i int, at time.Time) event.Event {
		svc := benchSvc(i)
		return event.Event{Kind: event.DeploymentFailed, Source: "kubernetes", ID: deployID(i, svc) + "/failed", Time: at, Service: svc,
			DeploymentID: deployID(i, svc), Revision: newCommit(i, at).Revision, Reason: "ProgressDeadlineExceeded"}
	})
}

func BenchmarkApplyDeploymentRolledBack(b *testing.B) {
	kindBench(b, func(i int, at time.Time) []event.Event {
		svc := benchSvc(i)
		c := newCommit(i, at)
		return []event.Event{c, {Kind: event.DeploymentStarted, Source: "kubernetes", ID: deployID(i, svc) + "/started", Time: at, Service: svc,
			DeploymentID: deployID(i, svc), Revision: c.Revision}}
	}, func(i int, at time.Time) event.Event {
		svc := benchSvc(i)
		return event.Event{Kind: event.DeploymentRolledBack, Source: "kubernetes", ID: deployID(i, svc) + "/rollback", Time: at, Service: svc,
			DeploymentID: deployID(i, svc) + "-rb", PreviousDeploymentID: deployID(i, svc), Revision: benchRev(i%benchServices, benchCommits-1)}
	})
}

func BenchmarkApplyChangeCommitted(b *testing.B) {
	kindBench(b, nil, newCommit)
}

func BenchmarkApplyChangeMerged(b *testing.B) {
	kindBench(b, func(i int, at time.Time) []event.Event { return []event.Event{newCommit(i, at)} },
		func(i int, at time.Time) event.Event {
			s := i % benchServices
			return event.Event{Kind: event.ChangeMerged, Source: "github", ID: fmt.Sprintf("pr-%d/merged", i), Time: at,
				Repository: fmt.Sprintf("acme/svc-%d", s), Revision: newCommit(i, at).Revision, ChangeID: fmt.Sprintf("github/acme/svc-%d/pull/%d", s, i)}
		})
}

func incident(kind event.Kind, i int, at time.Time) event.Event {
	svc := event.Service{Namespace: "ns", Name: fmt.Sprintf("svc-%d", i%benchServices), Environment: "production"}
	return event.Event{Kind: kind, Source: "alertmanager", ID: fmt.Sprintf("inc-%d/%d", i, kind), Time: at, Service: svc, IncidentID: fmt.Sprintf("inc-%d", i)}
}

func BenchmarkApplyIncidentOpened(b *testing.B) {
	kindBench(b, nil, func(i int, at time.Time) event.Event { return incident(event.IncidentOpened, i, at) })
}

func BenchmarkApplyIncidentResolved(b *testing.B) {
	kindBench(b, func(i int, at time.Time) []event.Event { return []event.Event{incident(event.IncidentOpened, i, at)} },
		func(i int, at time.Time) event.Event { return incident(event.IncidentResolved, i, at) })
}

// BenchmarkSnapshotAt3000Series: the state the receiver copies out on each
// export (3,000 series, rolling windows included).
func BenchmarkSnapshotAt3000Series(b *testing.B) {
	eng, at := warm(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = eng.SnapshotAt(at)
	}
}

// pendingChanges is the number of pending changes of the memory and
// save/restore benchmarks: DORA_BENCH_PENDING, default 1,000,000 (about
// 10-20 s to build here; 181 s before the dedup expiry was made linear).
var pendingChanges = func() int {
	if n, err := strconv.Atoi(os.Getenv("DORA_BENCH_PENDING")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}()

// pending returns an engine holding pendingChanges commits that no
// deployment has shipped yet: 1,000 repositories, 1,000-commit chains.
func pending(tb testing.TB) *engine.Engine {
	cfg := engine.DefaultConfig()
	cfg.MaxPendingChanges = pendingChanges
	eng, err := engine.New(cfg, benchT0)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range pendingChanges {
		ev := newCommit(i, benchT0.Add(time.Duration(i)*time.Second))
		if i < benchServices {
			ev.ParentRevision = ""
		}
		if _, err := eng.Apply(ev); err != nil {
			tb.Fatal(err)
		}
	}
	return eng
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkPendingChanges reports the live heap of 1,000,000 pending
// changes (target: under 256 MiB), including the dedup set of their
// delivery ids.
func BenchmarkPendingChanges(b *testing.B) {
	var mib float64
	for b.Loop() {
		before := heapInUse()
		eng := pending(b)
		after := heapInUse()
		runtime.KeepAlive(eng)
		mib = (float64(after) - float64(before)) / (1 << 20)
	}
	b.ReportMetric(mib, "MiB")
	b.ReportMetric(float64(pendingChanges)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

var (
	pendingOnce  sync.Once
	pendingEng   *engine.Engine
	pendingBytes []byte
)

func pendingState(b *testing.B) (*engine.Engine, []byte) {
	pendingOnce.Do(func() {
		pendingEng = pending(b)
		var err error
		pendingBytes, err = json.Marshal(pendingEng.Export())
		if err != nil {
			b.Fatal(err)
		}
	})
	return pendingEng, pendingBytes
}

// BenchmarkExportEncode: Export and JSON encoding of 1,000,000 pending
// changes, the save half of a snapshot (target: under 2 s).
func BenchmarkExportEncode(b *testing.B) {
	eng, data := pendingState(b)
	var buf bytes.Buffer
	buf.Grow(len(data))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		buf.Reset()
		if err := json.NewEncoder(&buf).Encode(eng.Export()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data))/(1<<20), "state-MiB")
}

// BenchmarkDecodeImport: JSON decoding and Import of the same state into
// a fresh engine, the restore half (target: under 2 s).
func BenchmarkDecodeImport(b *testing.B) {
	_, data := pendingState(b)
	cfg := engine.DefaultConfig()
	cfg.MaxPendingChanges = pendingChanges
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var st engine.State
		if err := json.Unmarshal(data, &st); err != nil {
			b.Fatal(err)
		}
		eng, err := engine.New(cfg, benchT0)
		if err != nil {
			b.Fatal(err)
		}
		if err := eng.Import(st); err != nil {
			b.Fatal(err)
		}
	}
}
