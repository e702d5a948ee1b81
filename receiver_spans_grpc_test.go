package dorareceiver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
)

func TestOTLPGRPCNeedsCredentials(t *testing.T) {
	conf := func(otlp, grpcServer, server map[string]any) map[string]any {
		if grpcServer != nil {
			otlp["grpc"] = grpcServer
		}
		wh := map[string]any{"otlp": otlp}
		for k, v := range server {
			wh[k] = v
		}
		return map[string]any{"webhooks": wh}
	}
	token := map[string]any{"authenticator": "bearertokenauth/ci"}
	mtls := map[string]any{"cert_file": "tls.crt", "key_file": "tls.key", "client_ca_file": "ca.crt"}
	for name, tc := range map[string]struct {
		conf map[string]any
		err  string
	}{
		"no credentials": {
			conf: conf(map[string]any{}, map[string]any{}, map[string]any{"auth": token}),
			err:  "otlp::grpc::auth: required to authenticate OTLP/gRPC exports",
		},
		"the HTTP server's mutual TLS does not cover the gRPC server": {
			conf: conf(map[string]any{}, map[string]any{}, map[string]any{"tls": mtls}),
			err:  "otlp::grpc::auth: required",
		},
		"an empty grpc auth": {
			conf: conf(map[string]any{"auth": token}, map[string]any{"auth": map[string]any{}}, nil),
			err:  "webhooks: otlp: grpc::auth::authenticator: must name a server authenticator extension",
		},
		"the otlp source's authenticator": {conf: conf(map[string]any{"auth": token}, map[string]any{}, nil)},
		"its own authenticator": {conf: conf(map[string]any{"insecure_skip_verify": false}, map[string]any{"auth": token},
			map[string]any{"auth": token})},
		"mutual TLS":                       {conf: conf(map[string]any{"auth": token}, map[string]any{"tls": mtls}, nil)},
		"insecure_skip_verify, explicitly": {conf: conf(map[string]any{"insecure_skip_verify": true}, map[string]any{}, nil)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadReceiverConfig(t, tc.conf)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}

	// Off by default; `grpc:` alone gives the defaults.
	cfg, err := loadReceiverConfig(t, conf(map[string]any{"auth": token}, nil, nil))
	require.NoError(t, err)
	assert.False(t, cfg.Webhooks.Get().Spans.Get().GRPC.HasValue())
	cfg, err = loadReceiverConfig(t, conf(map[string]any{"auth": token}, map[string]any{}, nil))
	require.NoError(t, err)
	g := cfg.Webhooks.Get().Spans.Get().GRPC.Get()
	require.NotNil(t, g)
	assert.Equal(t, "localhost:4317", g.NetAddr.Endpoint)
	assert.Equal(t, 10, g.MaxRecvMsgSizeMiB)
}

// startGRPCReceiver starts a receiver with the otlp source (its
// authenticator wants ci-token) and its gRPC server; it returns a
// TraceService client.
func startGRPCReceiver(t *testing.T, next *flakyConsumer, configure func(*Config)) ptraceotlp.GRPCClient {
	t.Helper()
	endpoint := freeEndpoint(t)
	host := hostWithExtensions{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{authID: tokenAuth{token: "ci-token"}}}
	_, err := startWithHost(t, next, host, func(cfg *Config) {
		spans := cfg.Webhooks.Get().Spans.Get()
		g := spans.GRPC.GetOrInsertDefault()
		g.NetAddr.Endpoint = endpoint
		if configure != nil {
			configure(cfg)
		}
	})
	require.NoError(t, err)
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return ptraceotlp.NewGRPCClient(conn)
}

func withToken(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// githubRunTraces is githubRunExport as traces.
func githubRunTraces(t *testing.T, serviceName string, runID byte, end time.Time) ptrace.Traces {
	req := ptraceotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalJSON(githubRunExport(t, serviceName, runID, end)))
	return req.Traces()
}

func exportGRPC(ctx context.Context, c ptraceotlp.GRPCClient, td ptrace.Traces) error {
	_, err := c.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
	return err
}

func TestOTLPGRPCExport(t *testing.T) {
	next := &flakyConsumer{}
	c := startGRPCReceiver(t, next, nil)
	now := time.Now().Truncate(time.Second)
	api := map[string]string{"namespace": "shop", "deployment": "api"}

	// The otlp source's authenticator guards the gRPC server too.
	for name, ctx := range map[string]context.Context{"no token": context.Background(), "wrong token": withToken("guess")} {
		err := exportGRPC(ctx, c, githubRunTraces(t, "api", 1, now.Add(-time.Hour)))
		assert.Equal(t, codes.Unauthenticated, status.Code(err), name)
	}
	assert.Empty(t, deploymentSeries(next), "nothing counted")

	require.NoError(t, exportGRPC(withToken("ci-token"), c, githubRunTraces(t, "api", 1, now.Add(-time.Hour))))
	v, ok := counterValue(latest(next), "platform.deployments", api)
	require.True(t, ok, "the export's answer waits for the metrics")
	assert.EqualValues(t, 1, v)

	// A redelivery is accepted and counted once.
	require.NoError(t, exportGRPC(withToken("ci-token"), c, githubRunTraces(t, "api", 1, now.Add(-time.Hour))))
	v, _ = counterValue(latest(next), "platform.deployments", api)
	assert.EqualValues(t, 1, v)

	// Spans that are no deployment are accepted and count nothing.
	td := ptrace.NewTraces()
	s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetName("build")
	s.SetTraceID(pcommon.TraceID{1})
	s.SetSpanID(pcommon.SpanID{1})
	require.NoError(t, exportGRPC(withToken("ci-token"), c, td))

	// The pipeline refuses: Unavailable, which OTLP exporters retry; the
	// retry, once the pipeline takes data again, is counted once.
	next.failing.Store(true)
	err := exportGRPC(withToken("ci-token"), c, githubRunTraces(t, "api", 2, now.Add(-30*time.Minute)))
	require.Equal(t, codes.Unavailable, status.Code(err), err)
	assert.Contains(t, status.Convert(err).Message(), "the metrics pipeline refused the data")
	next.failing.Store(false)
	require.NoError(t, exportGRPC(withToken("ci-token"), c, githubRunTraces(t, "api", 2, now.Add(-30*time.Minute))))
	v, _ = counterValue(latest(next), "platform.deployments", api)
	assert.EqualValues(t, 2, v)
}

func TestOTLPGRPCRefusesBadInput(t *testing.T) {
	next := &flakyConsumer{}
	c := startGRPCReceiver(t, next, func(cfg *Config) {
		cfg.Limits.MaxEventsPerDelivery = 2
		cfg.Webhooks.Get().Spans.Get().GRPC.Get().MaxRecvMsgSizeMiB = 1
	})
	ctx := withToken("ci-token")
	now := time.Now().Truncate(time.Second)

	// A deployment span without a span id: InvalidArgument naming it.
	td := githubRunTraces(t, "api", 1, now.Add(-time.Hour))
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetSpanID(pcommon.SpanID{})
	err := exportGRPC(ctx, c, td)
	require.Equal(t, codes.InvalidArgument, status.Code(err), err)
	assert.Contains(t, status.Convert(err).Message(), "trace_id and span_id must not be empty")

	// An event field over its bound: InvalidArgument, the field named in
	// the message and as a google.rpc.BadRequest field violation.
	td = githubRunTraces(t, "api", 2, now.Add(-time.Hour))
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("k8s.deployment.name", strings.Repeat("x", 300))
	err = exportGRPC(ctx, c, td)
	require.Equal(t, codes.InvalidArgument, status.Code(err), err)
	assert.Contains(t, status.Convert(err).Message(), "service: 300 bytes, above the limit of 253")
	var field string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 {
			field = br.GetFieldViolations()[0].GetField()
		}
	}
	assert.Equal(t, "service", field)

	// More deployments than limits::max_events_per_delivery:
	// ResourceExhausted without RetryInfo (not retried).
	td = ptrace.NewTraces()
	for i := byte(3); i < 6; i++ {
		githubRunTraces(t, "api", i, now.Add(-time.Hour)).ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	err = exportGRPC(ctx, c, td)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err)
	assert.Contains(t, status.Convert(err).Message(), "limits::max_events_per_delivery")
	assert.Empty(t, status.Convert(err).Details())

	// A message over max_recv_msg_size_mib: refused by gRPC, unread.
	td = githubRunTraces(t, "api", 7, now.Add(-time.Hour))
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("padding", strings.Repeat("x", 2<<20))
	err = exportGRPC(ctx, c, td)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err)

	assert.Empty(t, deploymentSeries(next), "nothing counted")
}

// A follower answers Unavailable with RetryInfo (the HTTP path's 503 with
// Retry-After), before it reads the spans.
func TestOTLPGRPCFollowerAnswersUnavailable(t *testing.T) {
	r := &doraReceiver{retryAfter: 3 * time.Second, logger: zap.NewNop()}
	s := &spansGRPC{r: r, provider: cicdspans.New(cicdspans.DefaultConfig())}
	_, err := s.Export(context.Background(), ptraceotlp.NewExportRequest())
	require.Equal(t, codes.Unavailable, status.Code(err), err)
	var delay time.Duration
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	assert.Equal(t, 3*time.Second, delay)
}
