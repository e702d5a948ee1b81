package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/cardinality"
	"github.com/otelcol-dora/dorareceiver/internal/emitter"
	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// newCore returns a core without storage that emits into next.
func newCore(t *testing.T, next *consumertest.MetricsSink, refuse error) *Core {
	t.Helper()
	set := receivertest.NewNopSettings(metadata.Type)
	eng, err := engine.New(engine.DefaultConfig(), time.Now().Add(-time.Hour))
	require.NoError(t, err)
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{ReceiverID: set.ID, Transport: "internal", ReceiverCreateSettings: set})
	require.NoError(t, err)
	var sink consumer.Metrics = next
	if refuse != nil {
		sink = consumertest.NewErr(refuse)
	}
	c := New(Settings{
		Logger: zap.NewNop(), Engine: eng, Emitter: emitter.New(metadata.NewDefaultMetricsBuilderConfig(), set),
		Next: sink, ObsReport: obs, EmitInterval: time.Hour, SnapshotEvery: 100,
		Limits:  Limits{Series: cardinality.Limits{Services: 10, EnvironmentsPerService: 10, Reasons: 10}},
		Resolve: func(*event.Event) {},
		Check:   func(ev *event.Event, _ time.Time) error { return engine.Validate(*ev) },
		Closing: make(chan struct{}),
	})
	t.Cleanup(func() { _ = c.Stop(context.Background(), false) })
	return c
}

func deployment(id string) []event.Event {
	svc := event.Service{Namespace: "shop", Name: "api", Environment: "production"}
	at := time.Now().Add(-time.Minute)
	return []event.Event{
		{Kind: event.DeploymentStarted, Source: "github", ID: id + "/s", Time: at, Service: svc, DeploymentID: id, Revision: "abc"},
		{Kind: event.DeploymentSucceeded, Source: "github", ID: id + "/ok", Time: at.Add(time.Second), Service: svc, DeploymentID: id, Revision: "abc"},
	}
}

// TestIngestAcknowledgesAfterTheEmission: a delivery is answered once the
// pipeline has its change; before Start and after Stop the core refuses
// with ErrNotLeader, and a refused emission is ErrPipelineRefused.
func TestIngestAcknowledgesAfterTheEmission(t *testing.T) {
	next := new(consumertest.MetricsSink)
	c := newCore(t, next, nil)
	_, err := c.Ingest(context.Background(), deployment("d1"))
	require.ErrorIs(t, err, ErrNotLeader, "not started")

	c.Start()
	res, err := c.Ingest(context.Background(), deployment("d1"))
	require.NoError(t, err)
	assert.Equal(t, Result{Accepted: 2}, res)
	assert.NotEmpty(t, next.AllMetrics(), "answered only after the pipeline took the change")

	res, err = c.Ingest(context.Background(), deployment("d1"))
	require.NoError(t, err)
	assert.Equal(t, Result{Duplicates: 2}, res)

	_, err = c.Ingest(context.Background(), []event.Event{{Source: "github"}})
	require.ErrorIs(t, err, ErrInvalidEvent)

	require.NoError(t, c.Stop(context.Background(), false))
	_, err = c.Ingest(context.Background(), deployment("d2"))
	require.ErrorIs(t, err, ErrNotLeader, "stopped")
}

func TestIngestPipelineRefused(t *testing.T) {
	c := newCore(t, nil, errors.New("queue full"))
	c.Start()
	_, err := c.Ingest(context.Background(), deployment("d1"))
	require.ErrorIs(t, err, ErrPipelineRefused)
}
