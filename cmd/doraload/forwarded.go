package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/forward"
)

// targetForwardRatio is issue 16's: the gateway's ingest of forwarded
// events at least 0.8x the otlp receiver's on the same bytes.
const targetForwardRatio = 0.8

// Modes of doraload (-mode).
const (
	modeAll       = "all"
	modeForwarded = "forwarded"
)

// forwardClusters is how many clusters the forwarded events come from.
const forwardClusters = 3

// forwardRequests makes n OTLP/HTTP protobuf logs exports as an agent's
// otlp_http exporter sends them (internal/forward, schema version 1), each
// of perRequest records: completed Kubernetes rollouts, numbered from
// first, so every record is an event the gateway has not seen (its id is
// the rollout's), spread over forwardClusters clusters and 100
// Deployments per cluster.
func forwardRequests(first, n, perRequest int, now time.Time) ([]request, error) {
	out := make([]request, n)
	h := http.Header{}
	h.Set("Content-Type", "application/x-protobuf")
	for i := range out {
		evs := make([]event.Event, perRequest)
		for j := range evs {
			k := (first+i)*perRequest + j
			name := fmt.Sprintf("app-%d", k%100)
			id := fmt.Sprintf("bench/%s/%08x-0000-4000-8000-000000000000@%d", name, k, k)
			evs[j] = event.Event{
				Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes,
				ID: id + "/" + event.DeploymentSucceeded.String(), Time: now.Add(-time.Duration(n-i) * time.Millisecond),
				Service:      event.Service{Namespace: "bench", Name: name, Environment: "production", Cluster: fmt.Sprintf("cluster-%d", k%forwardClusters)},
				DeploymentID: id, Revision: newSHA(k, "0000000000000000000000000000000000000000"),
			}
		}
		ld := plog.NewLogs()
		forward.Append(ld, evs, now)
		body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
		if err != nil {
			return nil, err
		}
		out[i] = request{body: body, header: h}
	}
	return out, nil
}

// forwardedResults is what the forwarded mode reports.
type forwardedResults struct {
	size, records     int
	dora, otlp        run
	counted, expected float64
	countErr          error
}

// runForwarded measures the gateway input: dora's OTLP logs path
// (webhooks::otlp::logs_path, the dora receiver applying each record and
// emitting) against the collector's own otlp receiver on the same bytes,
// then checks the gateway counted every forwarded deployment exactly once
// after a share of the requests was sent again (as a retried export).
func runForwarded(ctx context.Context, o options, w io.Writer) error {
	if o.forwarded < o.rounds || o.forwardBatch < 1 {
		return fmt.Errorf("-forwarded must be at least -rounds and -forward-batch positive")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin, err := binaryPath(o.bin, root)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "doraload-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work directory (configs, logs): %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	now := time.Now()
	logf("generating %d forwarded-event exports of %d records", o.warmup+o.forwarded, o.forwardBatch)
	warm, err := forwardRequests(0, o.warmup, o.forwardBatch, now)
	if err != nil {
		return err
	}
	sat, err := forwardRequests(o.warmup, o.forwarded, o.forwardBatch, now)
	if err != nil {
		return err
	}
	otlp, err := startOTLP(ctx, dir, bin)
	if err != nil {
		return err
	}
	defer otlp.stop()
	dora, err := startDora(ctx, dir, "dora", bin, o.secret, "prometheus", "", o.profileDir != "")
	if err != nil {
		return err
	}
	defer dora.stop()
	logf("otlp pid %d, dora (gateway) pid %d", otlp.cmd.Process.Pid, dora.cmd.Process.Pid)
	doraT := target{"dora logs", dora.ingest + "/v1/logs"}
	otlpT := target{"otlp logs", otlp.ingest + "/v1/logs"}

	logf("warm-up")
	interleaved(ctx, 1, o.conns, []loadJob{{otlpT, warm}, {doraT, warm}}, nil)
	logf("saturation, %d rounds: %d connections each", o.rounds, o.conns)
	var res results
	stopProfile := profile(ctx, dora, o.profileDir, "dora-forwarded.pprof", o.profileFor, &res)
	runs := interleaved(ctx, o.rounds, o.conns, []loadJob{{doraT, sat}, {otlpT, sat}}, nil)
	stopProfile()
	fr := forwardedResults{size: len(sat[0].body), records: o.forwardBatch, dora: runs[0], otlp: runs[1]}
	for i, r := range runs {
		logf("  %s: %d requests in %s: %.0f req/s, p50 %s, p99 %s, %d errors %s", []string{"dora", "otlp"}[i], r.requests, r.elapsed.Round(time.Millisecond),
			r.perSecond(), r.quantile(0.5), r.quantile(0.99), r.errors, r.firstError)
	}
	// A retried export delivers records again: a tenth of them, once more.
	again := sat[:max(1, len(sat)/10)]
	logf("sending %d exports again", len(again))
	interleaved(ctx, 1, o.conns, []loadJob{{doraT, again}}, nil)
	fr.expected = float64((o.warmup + o.forwarded) * o.forwardBatch)
	if runs[0].errors == 0 {
		// Every record is counted once; wait for it, then a little longer
		// to see that nothing more comes.
		client := newClient(2)
		if _, err := waitAtLeast(ctx, client, dora.metrics, 60*time.Second, fr.expected, "platform_deployments_total", `status="success"`); err != nil {
			fr.countErr = err
		}
		time.Sleep(2 * time.Second)
		fr.counted, err = seriesSum(ctx, client, dora.metrics, "platform_deployments_total", `status="success"`)
		if err != nil && fr.countErr == nil {
			fr.countErr = err
		}
	} else {
		fr.countErr = fmt.Errorf("not checked: %d requests failed", runs[0].errors)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("run cut short: %w", ctx.Err())
	}
	reportForwarded(w, o, fr, res.profiles)
	if fr.countErr != nil || fr.counted != fr.expected {
		return fmt.Errorf("gateway counted %g forwarded deployments, want %g: %v", fr.counted, fr.expected, fr.countErr)
	}
	return nil
}

func reportForwarded(w io.Writer, o options, r forwardedResults, profiles []string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("## Gateway ingest of forwarded events (issue 16, cmd/doraload -mode forwarded)")
	p("")
	p("Written by `doraload` on %s. Command:", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	p("")
	p("```")
	p("%s", strings.Join(append([]string{"doraload"}, os.Args[1:]...), " "))
	p("```")
	p("")
	p("Machine: %d cores (GOMAXPROCS %d), shared by the load generator and both servers (each its own process on 127.0.0.1).", runtime.NumCPU(), runtime.GOMAXPROCS(0))
	p("Payload: OTLP/HTTP protobuf logs exports as an agent's `otlp_http` exporter sends them (internal/forward, schema version %d), %d record(s) per export (%d bytes), each a completed Kubernetes rollout never seen before, from %d clusters of 100 Deployments each (so each record changes the series of one of 300 services; the gateway answers once the change is applied and, with a storage, logged; its emission follows within 50 ms). The same bytes go to dora's logs path (`webhooks::otlp::logs_path`: decode, apply each record, emit to the prometheus exporter) and to the collector's otlp receiver (HTTP, logs → nop exporter). Closed loop, %d keep-alive connections, %d exports per target after %d unmeasured, in %d interleaved rounds.",
		forward.SchemaVersion, r.records, r.size, forwardClusters, o.conns, o.forwarded, o.warmup, o.rounds)
	p("")
	p("| target | what it does | exports/s | records/s | p50 / p99 | errors |")
	p("| --- | --- | --- | --- | --- | --- |")
	p("| dora (gateway) | dora receiver's OTLP logs path → engine → metrics pipeline → prometheus exporter | %.0f | %.0f | %s / %s | %s |", r.dora.perSecond(), r.dora.perSecond()*float64(r.records), ms(r.dora.quantile(0.5)), ms(r.dora.quantile(0.99)), errCell(r.dora))
	p("| otlp | otlp receiver (HTTP, logs) → nop exporter | %.0f | %.0f | %s / %s | %s |", r.otlp.perSecond(), r.otlp.perSecond()*float64(r.records), ms(r.otlp.quantile(0.5)), ms(r.otlp.quantile(0.99)), errCell(r.otlp))
	p("")
	compare(p, "dora gateway / otlp receiver", r.dora, r.otlp, targetForwardRatio)
	counted := fmt.Sprintf("%.0f", r.counted)
	if r.countErr != nil {
		counted += " (" + strings.ReplaceAll(firstLine(r.countErr), "|", "/") + ")"
	}
	p("- Counted once: every forwarded rollout (%.0f, warm-up included), then a tenth of the exports sent again as a retried export would: `platform_deployments_total{status=\"success\"}` summed is %s: %s.", r.expected, counted, verdict(r.countErr == nil && r.counted == r.expected))
	if len(profiles) > 0 {
		p("- CPU profile of the gateway under load: %s.", strings.Join(profiles, ", "))
	}
}
