package emitter

import (
	"slices"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// restricted returns a copy of full without the points of services not in
// only, except in the metrics named in whole, and without the metrics named
// in without; metrics left without points are removed, and an emission left
// without metrics has no resource.
func restricted(full pmetric.Metrics, only map[event.Service]struct{}, whole, without map[string]bool) pmetric.Metrics {
	out := pmetric.NewMetrics()
	full.CopyTo(out)
	drop := func(attrs pcommon.Map) bool {
		ns, _ := attrs.Get(attrNamespace)
		name, _ := attrs.Get(attrDeployment)
		env, _ := attrs.Get(attrEnvironment)
		_, ok := only[event.Service{Namespace: ns.Str(), Name: name.Str(), Environment: env.Str()}]
		return !ok
	}
	sms := out.ResourceMetrics().At(0).ScopeMetrics().At(0)
	sms.Metrics().RemoveIf(func(m pmetric.Metric) bool {
		if without[m.Name()] {
			return true
		}
		if whole[m.Name()] {
			return false
		}
		switch m.Type() {
		case pmetric.MetricTypeSum:
			m.Sum().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return drop(dp.Attributes()) })
			return m.Sum().DataPoints().Len() == 0
		case pmetric.MetricTypeGauge:
			m.Gauge().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return drop(dp.Attributes()) })
			return m.Gauge().DataPoints().Len() == 0
		case pmetric.MetricTypeHistogram:
			m.Histogram().DataPoints().RemoveIf(func(dp pmetric.HistogramDataPoint) bool { return drop(dp.Attributes()) })
			return m.Histogram().DataPoints().Len() == 0
		}
		return false
	})
	if sms.Metrics().Len() == 0 {
		return pmetric.NewMetrics()
	}
	return out
}

func services(svcs ...event.Service) map[event.Service]struct{} {
	out := map[event.Service]struct{}{}
	for _, s := range svcs {
		out[s] = struct{}{}
	}
	return out
}

// A filtered emission is the full emission restricted to the services
// asked for: the same metrics, points, attributes, timestamps and values,
// in the same order, and nothing of the other services; the level gauges
// the full emission has just rendered with the same values are left out.
func TestEmitServicesIsTheFullEmissionRestricted(t *testing.T) {
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	snap := scenario(t)
	now := start.Add(4 * time.Hour)
	full := em.Emit(snap, now)
	other := event.Service{Namespace: "shop", Name: "cart", Environment: "production"}
	for name, only := range map[string]map[event.Service]struct{}{
		"api":              services(api),
		"web":              services(web),
		"both":             services(api, web),
		"none":             services(),
		"unknown service":  services(other),
		"api and unknown":  services(api, other),
		"every service, 2": services(web, api, other),
	} {
		t.Run(name, func(t *testing.T) {
			got := em.EmitServices(snap, now, only)
			want := restricted(full, only, nil, map[string]bool{"platform.dora.level": true})
			require.NoError(t, pmetrictest.CompareMetrics(want, got), "compared with the full emission restricted to %v", only)
			assert.Equal(t, want.DataPointCount(), got.DataPointCount())
		})
	}
	// The restriction really drops something: api has every metric, web
	// only counters.
	assert.Less(t, em.EmitServices(snap, now, services(web)).DataPointCount(), em.EmitServices(snap, now, services(api)).DataPointCount())
	assert.Less(t, em.EmitServices(snap, now, services(api)).DataPointCount(), full.DataPointCount())
	// A nil set is no service, not every service.
	assert.Equal(t, 0, em.EmitServices(snap, now, nil).DataPointCount())
	// Emitting a subset leaves the next full emission whole.
	require.NoError(t, pmetrictest.CompareMetrics(full, em.Emit(snap, now)))
}

// A level that changed since the last emission is in the next filtered
// one, alone of its metric; once sent, it is left out again until it
// changes, and a full emission renders every level.
func TestEmitServicesSendsChangedLevels(t *testing.T) {
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	snap := scenario(t)
	now := start.Add(4 * time.Hour)
	full := em.Emit(snap, now)
	require.Positive(t, levelPoints(full))

	changed := snap
	changed.Rolling = append([]engine.RollingPoint(nil), snap.Rolling...)
	i := slices.IndexFunc(changed.Rolling, func(p engine.RollingPoint) bool { return p.Service == api && len(p.Levels) > 0 })
	require.GreaterOrEqual(t, i, 0, "the scenario has levels for api")
	changed.Rolling[i].Levels = append([]engine.LevelPoint(nil), changed.Rolling[i].Levels...)
	changed.Rolling[i].Levels[0].Level = (changed.Rolling[i].Levels[0].Level + 1) % 4

	got := em.EmitServices(changed, now, services(api))
	assert.Equal(t, 1, levelPoints(got), "only the changed level")
	forEachMetricNamed(got, "platform.dora.level", func(m pmetric.Metric) {
		dp := m.Gauge().DataPoints().At(0)
		assert.Equal(t, float64(changed.Rolling[i].Levels[0].Level), dp.DoubleValue())
		w, _ := dp.Attributes().Get("window")
		assert.Equal(t, changed.Rolling[i].Window, w.Str())
	})
	assert.Zero(t, levelPoints(em.EmitServices(changed, now, services(api))), "sent once")
	assert.Equal(t, levelPoints(full), levelPoints(em.Emit(changed, now)), "a full emission has every level")
}

func levelPoints(md pmetric.Metrics) int {
	n := 0
	forEachMetricNamed(md, "platform.dora.level", func(m pmetric.Metric) { n += m.Gauge().DataPoints().Len() })
	return n
}

// A metric whose service attributes are partly disabled merges several
// services into one point: a filtered emission renders it whole, since a
// point built from some of its services would carry a wrong total.
func TestEmitServicesRendersMergedMetricsWhole(t *testing.T) {
	cfg := metadata.NewDefaultMetricsBuilderConfig()
	cfg.Metrics.PlatformDeployments.EnabledAttributes = []metadata.PlatformDeploymentsMetricAttributeKey{metadata.PlatformDeploymentsMetricAttributeKeyNamespace, metadata.PlatformDeploymentsMetricAttributeKeyStatus}
	cfg.Metrics.PlatformDoraDeploymentFrequency.EnabledAttributes = []metadata.PlatformDoraDeploymentFrequencyMetricAttributeKey{metadata.PlatformDoraDeploymentFrequencyMetricAttributeKeyNamespace}
	em := New(cfg, receivertest.NewNopSettings(metadata.Type))
	snap := scenario(t)
	now := start.Add(4 * time.Hour)
	full := em.Emit(snap, now)
	whole := map[string]bool{"platform.deployments": true, "platform.dora.deployment_frequency": true}
	got := em.EmitServices(snap, now, services(web))
	require.NoError(t, pmetrictest.CompareMetrics(restricted(full, services(web), whole, map[string]bool{"platform.dora.level": true}), got))

	// shop's successes sum api's and web's, whichever service changed.
	var successes int64
	forEachMetricNamed(got, "platform.deployments", func(m pmetric.Metric) {
		for i := range m.Sum().DataPoints().Len() {
			dp := m.Sum().DataPoints().At(i)
			if s, _ := dp.Attributes().Get("status"); s.Str() == "success" {
				successes = dp.IntValue()
			}
		}
	})
	assert.Equal(t, int64(4), successes, "api's 3 successful deployments and web's 1")
}

func forEachMetricNamed(md pmetric.Metrics, name string, f func(pmetric.Metric)) {
	for i := range md.ResourceMetrics().Len() {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				if ms.At(k).Name() == name {
					f(ms.At(k))
				}
			}
		}
	}
}
