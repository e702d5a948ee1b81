package dorareceiver

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// countingConsumer drops what it is sent and counts the emissions: a
// sink that kept every emission would grow through the benchmark.
type countingConsumer struct{ emissions atomic.Int64 }

func (c *countingConsumer) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (c *countingConsumer) ConsumeMetrics(context.Context, pmetric.Metrics) error {
	c.emissions.Add(1)
	return nil
}

// BenchmarkIngestAtLimit measures the rate of deliveries through the
// receiver's real ingest path (the generic webhook source over loopback
// HTTP: signature, parsing, bounds, folding, engine, the emission of the
// touched services) in an empty receiver and in one already holding the
// default limits::max_services services with their series (issue 13:
// at the limit, at least 0.8x the empty rate; BENCHMARKS.md "Series and
// state cost"). Run:
//
//	go test -run '^$' -bench BenchmarkIngestAtLimit -benchtime 1000x -count 5 .
//
// Each delivery is one signed deployment; they alternate between a
// service the full receiver already holds and a new one, which the full
// receiver folds into _overflow (the empty one admits both). The periodic
// full emission is pushed out of the measured window (emit_interval 1h):
// its cost at the limit is the scrape measured apart.
func BenchmarkIngestAtLimit(b *testing.B) {
	for _, full := range []bool{false, true} {
		name := "empty"
		if full {
			name = "at-limit"
		}
		b.Run(name, func(b *testing.B) { benchIngest(b, full) })
	}
}

func benchIngest(b *testing.B, full bool) {
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(b)
	wc.ServerConfig.MaxRequestBodySize = 16 << 20
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	cfg.EmitInterval = time.Hour
	require.NoError(b, cfg.Validate())
	limit := cfg.Limits.MaxServices
	next := &countingConsumer{}
	rcv, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(b, err)
	require.NoError(b, rcv.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(b, rcv.Shutdown(context.Background())) }()
	url := "http://" + wc.ServerConfig.NetAddr.Endpoint + "/events"
	start := time.Now().Add(-time.Hour)

	if full {
		// The limit's services, then one past it so that _overflow exists.
		services := make([]string, limit+1)
		for i := range services {
			services[i] = fmt.Sprintf("svc-%05d", i)
		}
		r := post(b, url, "application/json", servicesJSON("load", start, services...), true)
		require.Equal(b, http.StatusOK, r.status, r.body)
		require.EqualValues(b, limit+1, r.body["accepted"])
		// Let the load's emission finish before the clock starts.
		for deadline := time.Now().Add(time.Minute); next.emissions.Load() == 0; {
			require.True(b, time.Now().Before(deadline), "no emission after the load")
			time.Sleep(10 * time.Millisecond)
		}
	}

	// The deliveries, built before the clock starts.
	bodies := make([][]byte, b.N)
	for i := range bodies {
		svc := fmt.Sprintf("svc-%05d", i/2%limit) // held at the limit
		if i%2 == 1 {
			svc = fmt.Sprintf("new-%07d", i) // folds at the limit
		}
		bodies[i] = servicesJSON(fmt.Sprintf("d%d", i), start.Add(time.Duration(i)*time.Millisecond), svc)
	}
	before := next.emissions.Load()

	b.ResetTimer()
	t0 := time.Now()
	for i := range b.N {
		r := post(b, url, "application/json", bodies[i], true)
		if r.status != http.StatusOK || r.body["accepted"] != float64(1) {
			b.Fatalf("delivery %d: %d %v", i, r.status, r.body)
		}
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	require.Greater(b, next.emissions.Load(), before, "the deliveries were emitted")
}
