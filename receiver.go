package dorareceiver

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/emitter"
	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// transport names the receiver's input in its own telemetry.
const transport = "kubernetes"

// source is what every input of the receiver implements: it starts
// producing events into the sink given at construction and stops on
// Shutdown.
type source interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

type doraReceiver struct {
	cfg      *Config
	settings receiver.Settings
	next     consumer.Metrics
	obsrecv  *receiverhelper.ObsReport
	logger   *zap.Logger

	// mu serializes the engine and the emitter, which are not safe for
	// concurrent use; sources call apply from their own goroutines.
	mu      sync.Mutex
	engine  *engine.Engine
	emitter *emitter.Emitter

	// changed wakes the emit loop; its buffer of one coalesces bursts.
	changed chan struct{}
	sources []source
	stop    chan struct{}
	done    chan struct{}
}

func newDoraReceiver(cfg *Config, set receiver.Settings, next consumer.Metrics) (*doraReceiver, error) {
	obsrecv, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              transport,
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	return &doraReceiver{
		cfg:      cfg,
		settings: set,
		next:     next,
		obsrecv:  obsrecv,
		logger:   set.Logger,
		emitter:  emitter.New(cfg.MetricsBuilderConfig, set),
		changed:  make(chan struct{}, 1),
	}, nil
}

func (r *doraReceiver) Start(ctx context.Context, host component.Host) error {
	eng, err := engine.New(r.cfg.engineConfig(), time.Now())
	if err != nil {
		return err
	}
	r.engine = eng

	if kc := r.cfg.Kubernetes.Get(); kc != nil {
		client, err := k8s.NewClient(kc)
		if err != nil {
			return err
		}
		r.sources = append(r.sources, k8s.New(kc, client, r.logger.With(zap.String("source", event.SourceKubernetes)), r.apply,
			k8s.WithWatchErrorHandler(func(err error) {
				componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(err))
			})))
	}

	r.stop = make(chan struct{})
	r.done = make(chan struct{})
	go r.emitLoop()

	for _, s := range r.sources {
		if err := s.Start(ctx); err != nil {
			return errors.Join(err, r.Shutdown(ctx))
		}
	}
	componentstatus.ReportStatus(host, componentstatus.NewEvent(componentstatus.StatusOK))
	return nil
}

func (r *doraReceiver) Shutdown(ctx context.Context) error {
	var errs []error
	for _, s := range r.sources {
		errs = append(errs, s.Shutdown(ctx))
	}
	r.sources = nil
	if r.stop != nil {
		close(r.stop)
		<-r.done
		r.stop = nil
		// Send the final state so push exporters get the last changes.
		r.emit(ctx)
	}
	return errors.Join(errs...)
}

// apply is the sink every source sends its events to.
func (r *doraReceiver) apply(ev event.Event) {
	r.mu.Lock()
	out, err := r.engine.Apply(ev)
	r.mu.Unlock()
	if err != nil {
		// A source produced an event the engine cannot use: a bug in the
		// source, not bad user input, so it is logged loudly.
		r.logger.Error("Event rejected by the engine", zap.String("source", ev.Source), zap.String("id", ev.ID), zap.Error(err))
		return
	}
	if out.Duplicate {
		r.logger.Debug("Duplicate event ignored", zap.String("source", ev.Source), zap.String("id", ev.ID))
		return
	}
	if out.Changed {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
}

// emitLoop sends the state when it changes and every EmitInterval.
func (r *doraReceiver) emitLoop() {
	defer close(r.done)
	ticker := time.NewTicker(r.cfg.EmitInterval)
	defer ticker.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-r.changed:
		case <-ticker.C:
		}
		r.emit(context.Background())
	}
}

// emit sends the whole cumulative state. When the pipeline refuses it,
// nothing is lost: the next emission carries the same totals.
func (r *doraReceiver) emit(ctx context.Context) {
	r.mu.Lock()
	snap := r.engine.Snapshot()
	md := r.emitter.Emit(snap, time.Now())
	r.mu.Unlock()
	n := md.DataPointCount()
	if n == 0 {
		return
	}
	ctx = r.obsrecv.StartMetricsOp(ctx)
	err := r.next.ConsumeMetrics(ctx, md)
	r.obsrecv.EndMetricsOp(ctx, "dora", n, err)
	if err != nil {
		r.logger.Warn("Pipeline refused DORA metrics; they will be sent again with the next emission", zap.Error(err))
	}
}
