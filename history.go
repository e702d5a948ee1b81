package dorareceiver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/apiclient"
	"github.com/otelcol-dora/dorareceiver/internal/argocd"
	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/github"
	"github.com/otelcol-dora/dorareceiver/internal/gitlab"
	hist "github.com/otelcol-dora/dorareceiver/internal/history"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
	"github.com/otelcol-dora/dorareceiver/internal/pagerduty"
	"github.com/otelcol-dora/dorareceiver/internal/persist"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// The history import (docs/history.md): on the leader, after the saved
// state is restored, the sources whose systems hold history are read for
// the last history::window, on a first start (history::on_start), on
// demand (history::trigger) and, for an interrupted run, at the next
// start. It is one of the leadership's sources: it starts after the
// ingest core and stops with the leadership.

// historySources are the configured sources that import their history:
// the watched clusters' (built with their live sources), then each
// webhook source whose history block is enabled.
func (r *doraReceiver) historySources() []hist.Source {
	out := slices.Clone(r.clusterHistory)
	if ac := r.argoCDHistory(); ac != nil {
		out = append(out, ac)
	}
	wc := r.cfg.Webhooks.Get()
	if wc == nil {
		return out
	}
	if gc := wc.GitHub.Get(); gc != nil && gc.History.Enabled {
		out = append(out, github.NewHistorySource(r.historyClient(event.SourceGitHub, 0), *gc))
	}
	if gc := wc.GitLab.Get(); gc != nil && gc.History.Enabled {
		out = append(out, gitlab.NewHistory(*gc, r.historyClient(event.SourceGitLab, 0)))
	}
	if pc := wc.PagerDuty.Get(); pc != nil && pc.History.Enabled && pc.History.HasToken() {
		const prefix = "webhooks::pagerduty::history::"
		token, err := pc.History.ReadToken(prefix)
		if err != nil {
			r.logger.Error("History import of this source not started: fix the setting named", zap.String("source", event.SourcePagerDuty),
				zap.String("setting", prefix+"token_file"), zap.Error(err))
		} else {
			out = append(out, pagerduty.NewImporter(*pc, r.historyClient(event.SourcePagerDuty, pc.History.RequestBudget), token))
		}
	}
	if gc := wc.Generic.Get(); gc != nil && gc.History.Enabled && gc.History.Endpoint != "" {
		const prefix = "webhooks::generic::history::"
		token, err := gc.History.ReadToken(prefix)
		if err != nil {
			r.logger.Error("History import of this source not started: fix the setting named", zap.String("source", event.SourceGeneric),
				zap.String("setting", prefix+"token_file"), zap.Error(err))
		} else {
			out = append(out, generic.NewImporter(*gc, r.historyClient(event.SourceGeneric, gc.History.RequestBudget), token))
		}
	}
	return out
}

// argoCDHistory is the Argo CD import: the Applications' status.history
// read through the kubernetes section's connection (the single-cluster
// form's; with kubernetes::clusters it is not built, and a warning says
// so).
func (r *doraReceiver) argoCDHistory() hist.Source {
	wc := r.cfg.Webhooks.Get()
	if wc == nil || r.agent() {
		return nil
	}
	ac := wc.ArgoCD.Get()
	if ac == nil || !ac.History.Enabled {
		return nil
	}
	kc := r.cfg.Kubernetes.Get()
	logger := r.logger.With(zap.String("source", event.SourceArgoCD))
	switch {
	case kc == nil:
		logger.Error("Argo CD history import not started: it reads the Applications through the kubernetes section's connection; add a kubernetes section or set webhooks::argocd::history::enabled: false")
		return nil
	case len(kc.Clusters) > 0:
		logger.Warn("Argo CD history import not started: with kubernetes::clusters it cannot tell which cluster runs Argo CD; it needs the single-cluster kubernetes section")
		return nil
	}
	client, err := crdwatch.NewClient(kc)
	if err != nil {
		logger.Error("Argo CD history import not started", zap.Error(err))
		return nil
	}
	return argocd.NewHistorySource(client, *ac, logger)
}

// historyClient is the HTTP client of a source's importer: the polite
// client (rate limits, Retry-After, 5xx retries, the request budget,
// conditional requests; internal/apiclient), each request counted in the
// receiver's telemetry.
func (r *doraReceiver) historyClient(source string, budget int) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = time.Minute
	return apiclient.New(apiclient.Options{
		Name:          source,
		RequestBudget: budget,
		Base:          countingTransport{next: base, count: func(code int) { r.tel.historyRequest(context.Background(), source, code) }},
	})
}

type countingTransport struct {
	next  http.RoundTripper
	count func(code int)
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	code := 0
	if resp != nil {
		code = resp.StatusCode
	}
	t.count(code)
	return resp, err
}

// historyImport runs the import of one leadership.
type historyImport struct {
	r       *doraReceiver
	runner  *hist.Runner
	sources []hist.Source
	// fresh: the storage held nothing at the restore (or there is none).
	fresh bool

	// running are the sources whose start was reported (report).
	mu      sync.Mutex
	running map[string]bool
}

// newHistoryImport returns the import of this leadership, nil when no
// source imports. Call it after the restore.
func (r *doraReceiver) newHistoryImport() *historyImport {
	sources := r.historySources()
	if len(sources) == 0 {
		return nil
	}
	h := &historyImport{r: r, sources: sources, fresh: true, running: map[string]bool{}}
	set := hist.Settings{
		Logger:    r.logger.With(zap.String("component", "history_import")),
		Sources:   sources,
		Window:    r.cfg.History.Window,
		BatchSize: r.cfg.History.BatchSize,
		Apply: func(ctx context.Context, evs []event.Event, values map[string][]byte) (int, error) {
			res, err := r.core.Import(ctx, evs, values)
			return res.Accepted, err
		},
		Report: h.report,
	}
	if store := r.core.Store(); store != nil {
		h.fresh = store.Fresh()
		set.Load, set.Key = store.Get, persist.HistoryKey
	}
	h.runner = hist.NewRunner(set)
	return h
}

// Start begins the import when there is one to run: on a first start
// (history::on_start), or to resume an interrupted run.
func (h *historyImport) Start(ctx context.Context) error {
	switch {
	case h.fresh && h.r.cfg.History.OnStart:
		_, err := h.runner.Start(ctx, false)
		return err
	default:
		unfinished, err := h.runner.Unfinished(ctx)
		if err != nil {
			h.r.logger.Error("History import: its saved progress cannot be read; it does not resume", zap.Error(err))
			return nil
		}
		if unfinished {
			_, err = h.runner.Start(ctx, true)
		}
		return err
	}
}

// Shutdown stops a running import; its progress is saved with each
// batch, so the next start resumes it.
func (h *historyImport) Shutdown(ctx context.Context) error { return h.runner.Stop(ctx) }

// report follows the import in the telemetry and the component status.
// The collector's status model has no "busy" state after StatusOK (a
// component cannot go back to StatusStarting), so the import reports
// StatusOK events whose attributes say what it does (history_import:
// running, finished, stopped; with the source and its progress), and a
// source that failed reports StatusRecoverableError with its error: the
// receiver goes on with live events, the import resumes at the next run.
func (h *historyImport) report(source string, p hist.Progress, applied int, state string, err error) {
	h.r.tel.historyProgressed(context.Background(), source, p.Done, p.Total, applied, state == hist.StateFinished)
	if h.r.host == nil {
		return
	}
	// Status events at a source's start and end, not per batch.
	h.mu.Lock()
	first := h.running[source] != (state == hist.StateRunning)
	h.running[source] = state == hist.StateRunning
	h.mu.Unlock()
	if !first {
		return
	}
	attrs := pcommon.NewMap()
	attrs.PutStr("history_import", state)
	attrs.PutStr("history_import.source", source)
	attrs.PutInt("history_import.done", int64(p.Done))
	attrs.PutInt("history_import.total", int64(p.Total))
	if state == hist.StateFailed {
		componentstatus.ReportStatus(h.r.host, componentstatus.NewEvent(componentstatus.StatusRecoverableError,
			componentstatus.WithError(err), componentstatus.WithAttributes(attrs)))
		return
	}
	componentstatus.ReportStatus(h.r.host, componentstatus.NewEvent(componentstatus.StatusOK, componentstatus.WithAttributes(attrs)))
}

// historyTrigger serves history::trigger::path on the webhook server: an
// authenticated POST starts an import of every source (202), or answers
// 409 while one runs; other paths go to next.
func (r *doraReceiver) historyTrigger(tc *HistoryTriggerConfig, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != tc.Path {
			next.ServeHTTP(w, req)
			return
		}
		answer := func(status int, body map[string]any) {
			b, _ := json.Marshal(body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(append(b, '\n'))
		}
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			answer(http.StatusMethodNotAllowed, map[string]any{"error": "method " + req.Method + " not allowed: POST starts a history import"})
			return
		}
		if tc.Verify() {
			if err := tc.CheckAuthorization(req.Header, "", "Authorization: Bearer <history::trigger::token>"); err != nil {
				msg := err.Error()
				var herr *webhook.Error
				if errors.As(err, &herr) {
					msg = herr.Message
				}
				answer(http.StatusUnauthorized, map[string]any{"error": msg})
				return
			}
		}
		h := r.imports.Load()
		if !r.isLeader.Load() {
			answer(http.StatusServiceUnavailable, map[string]any{"error": ingest.ErrNotLeader.Error() + "; the leader imports"})
			return
		}
		if h == nil {
			answer(http.StatusConflict, map[string]any{"error": "no configured source imports history (set a source's history::token, see docs/history.md)"})
			return
		}
		if _, err := h.runner.Start(req.Context(), false); errors.Is(err, hist.ErrRunning) {
			answer(http.StatusConflict, map[string]any{"status": "running", "error": "a history import is running; its progress is in the log and otelcol_dora_history_progress"})
			return
		} else if err != nil {
			answer(http.StatusInternalServerError, map[string]any{"error": err.Error()})
			return
		}
		names := make([]string, 0, len(h.sources))
		for _, s := range h.sources {
			names = append(names, s.Name())
		}
		now := time.Now().UTC()
		answer(http.StatusAccepted, map[string]any{"status": "started", "sources": names,
			"from": now.Add(-r.cfg.History.Window).Format(time.RFC3339), "to": now.Format(time.RFC3339),
			"note": "a source with an interrupted run resumes its window; progress: the log and otelcol_dora_history_progress"})
	})
}
