// Command doraload is the load part of `make bench` (issue 7, items 2, 3
// and 6). It starts, as separate processes on 127.0.0.1, otelcol-dora with
// the dora receiver as users run it, the same binary with only the
// collector's own otlp receiver feeding no-op pipelines, and a bare net/http
// floor (`doraload floor`); drives each with the same pre-generated request
// bytes; measures the freshness of the Prometheus endpoint after a webhook
// and after a rollout on a real kube-apiserver; stops everything by PID and
// prints a markdown section for BENCHMARKS.md on stdout (progress on
// stderr).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// The targets of issue 7.
const (
	targetFloorRatio = 0.8
	targetOTLPRatio  = 1.0
	targetP99        = 5 * time.Millisecond
	targetSpanRatio  = 0.8
	targetFreshness  = time.Second
	// targetVCSRatio is issue 17's: each VCS source's push at least 0.7x the floor.
	targetVCSRatio = 0.7
)

type options struct {
	mode         string
	forwarded    int
	forwardBatch int
	bin          string
	secret       string
	conns        int
	requests     int
	rounds       int
	warmup       int
	rate         float64
	rateFor      time.Duration
	senders      int
	spans        int
	vcsRequests  int
	samples      int
	kubernetes   bool
	profileDir   string
	profileFor   time.Duration
	keep         bool
	timeout      time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		os.Exit(runFloor(os.Args[2:]))
	}
	var o options
	flag.StringVar(&o.mode, "mode", modeAll, "all (webhooks, spans, freshness) or forwarded (the gateway's ingest of agents' records against the otlp receiver, issue 16)")
	flag.IntVar(&o.forwarded, "forwarded", 20000, "forwarded-event exports per target at saturation (-mode forwarded)")
	flag.IntVar(&o.forwardBatch, "forward-batch", 1, "records per forwarded-event export (an agent sends one per event)")
	flag.StringVar(&o.bin, "bin", "", "otelcol-dora binary (default $OTELCOL_DORA_BIN, else bin/otelcol-dora)")
	flag.StringVar(&o.secret, "secret", "doraload-secret", "GitHub webhook secret")
	flag.IntVar(&o.conns, "conns", 16, "concurrent keep-alive connections at saturation")
	flag.IntVar(&o.requests, "requests", 20000, "requests per target at saturation")
	flag.IntVar(&o.rounds, "rounds", 8, "saturation rounds: the targets take turns, each round on the next slice of the requests")
	flag.IntVar(&o.warmup, "warmup", 1000, "unmeasured requests per target before measuring")
	flag.Float64Var(&o.rate, "rate", 1000, "fixed open-loop rate, requests/s")
	flag.DurationVar(&o.rateFor, "rate-for", 10*time.Second, "duration of the fixed-rate run (its request count is rate x this)")
	flag.IntVar(&o.senders, "senders", 64, "sender pool of the fixed-rate run")
	flag.IntVar(&o.spans, "spans", 10000, "CI/CD span requests per target at saturation")
	flag.IntVar(&o.vcsRequests, "vcs-requests", 5000, "push requests per VCS source (Bitbucket, Bitbucket Data Center, Azure DevOps) and target at saturation; 0 skips them")
	flag.IntVar(&o.samples, "samples", 20, "freshness samples (webhook and rollout each)")
	flag.BoolVar(&o.kubernetes, "kubernetes", true, "measure rollout freshness on a local kube-apiserver (needs `make tools`)")
	flag.StringVar(&o.profileDir, "profile", "", "write CPU profiles of otelcol-dora under load (pprof extension) to this directory")
	flag.DurationVar(&o.profileFor, "profile-for", 10*time.Second, "CPU profile window, from the start of each saturation block")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configs and process logs)")
	flag.DurationVar(&o.timeout, "timeout", 6*time.Minute, "bound of the whole run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	var err error
	switch o.mode {
	case modeAll:
		err = runAll(ctx, o, os.Stdout)
	case modeForwarded:
		err = runForwarded(ctx, o, os.Stdout)
	default:
		err = fmt.Errorf("-mode: %q is neither %s nor %s", o.mode, modeAll, modeForwarded)
	}
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "doraload:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "doraload: "+format+"\n", args...)
}

// results is everything the report shows.
type results struct {
	pushSize, logSize, spanSize   int
	pushCommits                   int
	floorSat, otlpSat, doraSat    run
	doraNopSat                    run
	floorRate, otlpRate, doraRate run
	doraSpans, otlpSpans          run
	doraNopSpans                  run
	// Jenkins build traces (issue 17, item 4) on the same paths.
	jenkinsSpanSize                    int
	doraJenkinsSpans, otlpJenkinsSpans run
	webhookFresh, rolloutFresh         []time.Duration
	rolloutErr                         error
	profiles                           []string
	vcs                                []vcsRun
}

func runAll(ctx context.Context, o options, w io.Writer) error {
	if o.rounds < 1 || o.conns < 1 || o.senders < 1 || o.rate <= 0 || o.requests < o.rounds || o.spans < o.rounds || o.warmup < 1 {
		return fmt.Errorf("-rounds, -conns, -senders, -rate and -warmup must be positive, and -requests and -spans at least -rounds")
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

	// Every payload is built before anything is timed. Pushes are numbered
	// across phases so dora never sees a delivery or a commit twice; the
	// floor and the otlp receiver get the very same bytes.
	openCount := int(o.rate * o.rateFor.Seconds())
	logf("generating %d GitHub pushes and %d span exports", o.warmup+o.requests+openCount, o.warmup+o.spans)
	warmPush, err := pushRequests(root, o.secret, 0, o.warmup)
	if err != nil {
		return err
	}
	satPush, err := pushRequests(root, o.secret, o.warmup, o.requests)
	if err != nil {
		return err
	}
	openPush, err := pushRequests(root, o.secret, o.warmup+o.requests, openCount)
	if err != nil {
		return err
	}
	warmLogs, err := otlpLogRequests(warmPush)
	if err != nil {
		return err
	}
	satLogs, err := otlpLogRequests(satPush)
	if err != nil {
		return err
	}
	openLogs, err := otlpLogRequests(openPush)
	if err != nil {
		return err
	}
	warmSpans, err := spanRequests(root, 0, o.warmup)
	if err != nil {
		return err
	}
	satSpans, err := spanRequests(root, o.warmup, o.spans)
	if err != nil {
		return err
	}
	// Jenkins traces, numbered after the GitHub ones: new trace ids.
	satJenkins, err := jenkinsSpanRequests(root, o.warmup+o.spans, o.spans)
	if err != nil {
		return err
	}
	var res results
	res.pushSize, res.logSize, res.spanSize = len(satPush[0].body), len(satLogs[0].body), len(satSpans[0].body)
	res.jenkinsSpanSize = len(satJenkins[0].body)
	if res.pushCommits, err = commitCount(satPush[0].body); err != nil {
		return err
	}

	floor, err := startFloor(ctx, dir, o.secret)
	if err != nil {
		return err
	}
	defer floor.stop()
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
	doraNop, err := startDora(ctx, dir, "dora-nop", bin, o.secret, "nop", "", false)
	if err != nil {
		return err
	}
	defer doraNop.stop()
	logf("floor pid %d, otlp pid %d, dora pid %d, dora-nop pid %d", floor.cmd.Process.Pid, otlp.cmd.Process.Pid, dora.cmd.Process.Pid, doraNop.cmd.Process.Pid)

	floorT := target{"floor", floor.ingest + "/webhooks/github"}
	otlpLogsT := target{"otlp logs", otlp.ingest + "/v1/logs"}
	doraT := target{"dora", dora.ingest + "/webhooks/github"}
	doraNopT := target{"dora-nop", doraNop.ingest + "/webhooks/github"}
	otlpSpansT := target{"otlp traces", otlp.ingest + "/v1/traces"}
	doraSpansT := target{"dora spans", dora.ingest + "/v1/traces"}
	doraNopSpansT := target{"dora-nop spans", doraNop.ingest + "/v1/traces"}

	show := func(what string, r run) run {
		logf("%s: %d requests in %s: %.0f req/s, p50 %s, p99 %s, %d errors %s", what, r.requests, r.elapsed.Round(time.Millisecond),
			r.perSecond(), r.quantile(0.5), r.quantile(0.99), r.errors, r.firstError)
		return r
	}
	// saturate runs the jobs interleaved in rounds, profiling dora (the
	// first job) when asked.
	saturate := func(profileName string, jobs ...loadJob) []run {
		logf("saturation, %d rounds: %d connections each", o.rounds, o.conns)
		stopProfile := profile(ctx, dora, o.profileDir, profileName, o.profileFor, &res)
		runs := interleaved(ctx, o.rounds, o.conns, jobs, nil)
		stopProfile()
		for i, r := range runs {
			show("  "+jobs[i].t.name, r)
		}
		return runs
	}

	// Webhook ingest: warm up, then saturation (interleaved rounds) and the
	// fixed rate, on the same bytes.
	logf("warm-up")
	interleaved(ctx, 1, o.conns, []loadJob{{floorT, warmPush}, {otlpLogsT, warmLogs}, {doraT, warmPush}, {doraNopT, warmPush}}, nil)
	sat := saturate("dora-webhooks.pprof", loadJob{doraT, satPush}, loadJob{floorT, satPush}, loadJob{otlpLogsT, satLogs}, loadJob{doraNopT, satPush})
	res.doraSat, res.floorSat, res.otlpSat, res.doraNopSat = sat[0], sat[1], sat[2], sat[3]
	logf("fixed rate %.0f/s, %d rounds", o.rate, o.rounds)
	fixed := interleavedOpen(ctx, o.rounds, o.rate, o.senders, []loadJob{{doraT, openPush}, {floorT, openPush}, {otlpLogsT, openLogs}})
	res.doraRate, res.floorRate, res.otlpRate = show("  dora", fixed[0]), show("  floor", fixed[1]), show("  otlp logs", fixed[2])

	// CI/CD spans: the same exports into dora's OTLP path and into the
	// otlp receiver.
	logf("warm-up spans")
	interleaved(ctx, 1, o.conns, []loadJob{{otlpSpansT, warmSpans}, {doraSpansT, warmSpans}, {doraNopSpansT, warmSpans}}, nil)
	sat = saturate("dora-spans.pprof", loadJob{doraSpansT, satSpans}, loadJob{otlpSpansT, satSpans}, loadJob{doraNopSpansT, satSpans})
	res.doraSpans, res.otlpSpans, res.doraNopSpans = sat[0], sat[1], sat[2]
	// Jenkins traces: the same comparison on the plugin's spans.
	sat = saturate("dora-jenkins.pprof", loadJob{doraSpansT, satJenkins}, loadJob{otlpSpansT, satJenkins})
	res.doraJenkinsSpans, res.otlpJenkinsSpans = sat[0], sat[1]
	doraNop.stop()

	// Each VCS source's push, through dora's path for it and through the
	// floor, on the same bytes (issue 17).
	for _, src := range vcsSources {
		if o.vcsRequests < o.rounds {
			break
		}
		warmD, warmF, err := vcsPushRequests(root, o.secret, src, 0, o.warmup)
		if err != nil {
			return err
		}
		satD, satF, err := vcsPushRequests(root, o.secret, src, o.warmup, o.vcsRequests)
		if err != nil {
			return err
		}
		doraVCS, floorVCS := target{"dora " + src.name, dora.ingest + src.path}, target{"floor", floor.ingest + src.path}
		logf("%s push: warm-up", src.name)
		interleaved(ctx, 1, o.conns, []loadJob{{doraVCS, warmD}, {floorVCS, warmF}}, nil)
		sat := saturate("dora-"+src.name+".pprof", loadJob{doraVCS, satD}, loadJob{floorVCS, satF})
		res.vcs = append(res.vcs, vcsRun{name: src.name, size: len(satD[0].body), commits: vcsCommits(satD[0].body), dora: sat[0], floorRun: sat[1]})
	}

	logf("webhook freshness, %d samples", o.samples)
	if res.webhookFresh, err = webhookFreshness(ctx, dora, root, o.secret, o.samples); err != nil {
		return fmt.Errorf("webhook freshness: %w", err)
	}
	otlp.stop()
	floor.stop()
	dora.stop()

	if o.kubernetes {
		logf("rollout freshness on a local kube-apiserver, %d samples", o.samples)
		res.rolloutFresh, res.rolloutErr = rolloutFreshness(ctx, dir, bin, o.secret, o.samples, logf)
		if res.rolloutErr != nil {
			logf("rollout freshness: %v", res.rolloutErr)
		}
	} else {
		res.rolloutErr = fmt.Errorf("not measured (-kubernetes=false)")
	}
	if ctx.Err() != nil {
		return fmt.Errorf("run cut short: %w", ctx.Err())
	}
	report(w, o, res)
	return nil
}

// profile starts a CPU profile of dora through its pprof extension, when
// asked for, and returns a function that waits for it and saves it.
func profile(ctx context.Context, dora *collector, dir, name string, window time.Duration, res *results) func() {
	if dir == "" || dora.pprof == "" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A fixed window from the start of the block; dora is idle while
		// the other targets take their turns, so its samples are its own
		// work under load.
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", dora.pprof, max(1, int(window.Seconds())))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			logf("profile %s: %v", name, err)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			logf("profile %s: HTTP %d %v", name, resp.StatusCode, err)
			return
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(dir, 0o755); err == nil {
			if err := os.WriteFile(path, b, 0o644); err == nil {
				res.profiles = append(res.profiles, path)
				logf("wrote %s", path)
			}
		}
	}()
	return func() {
		<-done
		cancel()
	}
}
