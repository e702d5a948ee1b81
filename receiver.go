package dorareceiver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/otelcol-dora/dorareceiver/internal/cardinality"
	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
	"github.com/otelcol-dora/dorareceiver/internal/emitter"
	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/forward"
	"github.com/otelcol-dora/dorareceiver/internal/gitlab"
	hist "github.com/otelcol-dora/dorareceiver/internal/history"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/leader"
	"github.com/otelcol-dora/dorareceiver/internal/spanshub"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Transports, as reported in the receiver's own telemetry: "http" counts
// webhook events accepted or refused, "internal" the DORA data points the
// receiver sends down the pipeline.
const (
	transportHTTP     = "http"
	transportInternal = "internal"
)

// source is what every long-running input implements: it starts producing
// events into the sink given at construction and stops on Shutdown.
type source interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

type doraReceiver struct {
	cfg      *Config
	settings receiver.Settings
	// next is the metrics pipeline; nextTraces and nextLogs the traces and
	// logs pipelines (explain). Each is nil when no pipeline of its type
	// uses the receiver.
	next       consumer.Metrics
	nextTraces consumer.Traces
	nextLogs   consumer.Logs

	obsEmit  *receiverhelper.ObsReport
	obsHTTP  *receiverhelper.ObsReport
	logger   *zap.Logger
	services serviceMap
	// tel is the receiver's own telemetry (telemetry.go).
	tel *telemetry
	// core applies the events, logs them to the storage and emits the
	// metrics (internal/ingest); it is created at Start.
	core *ingest.Core

	sources []source
	// claimers are the progressive-delivery sources (progressive.go), of
	// every cluster.
	claimers []claimer
	// clusterStatus reports the watched clusters' API servers
	// (multicluster.go).
	clusterStatus *clusterStatus
	// clusterHistory are the watched clusters' history imports, built
	// with their live sources (multicluster.go); under leadMu.
	clusterHistory []hist.Source
	server         *http.Server
	// grpcServer serves OTLP/gRPC spans (webhooks::otlp::grpc,
	// spans_grpc.go); spansProvider is the otlp source's, which the HTTP
	// path and the gRPC server share.
	grpcServer    *grpc.Server
	spansProvider *cicdspans.Provider
	// pushCompleters fetch the commits GitLab's push hooks leave out
	// (pushcompletion.go).
	pushCompleters []*gitlab.PushCompleter
	// forwardProvider decodes agents' event records (gateway.go), on the
	// HTTP path and the gRPC logs service.
	forwardProvider *forward.Provider
	serveWG         sync.WaitGroup
	// closing is closed when Shutdown begins: retries stop.
	closing chan struct{}

	// isLeader is set while this replica applies events (the core is
	// active), for the ready and health paths; it turns false as soon as
	// the elector says the lease is lost.
	isLeader atomic.Bool
	host     component.Host

	// Leader election (leader.go); elector is nil without it. leadMu
	// serializes starting and stopping the leadership; led says this
	// replica led once (it never leads again: lead).
	elector        *leader.Elector
	electionCancel context.CancelFunc
	electionDone   chan struct{}
	retryAfter     time.Duration
	leadMu         sync.Mutex
	leading        bool
	led            bool

	// imports is the history import of the current leadership (history.go),
	// nil without one; the trigger endpoint reads it.
	imports atomic.Pointer[historyImport]

	// explanations carries deployment reports to the explain loop.
	explanations chan []*engine.DeploymentReport
	explainStop  chan struct{}
	explainDone  chan struct{}
}

func newDoraReceiver(cfg *Config, set receiver.Settings, next consumer.Metrics) (*doraReceiver, error) {
	obsEmit, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: transportInternal, ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	obsHTTP, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: transportHTTP, ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	tel, err := newTelemetry(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &doraReceiver{
		cfg:      cfg,
		settings: set,
		next:     next,
		obsEmit:  obsEmit,
		obsHTTP:  obsHTTP,
		tel:      tel,
		logger:   set.Logger,
		services: newServiceMap(cfg.Services, cfg.Teams).withNamespaceEnvironments(kubernetesEnvironments(cfg)),
	}, nil
}

func (r *doraReceiver) Start(ctx context.Context, host component.Host) error {
	eng, err := engine.New(r.cfg.engineConfig(), time.Now())
	if err != nil {
		return err
	}
	r.host = host
	r.closing = make(chan struct{})
	r.core = r.newCore(eng)
	if r.agent() {
		if err := r.checkAgentPipelines(); err != nil {
			return err
		}
	} else {
		r.startExplain()
	}

	le := r.cfg.LeaderElection.Get()
	if r.cfg.Kubernetes.Get() != nil || le != nil {
		k8s.RouteKlog(r.logger)
	}
	if le == nil {
		// A single replica leads from the start.
		r.leadMu.Lock()
		err := r.startLeadingLocked(ctx)
		r.leadMu.Unlock()
		if err != nil {
			return errors.Join(err, r.Shutdown(ctx))
		}
	} else if r.cfg.Storage == nil {
		r.logger.Warn("leader_election without storage: a new leader starts its counters from zero; set storage to a storage extension on shared storage")
	}

	if wc := r.cfg.Webhooks.Get(); wc != nil {
		if err := r.startServer(ctx, host, wc); err != nil {
			return errors.Join(err, r.Shutdown(ctx))
		}
		if err := r.startSpansGRPC(ctx, host, wc, r.spansProvider); err != nil {
			return errors.Join(err, r.Shutdown(ctx))
		}
	}
	// dora connectors naming this receiver feed it from now on.
	spanshub.Run(r.settings.ID, spansEngine{r})
	if le != nil {
		if err := r.startElection(le); err != nil {
			return errors.Join(err, r.Shutdown(ctx))
		}
	}
	componentstatus.ReportStatus(host, componentstatus.NewEvent(componentstatus.StatusOK))
	return nil
}

// startLeadingLocked loads the saved state, starts the sources and the
// emission; r.leadMu is held. On error, stepDown undoes what was started.
func (r *doraReceiver) startLeadingLocked(ctx context.Context) error {
	r.led = true
	r.leading = true
	// The saved state is loaded before any source starts.
	if r.cfg.Storage == nil {
		r.logger.Warn("No storage configured: the DORA state is kept in memory only, and the counters restart from zero when the collector restarts; set storage to a storage extension (for example file_storage) to keep them")
	} else if err := r.restore(ctx, r.host); err != nil {
		return err
	}

	if kc := r.cfg.Kubernetes.Get(); kc != nil {
		if err := r.startKubernetesLocked(kc); err != nil {
			return err
		}
	}

	// The history import starts last, once the core applies events.
	if h := r.newHistoryImport(); h != nil {
		r.sources = append(r.sources, h)
		r.imports.Store(h)
	}
	r.core.Start()
	r.isLeader.Store(true)
	for _, s := range r.sources {
		if err := s.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// stepDown ends the leadership: no event is applied from here on, the
// sources and the emission stop (with a last emission when final), the
// deliveries still waiting for an emission get 503, the state is saved
// and the storage closed. It does nothing when this replica does not lead.
func (r *doraReceiver) stepDown(ctx context.Context, final bool) error {
	r.leadMu.Lock()
	defer r.leadMu.Unlock()
	if !r.leading {
		return nil
	}
	r.leading = false
	r.isLeader.Store(false)
	// The history import stops first: its batch in flight is applied or
	// not, and it ends as stopped rather than failing on a core that no
	// longer applies.
	var errs []error
	if h := r.imports.Load(); h != nil {
		errs = append(errs, h.Shutdown(ctx))
	}
	r.core.Deactivate()
	for _, s := range r.sources {
		errs = append(errs, s.Shutdown(ctx))
	}
	r.sources, r.claimers, r.clusterHistory = nil, nil, nil
	r.imports.Store(nil)
	errs = append(errs, r.core.Stop(ctx, final))
	return errors.Join(errs...)
}

func (r *doraReceiver) startServer(ctx context.Context, host component.Host, wc *WebhooksConfig) error {
	var routes []webhook.Route
	srcs := wc.sources()
	for _, s := range srcs {
		p := s.provider
		if sp, ok := p.(*cicdspans.Provider); ok {
			r.spansProvider = sp
		}
		if gp, ok := p.(*gitlab.Provider); ok {
			r.startPushCompletion(gp, *wc.GitLab.Get())
		}
		if fp, ok := p.(*forward.Provider); ok {
			fp.SetMaxRecords(r.cfg.Limits.MaxEventsPerDelivery)
			r.forwardProvider = fp
		}
		routes = append(routes, webhook.Route{Path: s.path, Provider: p})
		r.logger.Info("Webhook source enabled", zap.String("source", p.Name()), zap.String("path", s.path))
		if s.insecure {
			r.logger.Warn("Webhook source accepts deliveries WITHOUT verifying them (insecure_skip_verify: true); anyone who can reach it can add events",
				zap.String("source", p.Name()), zap.String("path", s.path))
		}
	}
	for _, w := range startWarnings(wc) {
		r.logger.Warn("Webhook server setting weakens it against abuse", zap.String("key", "webhooks::"+w.key), zap.String("problem", w.msg))
	}
	handler := webhook.NewHandler(webhook.Options{
		Routes:         routes,
		Sink:           r.ingest,
		Logger:         r.logger,
		ObsReport:      r.obsHTTP,
		MaxBodySize:    wc.ServerConfig.MaxRequestBodySize,
		HealthPath:     wc.HealthPath,
		Health:         r.health,
		ReadyPath:      wc.ReadyPath,
		Ready:          r.notReady,
		Refused:        r.tel.refusedDelivery,
		WithoutService: r.tel.incidentsWithoutService,
		// Counted apart: commit times that are a push's (bitbucket_dc).
		Approximated: r.tel.approximateTimes,
	})
	var front http.Handler = handler
	if tc := r.cfg.History.Trigger.Get(); tc != nil {
		front = r.historyTrigger(tc, handler)
		r.logger.Info("History import on demand enabled", zap.String("path", tc.Path))
	}
	authed, err := authenticatePaths(ctx, front, srcs, host, r.logger)
	if err != nil {
		return err
	}
	ln, err := wc.ServerConfig.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("webhooks: listening on %s: %w", wc.ServerConfig.NetAddr.Endpoint, err)
	}
	srv, err := wc.ServerConfig.ToServer(ctx, host.GetExtensions(), r.settings.TelemetrySettings, authed)
	if err != nil {
		ln.Close()
		return err
	}
	r.server = srv
	r.logger.Info("Webhook server listening", zap.String("endpoint", ln.Addr().String()))
	r.serveWG.Add(1)
	go func() {
		defer r.serveWG.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	return nil
}

func (r *doraReceiver) Shutdown(ctx context.Context) error {
	var errs []error
	if r.closing != nil {
		select {
		case <-r.closing:
		default:
			close(r.closing)
		}
	}
	spanshub.Stop(r.settings.ID, spansEngine{r})
	if r.server != nil {
		// Stop taking deliveries first; those in flight finish.
		errs = append(errs, r.server.Shutdown(ctx))
		r.server = nil
	}
	r.stopSpansGRPC(ctx)
	r.serveWG.Wait()
	errs = append(errs, r.stopPushCompletion(ctx))
	// The state is saved and the storage closed before the lease is
	// released, so the next leader opens the storage after this one.
	errs = append(errs, r.stepDown(ctx, true))
	// Send the deployments explained so far.
	r.stopExplain()
	errs = append(errs, r.stopElection(ctx))
	return errors.Join(errs...)
}

// ingest is the sink of webhook deliveries: the core applies the events
// and answers once the pipeline has the change (ingest.Core.Ingest).
func (r *doraReceiver) ingest(ctx context.Context, source string, events []event.Event) (webhook.SinkResult, error) {
	if err := r.cfg.Limits.checkCount(len(events)); err != nil {
		return webhook.SinkResult{}, err
	}
	if source == forward.SourceName {
		// Agents' records: answered once applied and logged (gateway.go).
		return r.core.Apply(ctx, events)
	}
	return r.core.Ingest(ctx, events)
}

// applyAsync is the sink of the Kubernetes source (ingest.Core.ApplyAsync).
func (r *doraReceiver) applyAsync(ev event.Event) error { return r.core.ApplyAsync(ev) }

// newCore returns the ingest core of eng, wired to the receiver's config,
// pipelines and telemetry.
func (r *doraReceiver) newCore(eng *engine.Engine) *ingest.Core {
	l := r.cfg.Limits
	return ingest.New(ingest.Settings{
		Logger:        r.logger,
		Engine:        eng,
		Emitter:       emitter.New(r.cfg.MetricsBuilderConfig, r.settings),
		Next:          r.metricsNext(),
		ObsReport:     r.obsEmit,
		EmitInterval:  r.cfg.EmitInterval,
		SnapshotEvery: r.cfg.SnapshotEvery,
		Limits: ingest.Limits{
			Series:        cardinality.Limits{Services: l.MaxServices, EnvironmentsPerService: l.MaxEnvironmentsPerService, Reasons: l.MaxReasons},
			MaxStateBytes: l.MaxStateBytes,
		},
		Mapped:   mappedServices(r.cfg.Services),
		Resolve:  r.services.resolve,
		Check:    r.checkEvent,
		Explain:  r.explain,
		Folded:   r.tel.foldedValue,
		SetAside: r.tel.setAside,
		Host:     r.host,
		Closing:  r.closing,
	})
}

// metricsNext is the metrics pipeline, through the semantic-convention
// rewrite when semantic_conventions is enabled.
func (r *doraReceiver) metricsNext() consumer.Metrics {
	sc := r.cfg.SemanticConventions
	if r.next == nil || !sc.Enabled {
		return r.next
	}
	// k8s.cluster.name is each series' cluster; the series without one
	// (webhook-only services) get the receiver's own cluster.
	cluster := cmp.Or(sc.Cluster, r.cfg.Cluster)
	next, err := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		return r.next.ConsumeMetrics(ctx, emitter.SemanticConventions(md, cluster))
	})
	if err != nil { // only for a nil function
		panic(err)
	}
	return next
}
