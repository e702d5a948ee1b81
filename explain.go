package dorareceiver

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/explain"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// ExplainConfig says what the receiver sends about each production
// deployment besides the metrics: a trace of where its lead time went and a
// log record with its numbers (internal/explain). Each goes only to
// pipelines of its type that list the receiver.
type ExplainConfig struct {
	// Traces sends a trace per production deployment to the traces
	// pipelines.
	Traces bool `mapstructure:"traces"`
	// Logs sends a log record per production deployment to the logs
	// pipelines.
	Logs bool `mapstructure:"logs"`
}

// explainQueue bounds the deliveries' reports waiting for the explain loop;
// when it is full, reports are dropped (and logged) rather than slowing the
// metrics down.
const explainQueue = 1024

func (r *doraReceiver) explainsTraces() bool { return r.nextTraces != nil && r.cfg.Explain.Traces }
func (r *doraReceiver) explainsLogs() bool   { return r.nextLogs != nil && r.cfg.Explain.Logs }

// startExplain starts the loop that sends deployment traces and logs, when
// a pipeline takes them.
func (r *doraReceiver) startExplain() {
	if r.nextTraces != nil && !r.cfg.Explain.Traces {
		r.logger.Warn("A traces pipeline uses the receiver but explain::traces is false: it gets no data")
	}
	if r.nextLogs != nil && !r.cfg.Explain.Logs {
		r.logger.Warn("A logs pipeline uses the receiver but explain::logs is false: it gets no data")
	}
	if !r.explainsTraces() && !r.explainsLogs() {
		return
	}
	r.explanations = make(chan []*engine.DeploymentReport, explainQueue)
	r.explainStop = make(chan struct{})
	r.explainDone = make(chan struct{})
	go r.explainLoop(r.explanations, r.explainStop, r.explainDone)
}

// stopExplain sends the reports queued so far and stops the loop.
func (r *doraReceiver) stopExplain() {
	if r.explainStop == nil {
		return
	}
	close(r.explainStop)
	<-r.explainDone
	r.explainStop = nil
}

// explain queues the reports of one delivery without waiting.
func (r *doraReceiver) explain(reports []*engine.DeploymentReport) {
	if len(reports) == 0 || r.explanations == nil {
		return
	}
	select {
	case r.explanations <- reports:
	default:
		r.logger.Warn("Explain queue full: deployment traces and logs dropped (the metrics are not affected)", zap.Int("deployments", len(reports)))
	}
}

func (r *doraReceiver) explainLoop(queue <-chan []*engine.DeploymentReport, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case reports := <-queue:
			r.sendExplanations(reports)
		case <-stop:
			for {
				select {
				case reports := <-queue:
					r.sendExplanations(reports)
				default:
					return
				}
			}
		}
	}
}

// sendExplanations sends the trace and the log record of each report.
// Failures are logged: a deployment's explanation is not sent again (the
// metrics carry its numbers).
func (r *doraReceiver) sendExplanations(reports []*engine.DeploymentReport) {
	b := explain.Builder{ScopeName: metadata.ScopeName, ScopeVersion: r.settings.BuildInfo.Version}
	if r.explainsTraces() {
		td := b.Traces(reports...)
		ctx := r.obsEmit.StartTracesOp(context.Background())
		err := r.nextTraces.ConsumeTraces(ctx, td)
		r.obsEmit.EndTracesOp(ctx, "dora", td.SpanCount(), err)
		if err != nil {
			r.logger.Warn("Pipeline refused deployment traces", zap.Int("deployments", len(reports)), zap.Error(err))
		}
	}
	if r.explainsLogs() {
		ld := b.Logs(time.Now(), reports...)
		ctx := r.obsEmit.StartLogsOp(context.Background())
		err := r.nextLogs.ConsumeLogs(ctx, ld)
		r.obsEmit.EndLogsOp(ctx, "dora", ld.LogRecordCount(), err)
		if err != nil {
			r.logger.Warn("Pipeline refused deployment logs", zap.Int("deployments", len(reports)), zap.Error(err))
		}
	}
}
