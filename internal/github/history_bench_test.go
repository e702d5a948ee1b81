package github

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// peakSink counts the events handed on and samples the heap at each
// batch, keeping nothing.
type peakSink struct {
	events   int
	batches  int
	peakHeap uint64
}

func (s *peakSink) Apply(_ context.Context, b history.Batch) error {
	s.events += len(b.Events)
	s.batches++
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.peakHeap = max(s.peakHeap, ms.HeapAlloc)
	return nil
}

// BenchmarkHistoryImport imports 10,000 deployments and 200,000 commits
// (10 repositories, a month, 1,000 deployments of 20 commits each, their
// pull requests and statuses) from the local GitHub, without rate limits:
// the ceiling. It reports the requests per deployment and the peak heap
// (sampled at each batch; it includes the local GitHub's own data,
// reported apart as server-MiB).
//
// It takes about 40 s here, so it runs only with DORA_BENCH_HISTORY set
// (scripts/bench-github-history.sh), not in bench.sh's "-bench ." run:
//
//	DORA_BENCH_HISTORY=1 go test -run '^$' -bench BenchmarkHistoryImport -benchtime 1x ./internal/github/
func BenchmarkHistoryImport(b *testing.B) {
	if os.Getenv("DORA_BENCH_HISTORY") == "" {
		b.Skip("set DORA_BENCH_HISTORY=1 (scripts/bench-github-history.sh)")
	}
	const repos, deploymentsPerRepo, commitsPer = 10, 1000, 20
	b.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
	f := newFakeGitHub(b)
	names := make([]string, repos)
	every := 30 * 24 * time.Hour / deploymentsPerRepo
	for i := range names {
		names[i] = fmt.Sprintf("acme/service-%02d", i)
		generate(f, monthSpec{repo: names[i], start: monthStart.Add(time.Duration(i) * time.Minute), deployments: deploymentsPerRepo, every: every,
			commitsPer: commitsPer, bigDeployment: -1, failed: deploymentsPerRepo / 2, incidentAfter: deploymentsPerRepo / 2, firstPullAfter: 100})
	}
	srv := f.start()
	cfg := historyConfig(srv.URL, names...)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	serverHeap := ms.HeapAlloc
	var sink *peakSink
	for b.Loop() {
		f.requests.Store(0)
		sink = &peakSink{}
		if err := NewHistorySource(srv.Client(), cfg).Import(context.Background(), monthWindow(), "", sink); err != nil {
			b.Fatal(err)
		}
	}
	deployments := repos * deploymentsPerRepo
	b.ReportMetric(float64(f.requests.Load())/float64(deployments), "requests/deployment")
	b.ReportMetric(float64(sink.peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(serverHeap)/(1<<20), "server-MiB")
	b.ReportMetric(float64(sink.events), "events")
	b.Logf("%d deployments, %d commits, %d events in %d batches, %d requests", deployments, deployments*commitsPer, sink.events, sink.batches, f.requests.Load())
}
