package dorareceiver

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-dora/dorareceiver/internal/metadata"
	"github.com/otelcol-dora/dorareceiver/internal/spanshub"
)

// NewFactory returns the factory of the dora receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		func() component.Config { return createDefaultConfig() },
		receiver.WithMetrics(createMetricsReceiver, metadata.MetricsStability),
		receiver.WithTraces(createTracesReceiver, metadata.TracesStability),
		receiver.WithLogs(createLogsReceiver, metadata.LogsStability),
	)
}

func createMetricsReceiver(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return sharedReceiver(cfg.(*Config), set, func(r *doraReceiver) { r.next = next })
}

// createTracesReceiver and createLogsReceiver give the same receiver as the
// metrics pipeline: it sends the trace and the log record of each
// production deployment (the explain setting).
func createTracesReceiver(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Traces) (receiver.Traces, error) {
	return sharedReceiver(cfg.(*Config), set, func(r *doraReceiver) { r.nextTraces = next })
}

func createLogsReceiver(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	return sharedReceiver(cfg.(*Config), set, func(r *doraReceiver) { r.nextLogs = next })
}

// receivers holds one receiver per configuration: the collector creates a
// receiver for each pipeline type that uses it, always with the same
// *Config, and all of them must share one engine (one set of sources, one
// webhook server). Like the OTLP receiver's shared component, the first
// Start starts it, the first Shutdown stops it and forgets it.
var receivers = struct {
	sync.Mutex
	m map[*Config]*shared
}{m: map[*Config]*shared{}}

// shared is the receiver every pipeline of one configuration gets.
type shared struct {
	*doraReceiver
	startOnce sync.Once
	stopOnce  sync.Once
}

func sharedReceiver(cfg *Config, set receiver.Settings, attach func(*doraReceiver)) (*shared, error) {
	receivers.Lock()
	defer receivers.Unlock()
	s, ok := receivers.m[cfg]
	if !ok {
		r, err := newDoraReceiver(cfg, set, nil)
		if err != nil {
			return nil, err
		}
		s = &shared{doraReceiver: r}
		receivers.m[cfg] = s
		// A dora connector naming this receiver may start now.
		spanshub.Created(set.ID)
	}
	attach(s.doraReceiver)
	return s, nil
}

func (s *shared) Start(ctx context.Context, host component.Host) error {
	var err error
	s.startOnce.Do(func() { err = s.doraReceiver.Start(ctx, host) })
	return err
}

func (s *shared) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		err = s.doraReceiver.Shutdown(ctx)
		receivers.Lock()
		delete(receivers.m, s.cfg)
		receivers.Unlock()
		spanshub.Forget(s.settings.ID)
	})
	return err
}
