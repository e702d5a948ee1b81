package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// flakyMetricsBackend is an OTLP/HTTP metrics backend that refuses (503)
// the first export carrying data and takes the others: the metrics
// pipeline of otelcol-dora (an otlphttp exporter without queue or retry)
// refuses the first emission, so the receiver refuses the spans that made
// it, and the sender's own retry must deliver them again.
type flakyMetricsBackend struct {
	url      string
	refused  atomic.Int32
	accepted atomic.Int32
}

func startFlakyMetricsBackend(t *testing.T) *flakyMetricsBackend {
	t.Helper()
	b := &flakyMetricsBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil || req.Metrics().DataPointCount() == 0 {
			w.WriteHeader(http.StatusOK)
			return
		}
		if b.refused.CompareAndSwap(0, 1) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b.accepted.Add(1)
		resp, _ := pmetricotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	b.url = "http://" + ln.Addr().String()
	return b
}

// exportersYAML are the exporters of the metrics pipeline: Prometheus,
// and the flaky backend without queue or retry, so that its refusal
// reaches the receiver.
func exportersYAML(promAddr string, backend *flakyMetricsBackend) string {
	return fmt.Sprintf(`exporters:
  prometheus:
    endpoint: %s
    without_scope_info: true
  otlp_http/flaky:
    endpoint: %s
    compression: none
    retry_on_failure:
      enabled: false
    sending_queue:
      enabled: false
`, promAddr, backend.url)
}

// sdkErrors collects what the OpenTelemetry SDK reports to its global
// error handler (a batch that could not be exported, retries included).
type sdkErrors struct {
	mu   sync.Mutex
	errs []error
}

func (e *sdkErrors) Handle(err error) {
	e.mu.Lock()
	e.errs = append(e.errs, err)
	e.mu.Unlock()
}

func (e *sdkErrors) all() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...)
}

// emitDeploymentTrace records, with the SDK's batching span processor, a
// CI run of deploy-search and its rollout task naming the Kubernetes
// workload search/search, both ended at end, and flushes it.
func emitDeploymentTrace(t *testing.T, exp sdktrace.SpanExporter, end time.Time) {
	t.Helper()
	handler := &sdkErrors{}
	otel.SetErrorHandler(handler)
	res := resource.NewSchemaless(attribute.String("service.name", "search-ci"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)))
	tracer := tp.Tracer("ci")
	ctx, run := tracer.Start(context.Background(), "deploy-search", trace.WithTimestamp(end.Add(-5*time.Minute)),
		trace.WithAttributes(attribute.String("cicd.pipeline.name", "deploy-search"), attribute.String("cicd.pipeline.run.id", "7001")))
	_, task := tracer.Start(ctx, "rollout", trace.WithTimestamp(end.Add(-3*time.Minute)), trace.WithAttributes(
		attribute.String("cicd.pipeline.task.name", "rollout"), attribute.String("cicd.pipeline.task.type", "deploy"),
		attribute.String("k8s.namespace.name", "search"), attribute.String("k8s.deployment.name", "search")))
	task.SetAttributes(attribute.String("cicd.pipeline.task.run.result", "success"))
	task.End(trace.WithTimestamp(end.Add(-time.Minute)))
	run.SetAttributes(attribute.String("cicd.pipeline.result", "success"))
	run.End(trace.WithTimestamp(end))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, tp.ForceFlush(ctx), "the SDK's retry delivers the export")
	require.NoError(t, tp.Shutdown(ctx))
	assert.Empty(t, handler.all(), "the SDK reported no lost export")
}

// sdkRetry retries quickly, within the test's patience.
var (
	grpcRetry = otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: 30 * time.Second}
	httpRetry = otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: 30 * time.Second}
)

// TestOTLPGRPCSDKEndToEnd: CI/CD spans exported by the OpenTelemetry Go
// SDK's otlptracegrpc exporter (batching, gzip, bearer token, retry) to
// the gRPC server of the otlp source of the real otelcol-dora. The
// metrics pipeline refuses the first emission, the receiver answers
// Unavailable, the SDK's retry delivers the export, and the deployment is
// counted once.
func TestOTLPGRPCSDKEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	backend := startFlakyMetricsBackend(t)
	webhookAddr, grpcAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    emit_interval: 10m
    webhooks:
      endpoint: %s
      otlp:
        deployment_pipelines: ["deploy*"]
        auth:
          authenticator: bearertokenauth/ci
        grpc:
          endpoint: %s
%sextensions:
  health_check:
    endpoint: %s
  bearertokenauth/ci:
    token: %s
service:
  extensions: [health_check, bearertokenauth/ci]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus, otlp_http/flaky]
`, webhookAddr, grpcAddr, exportersYAML(promAddr, backend), healthAddr, otlpToken), 0o600))
	proc := runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	metricsURL := "http://" + promAddr + "/metrics"

	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithCompressor("gzip"), otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + otlpToken}),
		otlptracegrpc.WithRetry(grpcRetry))
	require.NoError(t, err)
	emitDeploymentTrace(t, exp, time.Now().Add(-time.Hour))

	assert.EqualValues(t, 1, backend.refused.Load(), "the pipeline refused one emission")
	// The retry waited for an emission of its own, which the backend took:
	// the export was answered only once its metrics were through.
	assert.Positive(t, backend.accepted.Load(), "the retry's emission reached the backend")
	assert.Contains(t, proc.log(), "OTLP/gRPC export not accepted; the sender should retry")
	waitMetric(t, metricsURL, "platform_deployments_total", map[string]string{"namespace": "search", "deployment": "search", "status": "success"}, 1)
	assert.Equal(t, 1.0, scrape(t, metricsURL).sum("platform_deployments_total", nil), "counted once, one series")

	// Without the token: Unauthenticated, which the SDK does not retry.
	bad, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithRetry(grpcRetry))
	require.NoError(t, err)
	handler := &sdkErrors{}
	otel.SetErrorHandler(handler)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(bad))
	_, s := tp.Tracer("ci").Start(context.Background(), "deploy-other", trace.WithAttributes(attribute.String("cicd.pipeline.result", "success")))
	s.End()
	require.NoError(t, tp.Shutdown(context.Background()))
	errs := handler.all()
	require.NotEmpty(t, errs)
	assert.Contains(t, errs[0].Error(), "Unauthenticated")
	assert.Equal(t, 1.0, scrape(t, metricsURL).sum("platform_deployments_total", nil), "nothing more counted")
}

// TestDoraConnectorEndToEnd: the collector's own otlp receiver takes the
// spans (OTLP/HTTP, from the SDK's otlptracehttp exporter) and a traces
// pipeline hands them to the dora connector, which feeds the dora receiver
// in-process. The metrics pipeline refuses the first emission: the
// connector returns a retryable error, the otlp receiver answers 503, the
// SDK retries, and the deployment is counted once.
func TestDoraConnectorEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	backend := startFlakyMetricsBackend(t)
	webhookAddr, otlpAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    emit_interval: 10m
    webhooks:
      endpoint: %s
      generic:
        secret: %s
  otlp:
    protocols:
      http:
        endpoint: %s
connectors:
  dora/spans:
    receiver: dora
    deployment_pipelines: ["deploy*"]
%sextensions:
  health_check:
    endpoint: %s
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces/cicd:
      receivers: [otlp]
      exporters: [dora/spans]
    metrics:
      receivers: [dora, dora/spans]
      exporters: [prometheus, otlp_http/flaky]
`, webhookAddr, genericSecret, otlpAddr, exportersYAML(promAddr, backend), healthAddr), 0o600))
	proc := runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	metricsURL := "http://" + promAddr + "/metrics"

	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(otlpAddr), otlptracehttp.WithInsecure(),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression), otlptracehttp.WithRetry(httpRetry))
	require.NoError(t, err)
	emitDeploymentTrace(t, exp, time.Now().Add(-time.Hour))

	assert.EqualValues(t, 1, backend.refused.Load(), "the pipeline refused one emission")
	assert.Positive(t, backend.accepted.Load(), "the retry's emission reached the backend")
	assert.True(t, strings.Contains(proc.log(), "dora connector hands its spans to the dora receiver"), "the connector started")
	waitMetric(t, metricsURL, "platform_deployments_total", map[string]string{"namespace": "search", "deployment": "search", "status": "success"}, 1)
	assert.Equal(t, 1.0, scrape(t, metricsURL).sum("platform_deployments_total", nil), "counted once, one series")
}
