package emitter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// Every metric, counters, gauges and histograms, carries the team of a
// service that has one, and no team attribute at all for a service without
// (Prometheus would drop an empty label anyway; OTLP backends see none).
func TestEmitTeamAttribute(t *testing.T) {
	// Two hours of history: levels only with min_window_coverage 0.
	cfg := engine.DefaultConfig()
	cfg.MinWindowCoverage = 0
	e, err := engine.New(cfg, start)
	require.NoError(t, err)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	for _, ev := range []event.Event{
		{Kind: event.DeploymentSucceeded, Time: at(0), Service: api, DeploymentID: "api-0", Revision: "0000001", Team: "payments"},
		{Kind: event.ChangeCommitted, Time: at(10 * time.Minute), Revision: "abc1234", ParentRevision: "0000001"},
		{Kind: event.DeploymentStarted, Time: at(20 * time.Minute), Service: api, DeploymentID: "api-1", Revision: "abc1234"},
		{Kind: event.DeploymentSucceeded, Time: at(30 * time.Minute), Service: api, DeploymentID: "api-1", Revision: "abc1234"},
		{Kind: event.IncidentOpened, Time: at(40 * time.Minute), Service: api, IncidentID: "inc-1"},
		// While the incident is open: rework.
		{Kind: event.DeploymentSucceeded, Time: at(45 * time.Minute), Service: api, DeploymentID: "api-2"},
		{Kind: event.IncidentResolved, Time: at(50 * time.Minute), Service: api, IncidentID: "inc-1"},
		{Kind: event.DeploymentSucceeded, Time: at(time.Hour), Service: web, DeploymentID: "web-1"},
	} {
		_, err := e.Apply(ev)
		require.NoError(t, err)
	}
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	md := em.Emit(e.SnapshotAt(at(2*time.Hour)), at(2*time.Hour))

	seen := map[string]bool{}
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := range ms.Len() {
		m := ms.At(i)
		forEachPoint(m, func(attrs pcommon.Map) {
			name, _ := attrs.Get("deployment")
			team, ok := attrs.Get("team")
			switch name.Str() {
			case "api":
				if assert.True(t, ok, "%s: api has a team", m.Name()) {
					assert.Equal(t, "payments", team.Str(), m.Name())
				}
				seen[m.Name()] = true
			default:
				assert.False(t, ok, "%s: %s has no team attribute, not an empty one", m.Name(), name.Str())
			}
		})
	}
	for _, want := range []string{
		"platform.deployments", "platform.deployment.failures", "platform.deployments.rework", "platform.incidents",
		LeadTimeMetric, LeadTimeStageMetric, RecoveryTimeMetric,
		"platform.dora.deployment_frequency", "platform.dora.lead_time.median", "platform.dora.change_failure_rate",
		"platform.dora.recovery_time.median", "platform.dora.level", "platform.dora.window_coverage",
	} {
		assert.True(t, seen[want], "%s carries api's team", want)
	}
}

func forEachPoint(m pmetric.Metric, f func(pcommon.Map)) {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		for i := range m.Sum().DataPoints().Len() {
			f(m.Sum().DataPoints().At(i).Attributes())
		}
	case pmetric.MetricTypeGauge:
		for i := range m.Gauge().DataPoints().Len() {
			f(m.Gauge().DataPoints().At(i).Attributes())
		}
	case pmetric.MetricTypeHistogram:
		for i := range m.Histogram().DataPoints().Len() {
			f(m.Histogram().DataPoints().At(i).Attributes())
		}
	}
}
