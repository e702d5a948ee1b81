package dorareceiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
	"github.com/otelcol-dora/dorareceiver/internal/spanshub"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// transportGRPC counts the OTLP/gRPC exports in the receiver's telemetry.
const transportGRPC = "grpc"

// CI/CD spans arrive three ways, all into one engine: OTLP/HTTP on the
// webhook server (the otlp source), OTLP/gRPC on a server of their own
// (webhooks::otlp::grpc, this file) and a dora connector in the same
// collector (spanshub, doraconnector). All three classify spans with
// internal/cicdspans and apply them through the ingest core, and answer
// only once the metrics they change reached the pipeline.

// grpcAuthenticates reports whether the gRPC server authenticates every
// export: grpc::auth, the otlp source's auth (which the gRPC server also
// uses), or mutual TLS (grpc::tls::client_ca_file).
func grpcAuthenticates(cfg *cicdspans.Config) bool {
	g := cfg.GRPC.Get()
	if g == nil {
		return false
	}
	if g.Auth.HasValue() || cfg.Auth.HasValue() {
		return true
	}
	tls := g.TLS.Get()
	return tls != nil && tls.ClientCAFile != ""
}

// grpcAuth is the authenticator of the gRPC server: its own, else the
// otlp source's, so that one token serves both protocols.
func grpcAuth(cfg *cicdspans.Config) configoptional.Optional[configauth.Config] {
	if g := cfg.GRPC.Get(); g != nil && g.Auth.HasValue() {
		return g.Auth
	}
	return cfg.Auth
}

// spansGRPC serves the OTLP TraceService.
type spansGRPC struct {
	ptraceotlp.UnimplementedGRPCServer
	r        *doraReceiver
	provider *cicdspans.Provider
	obs      *receiverhelper.ObsReport
}

// startSpansGRPC starts the gRPC server of webhooks::otlp::grpc, if it is
// configured. p is the otlp source's provider, shared with the HTTP path
// (its memory of recent traces included).
func (r *doraReceiver) startSpansGRPC(ctx context.Context, host component.Host, wc *WebhooksConfig, p *cicdspans.Provider) error {
	cfg := wc.Spans.Get()
	if cfg == nil || cfg.GRPC.Get() == nil || p == nil {
		return nil
	}
	sc := *cfg.GRPC.Get()
	sc.Auth = grpcAuth(cfg)
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: r.settings.ID, Transport: transportGRPC, ReceiverCreateSettings: r.settings,
	})
	if err != nil {
		return err
	}
	srv, err := sc.ToServer(ctx, host.GetExtensions(), r.settings.TelemetrySettings)
	if err != nil {
		return fmt.Errorf("webhooks::otlp::grpc: %w", err)
	}
	ptraceotlp.RegisterGRPCServer(srv, &spansGRPC{r: r, provider: p, obs: obs})
	if r.forwardProvider != nil {
		// Agents' event records (gateway.go), on the same server and auth.
		plogotlp.RegisterGRPCServer(srv, &logsGRPC{r: r, provider: r.forwardProvider, obs: obs})
	}
	ln, err := sc.NetAddr.Listen(ctx)
	if err != nil {
		return fmt.Errorf("webhooks::otlp::grpc: listening on %s: %w", sc.NetAddr.Endpoint, err)
	}
	if !grpcAuthenticates(cfg) {
		r.logger.Warn("OTLP/gRPC spans server accepts exports WITHOUT authenticating them (otlp::insecure_skip_verify: true); anyone who can reach it can add deployments",
			zap.String("endpoint", ln.Addr().String()))
	}
	r.grpcServer = srv
	r.logger.Info("OTLP/gRPC spans server listening", zap.String("endpoint", ln.Addr().String()),
		zap.Int("max_recv_msg_size_mib", sc.MaxRecvMsgSizeMiB))
	r.serveWG.Add(1)
	go func() {
		defer r.serveWG.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	return nil
}

// stopSpansGRPC lets the exports in flight finish (they wait for their
// emission) until ctx ends, then cuts them.
func (r *doraReceiver) stopSpansGRPC(ctx context.Context) {
	srv := r.grpcServer
	if srv == nil {
		return
	}
	r.grpcServer = nil
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		srv.Stop()
		<-done
	}
}

// Export takes one OTLP/gRPC trace export. Its answer says what an
// OTLP/HTTP export would get, in gRPC codes: OK once the metrics reached
// the pipeline (or no span is a deployment); Unavailable when the sender
// should retry (not the leader, storage unavailable, the pipeline refused);
// InvalidArgument naming the field of a bad span or event; ResourceExhausted
// over limits::max_events_per_delivery (and, from gRPC itself, over
// max_recv_msg_size_mib). Refusals other than Unavailable are not retried by
// OTLP exporters.
func (s *spansGRPC) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	resp := ptraceotlp.NewExportResponse()
	if nr := s.r.notReady(); nr != nil {
		// The follower's answer, as the HTTP path's 503 with Retry-After:
		// RetryInfo tells OTLP exporters when to try again.
		msg := nr.Error
		if nr.Leader != "" {
			msg += " (leader: " + nr.Leader + ")"
		}
		st := status.New(codes.Unavailable, msg)
		if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(nr.RetryAfter)}); err == nil {
			st = d
		}
		s.r.logger.Warn("OTLP/gRPC export not accepted; the sender should retry", zap.String("source", event.SourceSpans),
			zap.String("code", codes.Unavailable.String()), zap.String("error", msg))
		return resp, st.Err()
	}
	ctx = s.obs.StartMetricsOp(ctx)
	sres, ignored, err := s.r.ingestTraces(ctx, s.provider, req.Traces())
	s.obs.EndMetricsOp(ctx, event.SourceSpans, sres.Accepted, err)
	if err == nil {
		if ce := s.r.logger.Check(zap.DebugLevel, "OTLP/gRPC export accepted"); ce != nil {
			ce.Write(zap.Int("events", sres.Accepted), zap.Int("duplicates", sres.Duplicates), zap.String("ignored", ignored))
		}
		return resp, nil
	}
	st, permanent, reason := spansStatus(err)
	if permanent {
		s.r.tel.refusedDelivery(ctx, event.SourceSpans, reason)
		s.r.logger.Info("OTLP/gRPC export refused", zap.String("source", event.SourceSpans),
			zap.String("code", st.Code().String()), zap.String("error", st.Message()))
	} else {
		s.r.logger.Warn("OTLP/gRPC export not accepted; the sender should retry", zap.String("source", event.SourceSpans),
			zap.String("code", st.Code().String()), zap.String("error", st.Message()))
	}
	return resp, st.Err()
}

// ingestTraces classifies the spans of td with p and applies their events
// like an OTLP/HTTP export's: bounded by limits::max_events_per_delivery,
// answered once the metrics they change reached the pipeline. ignored says
// why nothing was counted, when no span is a deployment.
func (r *doraReceiver) ingestTraces(ctx context.Context, p *cicdspans.Provider, td ptrace.Traces) (res webhook.SinkResult, ignored string, err error) {
	parsed, err := p.ParseTraces(td, time.Now())
	if err != nil {
		return res, "", err
	}
	if len(parsed.Events) == 0 {
		return res, parsed.Ignored, nil
	}
	res, err = r.ingest(ctx, p.Name(), parsed.Events)
	return res, "", err
}

// spansEngine is the receiver as a dora connector sees it (spanshub).
type spansEngine struct{ r *doraReceiver }

// IngestTraces implements spanshub.Engine: the connector returns its error
// from ConsumeTraces, so a refusal reaches the sender through the
// receivers upstream (the otlp receiver answers a permanent error's gRPC
// status as it is, and a retryable error as Unavailable / 503).
func (e spansEngine) IngestTraces(ctx context.Context, p *cicdspans.Provider, td ptrace.Traces) error {
	_, _, err := e.r.ingestTraces(ctx, p, td)
	if err == nil {
		return nil
	}
	st, permanent, reason := spansStatus(err)
	if !permanent {
		return fmt.Errorf("dora connector: %w", err)
	}
	e.r.tel.refusedDelivery(ctx, event.SourceSpans, reason)
	return consumererror.NewPermanent(st.Err())
}

// spansStatus maps an export's error onto its gRPC status, as the webhook
// handler maps it onto an HTTP status (internal/webhook), with the reason
// of a permanent refusal for the receiver's telemetry.
func spansStatus(err error) (st *status.Status, permanent bool, reason string) {
	var herr *webhook.Error
	switch {
	case errors.Is(err, ingest.ErrPipelineRefused), errors.Is(err, ingest.ErrStorageUnavailable),
		errors.Is(err, ingest.ErrNotLeader), errors.Is(err, spanshub.ErrNotRunning):
		return status.New(codes.Unavailable, err.Error()+"; retry later"), false, ""
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.Unavailable, "request ended before the data reached the pipeline; retry"), false, ""
	case errors.Is(err, ingest.ErrInvalidEvent):
		reason = "invalid_event"
		var rr interface{ RefusalReason() string }
		if errors.As(err, &rr) && rr.RefusalReason() != "" {
			reason = rr.RefusalReason()
		}
		st = status.New(codes.InvalidArgument, err.Error())
		var f interface{ FieldName() string }
		if errors.As(err, &f) && f.FieldName() != "" {
			// The field, machine-readable, as google.rpc.BadRequest.
			if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: f.FieldName(), Description: err.Error()},
			}}); derr == nil {
				st = d
			}
		}
		return st, true, reason
	case errors.As(err, &herr):
		switch herr.Status {
		case http.StatusRequestEntityTooLarge:
			// Not retried by OTLP exporters: no RetryInfo.
			return status.New(codes.ResourceExhausted, herr.Message), true, "too_large"
		case http.StatusUnauthorized:
			return status.New(codes.Unauthenticated, herr.Message), true, "unauthorized"
		}
		return status.New(codes.InvalidArgument, herr.Message), true, "bad_request"
	}
	return status.New(codes.InvalidArgument, err.Error()), true, "bad_request"
}

var _ spanshub.Engine = spansEngine{}
