package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func ratio(a, b run) float64 {
	if b.perSecond() == 0 {
		return 0
	}
	return a.perSecond() / b.perSecond()
}

// roundRatios are a's rate over b's, round by round.
func roundRatios(a, b run) []float64 {
	var out []float64
	for i := range min(len(a.roundRates), len(b.roundRates)) {
		if b.roundRates[i] > 0 {
			out = append(out, a.roundRates[i]/b.roundRates[i])
		}
	}
	slices.Sort(out)
	return out
}

// median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// compare writes the ratio line of a against b: the median of the
// per-round ratios (a burst of other load on the machine spoils a round,
// not the figure), their range, the ratio of the totals, and the verdict.
func compare(p func(string, ...any), label string, a, b run, target float64) {
	rs := roundRatios(a, b)
	if len(rs) == 0 {
		p("- %s: n/a", label)
		return
	}
	m := median(rs)
	note := ""
	if met := len(rs) - sort.SearchFloat64s(rs, target); met > 0 && met < len(rs) {
		note = fmt.Sprintf(" (%d of %d rounds reached the target)", met, len(rs))
	}
	p("- %s: **%.2fx** (median of %d rounds; rounds %.2f–%.2fx; totals %.2fx; target ≥ %.1fx): %s%s",
		label, m, len(rs), rs[0], rs[len(rs)-1], ratio(a, b), target, verdict(m >= target), note)
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func errCell(r run) string {
	if r.errors == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (first: %s)", r.errors, strings.ReplaceAll(r.firstError, "|", "/"))
}

// report writes the markdown section scripts/bench.sh appends to
// BENCHMARKS.md.
func report(w io.Writer, o options, r results) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("## Load: otelcol-dora end to end over loopback (cmd/doraload)")
	p("")
	p("Written by `doraload` on %s. Command:", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	p("")
	p("```")
	p("%s", strings.Join(append([]string{"doraload"}, os.Args[1:]...), " "))
	p("```")
	p("")
	p("Machine: %d cores (GOMAXPROCS %d), shared by the load generator and the server under test; every server is its own process on 127.0.0.1, measured one after the other in the same run. Figures on a busy machine are noisy; the ratios, measured side by side, are what to compare.", runtime.NumCPU(), runtime.GOMAXPROCS(0))
	p("")
	p("### Webhook ingest (issue 7, item 2)")
	p("")
	p("Payload: GitHub `push` from internal/github/testdata/push.json (%d commits, %d bytes), each request with its own `X-GitHub-Delivery` and new commit SHAs, signed with HMAC-SHA256 (`X-Hub-Signature-256`), all generated before the timed part. The otlp receiver gets an OTLP/HTTP protobuf logs export of one log record whose body is the same push bytes (%d bytes).", r.pushCommits, r.pushSize, r.logSize)
	p("Saturation: closed loop, %d keep-alive connections, %d requests per target after %d unmeasured, in %d interleaved rounds (the targets take turns, so a burst of other load on the machine hits all alike). Fixed rate: open loop, %.0f requests/s for %s (%d requests) per target, %d senders, in the same interleaved rounds, latency from each request's scheduled time.", o.conns, o.requests, o.warmup, o.rounds, o.rate, o.rateFor, int(o.rate*o.rateFor.Seconds()), o.senders)
	p("")
	p("| target | what it does | req/s at saturation | p50 / p99 at saturation | p50 at %.0f/s | p99 at %.0f/s | achieved rate | errors |", o.rate, o.rate)
	p("| --- | --- | --- | --- | --- | --- | --- | --- |")
	row := func(name, what string, sat, fixed run) {
		p50, p99, rate, errs := ms(fixed.quantile(0.5)), ms(fixed.quantile(0.99)), fmt.Sprintf("%.0f/s", fixed.perSecond()), errCell(sat)+" / "+errCell(fixed)
		if fixed.requests == 0 {
			p50, p99, rate, errs = "", "", "", errCell(sat)
		}
		p("| %s | %s | %.0f | %s / %s | %s | %s | %s | %s |", name, what, sat.perSecond(), ms(sat.quantile(0.5)), ms(sat.quantile(0.99)), p50, p99, rate, errs)
	}
	row("dora", "otelcol-dora: dora receiver (GitHub source) → metrics pipeline → prometheus exporter", r.doraSat, r.doraRate)
	row("floor", "`doraload floor`: net/http, read body, check HMAC", r.floorSat, r.floorRate)
	row("otlp", "otelcol-dora: otlp receiver (HTTP, logs) → nop exporter", r.otlpSat, r.otlpRate)
	row("dora, nop exporter", "as dora, the metrics pipeline ending in the nop exporter (for the exporter's share)", r.doraNopSat, run{})
	p("")
	p99 := r.doraRate.quantile(0.99)
	compare(p, "dora / floor", r.doraSat, r.floorSat, targetFloorRatio)
	compare(p, "dora / otlp receiver", r.doraSat, r.otlpSat, targetOTLPRatio)
	p("- dora with the nop exporter / floor: %.2fx, / otlp receiver: %.2fx (medians of the rounds)", median(roundRatios(r.doraNopSat, r.floorSat)), median(roundRatios(r.doraNopSat, r.otlpSat)))
	p("- dora p99 at %.0f/s: **%s** (target < %s): %s. In the same run the floor's p99 was %s and the otlp receiver's %s: when the floor's p99 is as high, the p99 measures stalls of the shared machine (a 100 ms stall delays every request due during it), not the server.",
		o.rate, ms(p99), targetP99, verdict(p99 < targetP99 && r.doraRate.errors == 0), ms(r.floorRate.quantile(0.99)), ms(r.otlpRate.quantile(0.99)))
	for _, x := range []struct {
		name string
		r    run
	}{{"dora", r.doraRate}, {"floor", r.floorRate}, {"otlp", r.otlpRate}} {
		slow, windows := x.r.slowWindows(targetP99, 100*time.Millisecond)
		p("  - %s at %.0f/s: %d requests over %s (%.1f%%), due within %d distinct 100 ms windows of the schedule", x.name, o.rate, slow, targetP99, 100*float64(slow)/float64(max(1, x.r.requests)), windows)
	}
	p("")
	if len(r.vcs) > 0 {
		p("### VCS sources' pushes (issue 17)")
		p("")
		p("Each source's push fixture, each request with its own delivery id and new commit SHAs, to dora's path for the source with the source's own credentials (Bitbucket: `X-Hub-Signature` HMAC-SHA256; Azure DevOps: basic authentication), and the same bytes to the floor (read, check `X-Hub-Signature-256`). Closed loop, %d connections, %d requests per target after %d unmeasured, in %d interleaved rounds.", o.conns, o.vcsRequests, o.warmup, o.rounds)
		p("")
		p("| source | push | dora req/s | floor req/s | errors (dora / floor) |")
		p("| --- | --- | --- | --- | --- |")
		for i, v := range r.vcs {
			p("| %s | %s | %.0f | %.0f | %s / %s |", v.name, vcsDescribe(v, vcsSources[i]), v.dora.perSecond(), v.floorRun.perSecond(), errCell(v.dora), errCell(v.floorRun))
		}
		p("")
		for _, v := range r.vcs {
			compare(p, "dora "+v.name+" / floor", v.dora, v.floorRun, targetVCSRatio)
		}
		p("")
	}
	p("### CI/CD spans over OTLP/HTTP (issue 7, item 3)")
	p("")
	p("Payload: internal/cicdspans/testdata/github-deploy-success.json (the spans of a successful GitHub Actions deployment workflow run, as the contrib GitHub receiver produces them) as OTLP/HTTP protobuf, %d bytes, each export with its own trace id, so each is a new deployment for dora. Closed loop, %d connections, %d requests per target after %d unmeasured, in %d interleaved rounds.", r.spanSize, o.conns, o.spans, o.warmup, o.rounds)
	p("")
	p("| target | what it does | req/s at saturation | p50 / p99 | errors |")
	p("| --- | --- | --- | --- | --- |")
	p("| dora | dora receiver's OTLP traces path (`webhooks::otlp`) → metrics pipeline → prometheus exporter | %.0f | %s / %s | %s |", r.doraSpans.perSecond(), ms(r.doraSpans.quantile(0.5)), ms(r.doraSpans.quantile(0.99)), errCell(r.doraSpans))
	p("| otlp | otlp receiver (HTTP, traces) → nop exporter | %.0f | %s / %s | %s |", r.otlpSpans.perSecond(), ms(r.otlpSpans.quantile(0.5)), ms(r.otlpSpans.quantile(0.99)), errCell(r.otlpSpans))
	p("| dora, nop exporter | as dora, the metrics pipeline ending in the nop exporter | %.0f | %s / %s | %s |", r.doraNopSpans.perSecond(), ms(r.doraNopSpans.quantile(0.5)), ms(r.doraNopSpans.quantile(0.99)), errCell(r.doraNopSpans))
	p("")
	compare(p, "dora / otlp receiver", r.doraSpans, r.otlpSpans, targetSpanRatio)
	p("- dora with the nop exporter / otlp receiver: %.2fx (median of the rounds)", median(roundRatios(r.doraNopSpans, r.otlpSpans)))
	p("")
	p("Jenkins build traces (issue 17, item 4): internal/cicdspans/testdata/jenkins-deploy-success.json (a build trace of the Jenkins OpenTelemetry plugin: root, phases, stages, the checkout span; its Deploy stage a deployment) as OTLP/HTTP protobuf, %d bytes, each export its own trace id; same loop.", r.jenkinsSpanSize)
	p("")
	p("| target | what it does | req/s at saturation | p50 / p99 | errors |")
	p("| --- | --- | --- | --- | --- |")
	p("| dora | dora receiver's OTLP traces path → metrics pipeline → prometheus exporter | %.0f | %s / %s | %s |", r.doraJenkinsSpans.perSecond(), ms(r.doraJenkinsSpans.quantile(0.5)), ms(r.doraJenkinsSpans.quantile(0.99)), errCell(r.doraJenkinsSpans))
	p("| otlp | otlp receiver (HTTP, traces) → nop exporter | %.0f | %s / %s | %s |", r.otlpJenkinsSpans.perSecond(), ms(r.otlpJenkinsSpans.quantile(0.5)), ms(r.otlpJenkinsSpans.quantile(0.99)), errCell(r.otlpJenkinsSpans))
	p("")
	compare(p, "dora / otlp receiver, Jenkins traces", r.doraJenkinsSpans, r.otlpJenkinsSpans, targetSpanRatio)
	p("")
	p("### Freshness (issue 7, item 6)")
	p("")
	p("Default settings (emit_interval 15s, prometheus exporter). The Prometheus endpoint is scraped back to back until the new value shows; the figure is the time from the event to the first scrape that has it.")
	p("")
	p("| from | samples | p50 | max | target < %s |", targetFreshness)
	p("| --- | --- | --- | --- | --- |")
	fresh := func(from string, d []time.Duration, err error) {
		if err != nil || len(d) == 0 {
			p("| %s | 0 | | | not measured: %s |", from, strings.ReplaceAll(firstLine(err), "|", "/"))
			return
		}
		p("| %s | %d | %s | %s | %s |", from, len(d), ms(quantile(d, 0.5)), ms(slices.Max(d)), verdict(slices.Max(d) < targetFreshness))
	}
	fresh("GitHub `deployment_status` success: the webhook's 2xx answer", r.webhookFresh, nil)
	fresh("Deployment rollout completed (status subresource) on a real kube-apiserver", r.rolloutFresh, r.rolloutErr)
	if len(r.profiles) > 0 {
		p("")
		p("CPU profiles of otelcol-dora under load: %s (`go tool pprof -top bin/otelcol-dora FILE`).", strings.Join(r.profiles, ", "))
	}
}

func firstLine(err error) string {
	if err == nil {
		return "no samples"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
