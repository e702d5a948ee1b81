package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestOTelSDKExportsCICDSpans exports the spans of two deploy pipeline
// runs with the OpenTelemetry Go SDK, as a CI plugin built on it does: a
// batch span processor, the otlptracehttp exporter with gzip compression
// and its retry, to the otlp path of the real otelcol-dora. The export's
// answer is lost once (503): the exporter's retry sends the batch again and
// every span is counted once.
func TestOTelSDKExportsCICDSpans(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	base, metricsURL := sendersCollector(t)
	proxy := startLostAnswerProxy(t, base, 1)
	ctx := context.Background()

	exporter, err := otlptracehttp.New(ctx,
		otlptracehttp.WithEndpointURL(proxy.URL+"/v1/traces"),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
		otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + otlpToken}),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
			Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: 30 * time.Second,
		}),
	)
	require.NoError(t, err)
	// The CI system's resource: the repository it builds
	// (docs/sources/otlp-spans.md: the services mapping resolves it).
	res := resource.NewSchemaless(
		attribute.String("service.name", "ci"),
		attribute.String("vcs.repository.url.full", "https://github.com/acme/api"),
	)
	// One batch for both runs: the processor exports when flushed.
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithBatcher(exporter, sdktrace.WithBatchTimeout(time.Hour), sdktrace.WithMaxExportBatchSize(512)))
	t.Cleanup(func() { _ = tp.Shutdown(ctx) })
	tracer := tp.Tracer("e2e/ci")

	now := time.Now().UTC().Truncate(time.Millisecond)
	const (
		brokenSHA = "1111111111111111111111111111111111111111"
		fixSHA    = "2222222222222222222222222222222222222222"
	)
	failedAt, fixedAt := now.Add(-20*time.Minute), now.Add(-10*time.Minute)
	committedAt := now.Add(-70 * time.Minute).Truncate(time.Second)

	// A pipeline run "deploy" with a build and a deploy task, the CI/CD
	// semantic conventions' attributes on each.
	run := func(runID, sha, result string, end time.Time) {
		start := end.Add(-5 * time.Minute)
		rctx, root := tracer.Start(ctx, "deploy", trace.WithTimestamp(start), trace.WithAttributes(
			attribute.String("cicd.pipeline.name", "deploy"),
			attribute.String("cicd.pipeline.run.id", runID),
			attribute.String("cicd.pipeline.result", result),
			attribute.String("vcs.ref.head.revision", sha),
			attribute.String("deployment.environment.name", "production"),
		))
		_, build := tracer.Start(rctx, "build", trace.WithTimestamp(start), trace.WithAttributes(
			attribute.String("cicd.pipeline.task.name", "build"),
			attribute.String("cicd.pipeline.task.type", "build"),
			attribute.String("cicd.pipeline.task.run.result", "success"),
		))
		build.End(trace.WithTimestamp(start.Add(2 * time.Minute)))
		_, deploy := tracer.Start(rctx, "rollout", trace.WithTimestamp(start.Add(2*time.Minute)), trace.WithAttributes(
			attribute.String("cicd.pipeline.task.name", "rollout"),
			attribute.String("cicd.pipeline.task.type", "deploy"),
			attribute.String("cicd.pipeline.task.run.result", result),
			// The revision on the deploy task too: the task's span ends and
			// is exported before the run's, and the receiver takes a
			// deployment's revision from the first of its spans.
			attribute.String("vcs.ref.head.revision", sha),
		))
		deploy.End(trace.WithTimestamp(end))
		root.End(trace.WithTimestamp(end))
	}
	// The fix's commit, pushed before the CI run (commits come from the
	// push webhooks; here the generic form): the receiver saw it, so the
	// deployment that ships it has a lead time.
	r := sendGeneric(t, base, fmt.Appendf(nil, `{"type":"change","id":"acme/api/commit/%s","time":%q,"repository":"acme/api","revision":%q}`,
		fixSHA, committedAt.Format(time.RFC3339), fixSHA))
	require.Equal(t, http.StatusOK, r.status, r.body)

	run("701", brokenSHA, "failure", failedAt)
	run("702", fixSHA, "success", fixedAt)
	require.NoError(t, tp.ForceFlush(ctx), "the export, retried\n%s", proxy)

	ex := proxy.exchanges()
	require.Len(t, ex, 2, "one batch, its lost answer and the exporter's retry:\n%s", proxy)
	for _, e := range ex {
		assert.Equal(t, "/v1/traces", e.Path)
		assert.Equal(t, "gzip", e.Header.Get("Content-Encoding"), "the exporter compressed it")
		assert.Equal(t, "application/x-protobuf", e.Header.Get("Content-Type"))
		assert.Equal(t, http.StatusOK, e.Upstream, "%s", e.UpstreamBody)
	}
	assert.Equal(t, http.StatusServiceUnavailable, ex[0].Answered)
	assert.True(t, bytes.Equal(ex[0].Body, ex[1].Body), "the retry sends the same batch")

	// The failed run is a change failure, the next one its recovery and a
	// lead time from the commit. Counted once although applied twice.
	svc := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production"}
	m := scrape(t, metricsURL)
	assert.Equal(t, 1.0, m.sum("platform_deployments_total", with(svc, "status", "success")))
	assert.Equal(t, 1.0, m.sum("platform_deployments_total", with(svc, "status", "failure")))
	assert.Equal(t, 1.0, m.sum("platform_deployment_failures_total", with(svc, "reason", "failure")))
	assert.Equal(t, 1.0, m.sum("platform_recovery_time_seconds_count", svc))
	assert.InDelta(t, fixedAt.Sub(failedAt).Seconds(), m.sum("platform_recovery_time_seconds_sum", svc), 0.001)
	assert.Equal(t, 1.0, m.sum("platform_lead_time_seconds_count", svc))
	assert.InDelta(t, fixedAt.Sub(committedAt).Seconds(), m.sum("platform_lead_time_seconds_sum", svc), 0.001)
}
