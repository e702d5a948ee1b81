package dorareceiver

import (
	"context"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/otelcol-dora/dorareceiver/internal/forward"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// The gateway input (docs/agent-gateway.md): agents' event records arrive
// on the otlp source, as OTLP/HTTP logs on webhooks::otlp::logs_path
// (forward.Provider, through the webhook handler like every source) and as
// OTLP/gRPC on the otlp gRPC server's LogsService (below), authenticated as
// spans are. Both decode with internal/forward and apply through the
// ingest core, answering once the events are applied and logged to the
// storage (ingest.Core.Apply; not after the emission, as webhooks are:
// they are the agents' cluster events, taken as the local Kubernetes
// source's are, and waiting for an emission per export halved the
// gateway's ingest, BENCHMARKS.md); an agent's retried export is
// recognized by its events' ids (scoped by cluster) and counted once.

// logsGRPC serves the OTLP LogsService for agents.
type logsGRPC struct {
	plogotlp.UnimplementedGRPCServer
	r        *doraReceiver
	provider *forward.Provider
	obs      *receiverhelper.ObsReport
}

// Export takes one agent export; its answers are the spans service's
// (spansGRPC.Export): OK once applied, Unavailable to retry,
// InvalidArgument naming the field of a bad record (or an unknown schema
// version), ResourceExhausted over limits::max_events_per_delivery.
func (s *logsGRPC) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	resp := plogotlp.NewExportResponse()
	if nr := s.r.notReady(); nr != nil {
		msg := nr.Error
		if nr.Leader != "" {
			msg += " (leader: " + nr.Leader + ")"
		}
		st := status.New(codes.Unavailable, msg)
		if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(nr.RetryAfter)}); err == nil {
			st = d
		}
		return resp, st.Err()
	}
	ctx = s.obs.StartLogsOp(ctx)
	res, err := s.provider.ParseLogs(req.Logs())
	accepted := 0
	if err == nil && len(res.Events) > 0 {
		var sres webhook.SinkResult
		sres, err = s.r.ingest(ctx, s.provider.Name(), res.Events)
		accepted = sres.Accepted
		if err == nil {
			if ce := s.r.logger.Check(zap.DebugLevel, "Agent export accepted"); ce != nil {
				ce.Write(zap.Int("events", sres.Accepted), zap.Int("duplicates", sres.Duplicates))
			}
		}
	}
	s.obs.EndLogsOp(ctx, forward.SourceName, accepted, err)
	if err == nil {
		return resp, nil
	}
	st, permanent, reason := spansStatus(err)
	if permanent {
		s.r.tel.refusedDelivery(ctx, forward.SourceName, reason)
		s.r.logger.Info("Agent export refused", zap.String("source", forward.SourceName),
			zap.String("code", st.Code().String()), zap.String("error", st.Message()))
	} else {
		s.r.logger.Warn("Agent export not accepted; the agent retries", zap.String("source", forward.SourceName),
			zap.String("code", st.Code().String()), zap.String("error", st.Message()))
	}
	return resp, st.Err()
}
