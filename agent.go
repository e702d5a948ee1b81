package dorareceiver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/forward"
)

// Modes of the receiver (the mode setting).
const (
	// ModeStandalone computes the DORA metrics from its own sources (the
	// default; a gateway is a standalone receiver that also takes agents'
	// records on its otlp source).
	ModeStandalone = "standalone"
	// ModeAgent watches its cluster and forwards the normalized events as
	// OTLP log records through its logs pipeline, to a gateway, instead of
	// computing anything (docs/agent-gateway.md).
	ModeAgent = "agent"
)

// The agent path is the seam of the ingest core, not a transport of its
// own: the Kubernetes, Argo Rollouts and Flagger sources hand each event
// to their sink (clusterSink), which in agent mode is forward instead of the
// core's ApplyAsync. Like ApplyAsync, forward returns only once the event
// is taken (here: the logs pipeline's consumer accepted its record; with
// the exporter's sending_queue on file_storage, that is once the record is
// on disk), retrying until then; only then does the source save its own
// state. So a record refused, an agent killed or a gateway down loses
// nothing: the source derives the event again at its next start, or the
// exporter's queue delivers it, and the gateway de-duplicates it by its id
// (scoped by cluster).

// validateMode checks mode and what agent mode needs.
func (cfg *Config) validateMode() error {
	switch cfg.Mode {
	case "", ModeStandalone:
		return nil
	case ModeAgent:
	default:
		return fmt.Errorf("mode: %q is neither %s nor %s", cfg.Mode, ModeStandalone, ModeAgent)
	}
	var errs []error
	if !cfg.Kubernetes.HasValue() {
		errs = append(errs, errors.New("mode: agent needs a kubernetes section: the cluster whose rollouts it forwards"))
	}
	if cfg.Cluster == "" {
		errs = append(errs, errors.New("cluster: required with mode: agent: the gateway tells the agents' clusters apart by it"))
	}
	if cfg.Webhooks.HasValue() {
		errs = append(errs, errors.New("webhooks: not served with mode: agent; send webhooks to the gateway"))
	}
	return errors.Join(errs...)
}

func (r *doraReceiver) agent() bool { return r.cfg.Mode == ModeAgent }

// checkAgentPipelines refuses to start an agent that has nowhere to send.
func (r *doraReceiver) checkAgentPipelines() error {
	if r.nextLogs == nil {
		return errors.New("mode: agent: list the dora receiver in a logs pipeline whose exporter (otlp_grpc or otlp_http) sends to the gateway")
	}
	if r.next != nil {
		r.logger.Warn("mode: agent computes no metrics: the metrics pipeline that lists the dora receiver gets nothing")
	}
	return nil
}

// forwardBackoff bounds the wait between two attempts to hand a record to
// a logs pipeline that refuses it.
const forwardMaxBackoff = 5 * time.Second

// forward hands ev, as one log record (internal/forward), to the logs
// pipeline and returns once it is accepted, retrying with backoff until
// then or until the receiver stops (then the source saves nothing more and
// derives the event again at its next start). A permanent refusal (a
// record the pipeline can never take) is logged and dropped: retrying
// would stop every later event.
func (r *doraReceiver) forward(ev event.Event) error {
	backoff := 100 * time.Millisecond
	for {
		// A fresh batch for each attempt: a consumer may keep the one it
		// was given (a queue).
		ld := plog.NewLogs()
		forward.Append(ld, []event.Event{ev}, time.Now())
		ctx := r.obsEmit.StartLogsOp(context.Background())
		err := r.nextLogs.ConsumeLogs(ctx, ld)
		r.obsEmit.EndLogsOp(ctx, "dora", 1, err)
		switch {
		case err == nil:
			return nil
		case consumererror.IsPermanent(err):
			r.logger.Error("Event record refused for good by the logs pipeline; dropped", zap.String("source", ev.Source), zap.String("id", ev.ID), zap.Error(err))
			return nil
		}
		r.logger.Warn("Logs pipeline refused the event record; retrying", zap.String("source", ev.Source), zap.String("id", ev.ID),
			zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-r.closing:
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, forwardMaxBackoff)
	}
}
