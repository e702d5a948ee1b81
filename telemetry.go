package dorareceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// The receiver's own telemetry, beside the collector's standard receiver
// counters (otelcol_receiver_accepted/refused_metric_points): counters of
// why deliveries were refused and of the logged events set aside at
// start. They go wherever the collector's service::telemetry::metrics
// sends its own metrics (by default its Prometheus endpoint on :8888),
// through the component's TelemetrySettings.
const (
	// metricRefused counts refused deliveries by source and reason.
	metricRefused = "otelcol_dora_refused_deliveries"
	// metricSetAside counts logged events set aside at start.
	metricSetAside = "otelcol_dora_set_aside_events"
	// metricFolded counts values folded into the overflow value, by source
	// and attribute (series.go).
	metricFolded = "otelcol_dora_folded_values"
	// metricWithoutService counts incidents that name no service, by
	// source: not counted in the DORA metrics, never guessed.
	metricWithoutService = "otelcol_dora_incidents_without_service"
	// metricApproximate counts applied events whose time only approximates
	// what they stand for (a Bitbucket Data Center push without commit
	// times: the push's time for the commit's), by source.
	metricApproximate = "otelcol_dora_approximate_times"
	// The history import's progress (history.go, docs/history.md), by
	// source: events new to the engine, the share of the window's items
	// read (when the system tells how many there are), the items read, and
	// the API requests made with their HTTP status code.
	metricHistoryImported = "otelcol_dora_history_imported_events"
	metricHistoryProgress = "otelcol_dora_history_progress"
	metricHistoryItems    = "otelcol_dora_history_items"
	metricHistoryRequests = "otelcol_dora_history_requests"
)

type telemetry struct {
	refused metric.Int64Counter
	setAsid metric.Int64Counter
	folded  metric.Int64Counter
	// noService counts incidents without a service.
	noService metric.Int64Counter
	approx    metric.Int64Counter

	historyImported metric.Int64Counter
	historyProgress metric.Float64Gauge
	historyItems    metric.Int64Gauge
	historyRequests metric.Int64Counter
}

func newTelemetry(set component.TelemetrySettings) (*telemetry, error) {
	mp := set.MeterProvider
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter("github.com/otelcol-dora/dorareceiver")
	refused, err := m.Int64Counter(metricRefused,
		metric.WithDescription("Webhook deliveries and OTLP exports the dora receiver refused (4xx), by source and reason."),
		metric.WithUnit("{deliveries}"))
	if err != nil {
		return nil, err
	}
	setAside, err := m.Int64Counter(metricSetAside,
		metric.WithDescription("Events of the saved log that could not be replayed at start and were set aside in the storage."),
		metric.WithUnit("{events}"))
	if err != nil {
		return nil, err
	}
	folded, err := m.Int64Counter(metricFolded,
		metric.WithDescription("Values of event attributes (service, environment, reason) the dora receiver folded into _overflow past a limit, by source and attribute."),
		metric.WithUnit("{values}"))
	if err != nil {
		return nil, err
	}
	noService, err := m.Int64Counter(metricWithoutService,
		metric.WithDescription("Incidents and alerts the dora receiver did not count because they name no service (none of the configured fields or labels, or no services entry), by source. A redelivery counts again."),
		metric.WithUnit("{incidents}"))
	if err != nil {
		return nil, err
	}
	approx, err := m.Int64Counter(metricApproximate,
		metric.WithDescription("Events the dora receiver applied whose time only approximates what they stand for (a push's time for its commit's), by source."),
		metric.WithUnit("{events}"))
	if err != nil {
		return nil, err
	}
	t := &telemetry{refused: refused, setAsid: setAside, folded: folded, noService: noService, approx: approx}
	if t.historyImported, err = m.Int64Counter(metricHistoryImported,
		metric.WithDescription("Events the history import applied that were new to the engine, by source."),
		metric.WithUnit("{events}")); err != nil {
		return nil, err
	}
	if t.historyProgress, err = m.Float64Gauge(metricHistoryProgress,
		metric.WithDescription("Share (0 to 1) of the history window's items (incidents, deployments, ...) the import has read, by source; 1 once finished. Absent while the system does not tell how many there are."),
		metric.WithUnit("1")); err != nil {
		return nil, err
	}
	if t.historyItems, err = m.Int64Gauge(metricHistoryItems,
		metric.WithDescription("Items (incidents, deployments, ...) of the history window the import has read so far, by source."),
		metric.WithUnit("{items}")); err != nil {
		return nil, err
	}
	if t.historyRequests, err = m.Int64Counter(metricHistoryRequests,
		metric.WithDescription("API requests the history import made, by source and HTTP status code (0: no answer)."),
		metric.WithUnit("{requests}")); err != nil {
		return nil, err
	}
	return t, nil
}

// historyProgressed records a source's import progress.
func (t *telemetry) historyProgressed(ctx context.Context, source string, done, total, applied int, finished bool) {
	attrs := metric.WithAttributes(attribute.String("source", source))
	if applied > 0 {
		t.historyImported.Add(ctx, int64(applied), attrs)
	}
	t.historyItems.Record(ctx, int64(done), attrs)
	switch {
	case finished:
		t.historyProgress.Record(ctx, 1, attrs)
	case total > 0:
		t.historyProgress.Record(ctx, min(1, float64(done)/float64(total)), attrs)
	}
}

// historyRequest counts one API request of the history import.
func (t *telemetry) historyRequest(ctx context.Context, source string, code int) {
	t.historyRequests.Add(ctx, 1, metric.WithAttributes(attribute.String("source", source), attribute.Int("code", code)))
}

// incidentsWithoutService counts n incidents of source that name no service.
func (t *telemetry) incidentsWithoutService(ctx context.Context, source string, n int) {
	t.noService.Add(ctx, int64(n), metric.WithAttributes(attribute.String("source", source)))
}

// approximateTimes counts applied events whose times are approximations.
func (t *telemetry) approximateTimes(ctx context.Context, source string, n int) {
	t.approx.Add(ctx, int64(n), metric.WithAttributes(attribute.String("source", source)))
}

// refusedDelivery counts one refused delivery.
func (t *telemetry) refusedDelivery(ctx context.Context, source, reason string) {
	t.refused.Add(ctx, 1, metric.WithAttributes(attribute.String("source", source), attribute.String("reason", reason)))
}

func (t *telemetry) setAside(ctx context.Context, n int) {
	if n > 0 {
		t.setAsid.Add(ctx, int64(n))
	}
}

// foldedValue counts one value folded into the overflow value.
func (t *telemetry) foldedValue(ctx context.Context, source, attr string) {
	t.folded.Add(ctx, 1, metric.WithAttributes(attribute.String("source", source), attribute.String("attribute", attr)))
}
