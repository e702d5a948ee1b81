package doraconnector

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/doraconnector/internal/metadata"
	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
	"github.com/otelcol-dora/dorareceiver/internal/spanshub"
)

// NewFactory returns the factory of the dora connector (traces to
// metrics). The DORA metrics leave through the metrics pipelines of the
// dora receiver it names, not through its own output: the collector wants
// the connector in a metrics pipeline, where it adds nothing (list it in the
// receiver's own pipeline).
func NewFactory() connector.Factory {
	return connector.NewFactory(
		metadata.Type,
		createDefaultConfig,
		connector.WithTracesToMetrics(createTracesToMetrics, metadata.TracesToMetricsStability),
	)
}

func createTracesToMetrics(_ context.Context, set connector.Settings, cfg component.Config, _ consumer.Metrics) (connector.Traces, error) {
	c := cfg.(*Config)
	return &doraConnector{cfg: c, logger: set.Logger, id: set.ID, provider: cicdspans.New(c.spansConfig())}, nil
}

type doraConnector struct {
	cfg    *Config
	logger *zap.Logger
	id     component.ID
	// provider classifies the spans; it remembers the service of recent
	// traces across exports, as the otlp source's does.
	provider *cicdspans.Provider
}

// Start refuses to start when no dora receiver of the configured ID is in
// the collector: the collector creates every component before it starts
// any, so the receiver is known here whatever the start order.
func (c *doraConnector) Start(context.Context, component.Host) error {
	if !spanshub.Known(c.cfg.Receiver) {
		return fmt.Errorf("connectors::%s: receiver: no dora receiver %q is in a pipeline of this collector (add it to a metrics pipeline, or name the right one)", c.id, c.cfg.Receiver)
	}
	c.logger.Info("dora connector hands its spans to the dora receiver", zap.String("receiver", c.cfg.Receiver.String()))
	return nil
}

func (c *doraConnector) Shutdown(context.Context) error { return nil }

func (c *doraConnector) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// ConsumeTraces returns once the deployments among td's spans reached the
// receiver's metrics pipeline (nil, also when none is a deployment), or
// with the receiver's refusal: a permanent error carrying its gRPC status
// (InvalidArgument naming the field, ResourceExhausted) for spans that will
// never be counted, a retryable one when the receiver does not run, does
// not lead, its storage failed or its pipeline refused the metrics. The
// receivers upstream answer their senders with it (the otlp receiver:
// the status as it is; Unavailable, 503, for a retryable error), so a
// sender's retry delivers again what was not counted, and what was is
// recognized and counted once.
func (c *doraConnector) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if td.SpanCount() == 0 {
		return nil
	}
	e, err := spanshub.Lookup(c.cfg.Receiver)
	if err != nil {
		return err
	}
	return e.IngestTraces(ctx, c.provider, td)
}
