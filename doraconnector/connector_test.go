package doraconnector

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/otelcol-dora/dorareceiver"
	"github.com/otelcol-dora/dorareceiver/internal/spanshub"
)

// flakyMetrics is the receiver's metrics pipeline; it refuses while failing.
type flakyMetrics struct {
	consumertest.MetricsSink
	failing atomic.Bool
}

func (c *flakyMetrics) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if c.failing.Load() {
		return errors.New("exporter queue is full")
	}
	return c.MetricsSink.ConsumeMetrics(ctx, md)
}

// deployments is the last platform.deployments value the pipeline got for
// service.
func (c *flakyMetrics) deployments(service string) float64 {
	all := c.AllMetrics()
	for i := len(all) - 1; i >= 0; i-- {
		rms := all[i].ResourceMetrics()
		for j := range rms.Len() {
			sms := rms.At(j).ScopeMetrics()
			for k := range sms.Len() {
				ms := sms.At(k).Metrics()
				for l := range ms.Len() {
					if ms.At(l).Name() != "platform.deployments" {
						continue
					}
					dps := ms.At(l).Sum().DataPoints()
					for d := range dps.Len() {
						if v, _ := dps.At(d).Attributes().Get("deployment"); v.Str() == service {
							return float64(dps.At(d).IntValue())
						}
					}
				}
			}
		}
	}
	return 0
}

// newReceiver creates (not starts) a dora receiver with id and a webhook
// source on a free port, as a collector would for a metrics pipeline.
func newReceiver(t *testing.T, id component.ID, next *flakyMetrics) receiver.Metrics {
	t.Helper()
	f := dorareceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"webhooks": map[string]any{"endpoint": "127.0.0.1:0", "generic": map[string]any{"secret": "a-test-secret-of-some-length"}},
	}).Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	set := receivertest.NewNopSettings(f.Type())
	set.ID = id
	r, err := f.CreateMetrics(context.Background(), set, cfg, next)
	require.NoError(t, err)
	return r
}

func newConnector(t *testing.T, conf map[string]any) connector.Traces {
	t.Helper()
	f := NewFactory()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(conf).Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	set := connectortest.NewNopSettings(f.Type())
	set.ID = component.MustNewIDWithName("dora", "spans")
	c, err := f.CreateTracesToMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	return c
}

// deployTrace is one deploy task span of the CI that names the workload.
func deployTrace(trace byte, end time.Time, kv ...string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "search-ci")
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetName("rollout")
	s.SetTraceID(pcommon.TraceID{0xc0, trace})
	s.SetSpanID(pcommon.SpanID{0x5e, trace})
	s.SetParentSpanID(pcommon.SpanID{0x5e, 0xff})
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Minute)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	a := s.Attributes()
	a.PutStr("cicd.pipeline.task.name", "rollout")
	a.PutStr("cicd.pipeline.task.run.result", "success")
	a.PutStr("k8s.namespace.name", "search")
	a.PutStr("k8s.deployment.name", "search")
	for i := 0; i+1 < len(kv); i += 2 {
		a.PutStr(kv[i], kv[i+1])
	}
	return td
}

func TestConnectorFeedsTheReceiversEngine(t *testing.T) {
	next := &flakyMetrics{}
	id := component.MustNewIDWithName("dora", "feed")
	rcv := newReceiver(t, id, next)
	c := newConnector(t, map[string]any{"receiver": "dora/feed", "deployment_tasks": []any{"rollout"}})
	require.NoError(t, c.Start(context.Background(), componenttest.NewNopHost()))
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)

	// Created, not started yet (the collector's start order is not
	// ours): retryable, nothing counted.
	err := c.ConsumeTraces(ctx, deployTrace(1, now.Add(-time.Hour)))
	require.ErrorIs(t, err, spanshub.ErrNotRunning)
	assert.False(t, consumererror.IsPermanent(err))

	require.NoError(t, rcv.Start(ctx, componenttest.NewNopHost()))
	// Acknowledged only once the metrics carry it; a redelivery is
	// counted once.
	for range 2 {
		require.NoError(t, c.ConsumeTraces(ctx, deployTrace(1, now.Add(-time.Hour))))
		assert.EqualValues(t, 1, next.deployments("search"))
	}
	// Spans that are no deployment are consumed and count nothing.
	require.NoError(t, c.ConsumeTraces(ctx, deployTrace(9, now, "cicd.pipeline.task.name", "test")))
	require.NoError(t, c.ConsumeTraces(ctx, ptrace.NewTraces()))

	// The pipeline refuses: a retryable error, the sender's retry counts
	// once.
	next.failing.Store(true)
	err = c.ConsumeTraces(ctx, deployTrace(2, now.Add(-30*time.Minute)))
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err))
	assert.Contains(t, err.Error(), "the metrics pipeline refused the data")
	next.failing.Store(false)
	require.NoError(t, c.ConsumeTraces(ctx, deployTrace(2, now.Add(-30*time.Minute))))
	assert.EqualValues(t, 2, next.deployments("search"))

	// Bad input: permanent, with the gRPC status the otlp receiver answers.
	err = c.ConsumeTraces(ctx, deployTrace(3, now, "k8s.deployment.name", strings.Repeat("x", 300)))
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err))
	st, ok := status.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.InvalidArgument, st.Code())
	assert.Contains(t, st.Message(), "service: 300 bytes")

	// The receiver shut down: retryable again.
	require.NoError(t, rcv.Shutdown(ctx))
	err = c.ConsumeTraces(ctx, deployTrace(4, now))
	require.ErrorIs(t, err, spanshub.ErrNotRunning)
	require.NoError(t, c.Shutdown(ctx))
}

func TestConnectorNeedsItsReceiver(t *testing.T) {
	c := newConnector(t, map[string]any{"receiver": "dora/absent"})
	err := c.Start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `connectors::dora/spans: receiver: no dora receiver "dora/absent" is in a pipeline of this collector`)
}

func TestConnectorConfig(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	assert.Equal(t, component.MustNewID("dora"), cfg.Receiver)
	assert.Equal(t, "production", cfg.DefaultEnvironment)
	for name, tc := range map[string]struct {
		conf map[string]any
		err  string
	}{
		"another type":         {map[string]any{"receiver": "otlp"}, `receiver: "otlp" is not a dora receiver`},
		"an empty pattern":     {map[string]any{"deployment_tasks": []any{" "}}, "deployment_tasks[0]: empty pattern"},
		"no environment":       {map[string]any{"default_environment": ""}, "default_environment: must not be empty"},
		"a named dora is fine": {map[string]any{"receiver": "dora/ci"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			require.NoError(t, confmap.NewFromStringMap(tc.conf).Unmarshal(cfg))
			err := confmap.Validate(cfg)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}
