package dorareceiver

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// explainPipelines are the consumers of the pipelines that use the
// receiver; a nil one is a pipeline type that does not.
type explainPipelines struct {
	metrics *flakyConsumer
	traces  *consumertest.TracesSink
	logs    *consumertest.LogsSink
}

// startExplainReceiver creates the receiver for each pipeline, as the
// collector does (the same *Config each time), starts them all and returns
// the webhook URL of the generic source.
func startExplainReceiver(t *testing.T, p explainPipelines, configure func(*Config)) string {
	t.Helper()
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	cfg.Services = []ServiceMapping{{Repository: "acme/api", Namespace: "shop", Deployment: "api"}}
	if configure != nil {
		configure(cfg)
	}
	require.NoError(t, cfg.Validate())
	f := NewFactory()
	set := receivertest.NewNopSettings(metadata.Type)
	ctx := context.Background()
	var comps []component.Component
	if p.metrics != nil {
		c, err := f.CreateMetrics(ctx, set, cfg, p.metrics)
		require.NoError(t, err)
		comps = append(comps, c)
	}
	if p.traces != nil {
		c, err := f.CreateTraces(ctx, set, cfg, p.traces)
		require.NoError(t, err)
		comps = append(comps, c)
	}
	if p.logs != nil {
		c, err := f.CreateLogs(ctx, set, cfg, p.logs)
		require.NoError(t, err)
		comps = append(comps, c)
	}
	for _, c := range comps {
		assert.Same(t, comps[0], c, "one receiver for every pipeline of a config")
	}
	host := componenttest.NewNopHost()
	for _, c := range comps {
		require.NoError(t, c.Start(ctx, host))
	}
	t.Cleanup(func() {
		for _, c := range comps {
			require.NoError(t, c.Shutdown(ctx))
		}
		receivers.Lock()
		defer receivers.Unlock()
		assert.NotContains(t, receivers.m, cfg, "a receiver shut down is forgotten")
	})
	return "http://" + wc.ServerConfig.NetAddr.Endpoint + "/events"
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// deliverLeadTime posts, through the generic source: the first deployment
// of api (the start of its history, revision c0), two commits on top of it
// (c1 two hours ago, c2 one hour ago), and a deployment of c2 that started
// ten minutes ago and reached production now.
func deliverLeadTime(t *testing.T, url string, now time.Time) {
	t.Helper()
	deliveries := [][]byte{
		fmt.Appendf(nil, `{"type":"deployment","id":"api-0","time":%q,"repository":"acme/api","environment":"production","status":"success","deployment_id":"ci-0","revision":"c0"}`,
			rfc3339(now.Add(-3*time.Hour))),
		fmt.Appendf(nil, `[
			{"type":"change","id":"push-c1","time":%q,"repository":"acme/api","revision":"c1","parent_revision":"c0"},
			{"type":"change","id":"push-c2","time":%q,"repository":"acme/api","revision":"c2","parent_revision":"c1"}]`,
			rfc3339(now.Add(-2*time.Hour)), rfc3339(now.Add(-time.Hour))),
		fmt.Appendf(nil, `{"type":"deployment","id":"api-1-start","time":%q,"repository":"acme/api","environment":"production","status":"started","deployment_id":"ci-1","revision":"c2"}`,
			rfc3339(now.Add(-10*time.Minute))),
		fmt.Appendf(nil, `{"type":"deployment","id":"api-1","time":%q,"repository":"acme/api","environment":"production","status":"success","deployment_id":"ci-1","revision":"c2"}`,
			rfc3339(now)),
	}
	for i, body := range deliveries {
		r := post(t, url, "application/json", body, true)
		require.Equal(t, http.StatusOK, r.status, "delivery %d: %v", i, r.body)
	}
}

// rootOf returns the root span of the trace of deployment id in td.
func rootOf(td ptrace.Traces, id string) (ptrace.Span, ptrace.SpanSlice, bool) {
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		spans := td.ResourceSpans().At(i).ScopeSpans().At(0).Spans()
		for j := 0; j < spans.Len(); j++ {
			s := spans.At(j)
			if v, ok := s.Attributes().Get("deployment.id"); ok && v.Str() == id && s.ParentSpanID().IsEmpty() {
				return s, spans, true
			}
		}
	}
	return ptrace.Span{}, ptrace.SpanSlice{}, false
}

func allTraces(sink *consumertest.TracesSink) ptrace.Traces {
	out := ptrace.NewTraces()
	for _, td := range sink.AllTraces() {
		td.ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
	}
	return out
}

func allLogRecords(sink *consumertest.LogsSink) []plog.LogRecord {
	var out []plog.LogRecord
	for _, ld := range sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			recs := ld.ResourceLogs().At(i).ScopeLogs().At(0).LogRecords()
			for j := 0; j < recs.Len(); j++ {
				out = append(out, recs.At(j))
			}
		}
	}
	return out
}

func TestExplainDeploymentsAsTracesAndLogs(t *testing.T) {
	p := explainPipelines{metrics: &flakyConsumer{}, traces: new(consumertest.TracesSink), logs: new(consumertest.LogsSink)}
	url := startExplainReceiver(t, p, nil)
	now := time.Now().UTC().Truncate(time.Second)
	deliverLeadTime(t, url, now)

	// One trace and one log record per production deployment: the
	// baseline and ci-1.
	require.Eventually(t, func() bool {
		return len(allLogRecords(p.logs)) == 2 && p.traces.SpanCount() == 1+4
	}, 5*time.Second, 10*time.Millisecond)
	td := allTraces(p.traces)
	assert.Equal(t, 2, td.ResourceSpans().Len())

	root, spans, ok := rootOf(td, "ci-1")
	require.True(t, ok)
	type view struct {
		name, parent string
		start, end   time.Time
	}
	var got []view
	for i := 0; i < spans.Len(); i++ {
		s := spans.At(i)
		parent := ""
		if s.ParentSpanID() == root.SpanID() {
			parent = root.Name()
		}
		assert.Equal(t, root.TraceID(), s.TraceID())
		got = append(got, view{s.Name(), parent, s.StartTimestamp().AsTime().UTC(), s.EndTimestamp().AsTime().UTC()})
	}
	// The root runs from the first commit (c1) to production; the rollout
	// is the deploy stage (no change was reviewed, so no other stage is
	// known); each change runs from its commit to production.
	assert.Equal(t, []view{
		{"deploy api", "", now.Add(-2 * time.Hour), now},
		{"stage deploy", "deploy api", now.Add(-10 * time.Minute), now},
		{"change c2", "deploy api", now.Add(-time.Hour), now},
		{"change c1", "deploy api", now.Add(-2 * time.Hour), now},
	}, got)

	a := root.Attributes().AsRaw()
	assert.Equal(t, "succeeded", a["deployment.status"])
	assert.Equal(t, "generic", a["dora.deployment.source"])
	assert.Equal(t, "c2", a["vcs.ref.head.revision"])
	assert.Equal(t, "acme/api", a["vcs.repository.name"])
	assert.Equal(t, int64(2), a["dora.changes"])
	assert.Equal(t, 7200.0, a["dora.lead_time_seconds"])
	assert.Equal(t, 5400.0, a["dora.lead_time.median_seconds"])
	assert.Equal(t, 600.0, a["dora.stage.deploy_seconds"])
	res := td.ResourceSpans().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, map[string]any{
		"service.name": "api", "deployment.environment.name": "production",
		"k8s.namespace.name": "shop", "k8s.deployment.name": "api",
	}, res)

	var record plog.LogRecord
	for _, lr := range allLogRecords(p.logs) {
		if v, _ := lr.Attributes().Get("deployment.id"); v.Str() == "ci-1" {
			record = lr
		}
	}
	assert.Equal(t, "deployment of api to production: lead time p50 1h30m0s, max 2h0m0s, 2 changes; first change: deploy 10m0s", record.Body().Str())
	assert.Equal(t, plog.SeverityNumberInfo, record.SeverityNumber())
	assert.Equal(t, root.TraceID(), record.TraceID())
	assert.Equal(t, root.SpanID(), record.SpanID())
	assert.Equal(t, a, record.Attributes().AsRaw())

	// The metrics pipeline has the same deployments: one engine.
	v, ok := counterValue(latest(p.metrics), "platform.deployments", map[string]string{"deployment": "api", "status": "success"})
	require.True(t, ok)
	assert.EqualValues(t, 2, v)

	t.Run("a redelivery sends nothing again", func(t *testing.T) {
		r := post(t, url, "application/json", fmt.Appendf(nil, `{"type":"deployment","id":"api-1","time":%q,"repository":"acme/api","environment":"production","status":"success","deployment_id":"ci-1","revision":"c2"}`, rfc3339(now)), true)
		require.Equal(t, http.StatusOK, r.status)
		assert.EqualValues(t, 1, r.body["duplicates"])
		// A new deployment after it: its record comes after whatever the
		// redelivery would have sent.
		r = post(t, url, "application/json", fmt.Appendf(nil, `{"type":"deployment","id":"api-2","time":%q,"repository":"acme/api","environment":"production","status":"success","deployment_id":"ci-2","revision":"c3"}`, rfc3339(now.Add(time.Minute))), true)
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Eventually(t, func() bool { return len(allLogRecords(p.logs)) >= 3 }, 5*time.Second, 10*time.Millisecond)
		var ids []string
		for _, lr := range allLogRecords(p.logs) {
			v, _ := lr.Attributes().Get("deployment.id")
			ids = append(ids, v.Str())
		}
		assert.Equal(t, []string{"ci-1", "ci-2"}, ids[1:], "ci-1 once, then ci-2")
	})
}

func TestExplainPipelines(t *testing.T) {
	t.Run("without a metrics pipeline", func(t *testing.T) {
		p := explainPipelines{traces: new(consumertest.TracesSink)}
		url := startExplainReceiver(t, p, nil)
		deliverLeadTime(t, url, time.Now().Truncate(time.Second))
		require.Eventually(t, func() bool { return p.traces.SpanCount() == 5 }, 5*time.Second, 10*time.Millisecond)
	})
	t.Run("explain off", func(t *testing.T) {
		p := explainPipelines{metrics: &flakyConsumer{}, traces: new(consumertest.TracesSink), logs: new(consumertest.LogsSink)}
		url := startExplainReceiver(t, p, func(c *Config) { c.Explain = ExplainConfig{Traces: false, Logs: true} })
		deliverLeadTime(t, url, time.Now().Truncate(time.Second))
		require.Eventually(t, func() bool { return len(allLogRecords(p.logs)) == 2 }, 5*time.Second, 10*time.Millisecond)
		assert.Zero(t, p.traces.SpanCount())
	})
}

func TestExplainRefusedIsLogged(t *testing.T) {
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	cfg.Services = []ServiceMapping{{Repository: "acme/api", Namespace: "shop", Deployment: "api"}}
	core, logs := observer.New(zap.WarnLevel)
	set := receivertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	ctx := context.Background()
	metrics := &flakyConsumer{}
	m, err := NewFactory().CreateMetrics(ctx, set, cfg, metrics)
	require.NoError(t, err)
	tr, err := NewFactory().CreateTraces(ctx, set, cfg, consumertest.NewErr(fmt.Errorf("traces exporter down")))
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, tr.Start(ctx, componenttest.NewNopHost()))
	defer func() {
		require.NoError(t, tr.Shutdown(ctx))
		require.NoError(t, m.Shutdown(ctx))
	}()
	// Every delivery is answered 200: the traces pipeline is not the
	// metrics path.
	deliverLeadTime(t, "http://"+wc.ServerConfig.NetAddr.Endpoint+"/events", time.Now().Truncate(time.Second))
	v, _ := counterValue(latest(metrics), "platform.deployments", map[string]string{"deployment": "api"})
	assert.EqualValues(t, 2, v)
	require.Eventually(t, func() bool {
		return logs.FilterMessage("Pipeline refused deployment traces").Len() == 2
	}, 5*time.Second, 10*time.Millisecond)
}

func TestExplainConfig(t *testing.T) {
	assert.Equal(t, ExplainConfig{Traces: true, Logs: true}, createDefaultConfig().Explain, "on by default: sent when a traces or logs pipeline uses the receiver")
	cfg := createDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{"explain": map[string]any{"traces": false}}).Unmarshal(cfg))
	assert.Equal(t, ExplainConfig{Traces: false, Logs: true}, cfg.Explain)
}
