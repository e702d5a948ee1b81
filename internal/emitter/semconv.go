package emitter

import (
	"cmp"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// OpenTelemetry semantic-convention resource attributes that the
// semantic_conventions setting sets in place of the Prometheus contract's
// point attributes (namespace, deployment, environment).
const (
	SemconvServiceName = "service.name"
	SemconvEnvironment = "deployment.environment.name"
	SemconvNamespace   = "k8s.namespace.name"
	SemconvCluster     = "k8s.cluster.name"
)

// serviceKey is a point's service: the values of its service attributes.
type serviceKey struct{ namespace, deployment, environment, cluster string }

// SemanticConventions returns md with one resource per service: each point's
// namespace, deployment and environment attributes become the resource
// attributes k8s.namespace.name, service.name and
// deployment.environment.name, and the point's cluster attribute, else
// cluster when set, k8s.cluster.name.
// This is what vendor backends key services on; the Prometheus contract
// (point attributes, one resource) is md unchanged. A point without those
// attributes (a metric that aggregates them away) keeps the others under a
// resource with only the cluster. Metric metadata, scopes and the order of
// points within a service are kept. It takes the service attributes off
// md's points: md is not to be used after.
func SemanticConventions(md pmetric.Metrics, cluster string) pmetric.Metrics {
	out := pmetric.NewMetrics()
	// For each service, its resource's scope metrics by input scope index
	// and its metrics by (scope, metric) index.
	type dest struct {
		rm      pmetric.ResourceMetrics
		scopes  map[int]pmetric.ScopeMetrics
		metrics map[[2]int]pmetric.Metric
	}
	dests := map[serviceKey]*dest{}
	var order []serviceKey
	destOf := func(k serviceKey) *dest {
		if d, ok := dests[k]; ok {
			return d
		}
		rm := out.ResourceMetrics().AppendEmpty()
		attrs := rm.Resource().Attributes()
		if k.deployment != "" {
			attrs.PutStr(SemconvServiceName, k.deployment)
		}
		if k.namespace != "" {
			attrs.PutStr(SemconvNamespace, k.namespace)
		}
		if k.environment != "" {
			attrs.PutStr(SemconvEnvironment, k.environment)
		}
		if c := cmp.Or(k.cluster, cluster); c != "" {
			attrs.PutStr(SemconvCluster, c)
		}
		d := &dest{rm: rm, scopes: map[int]pmetric.ScopeMetrics{}, metrics: map[[2]int]pmetric.Metric{}}
		dests[k] = d
		order = append(order, k)
		return d
	}
	// target returns the metric of the service of attrs that mirrors the
	// input metric m (scope si, metric mi), creating it on first use, and
	// removes the service attributes from attrs.
	target := func(attrs pcommon.Map, sm pmetric.ScopeMetrics, si int, m pmetric.Metric, mi int) pmetric.Metric {
		var k serviceKey
		if v, ok := attrs.Get(attrNamespace); ok {
			k.namespace = v.Str()
		}
		if v, ok := attrs.Get(attrDeployment); ok {
			k.deployment = v.Str()
		}
		if v, ok := attrs.Get(attrEnvironment); ok {
			k.environment = v.Str()
		}
		if v, ok := attrs.Get(attrCluster); ok {
			k.cluster = v.Str()
		}
		attrs.Remove(attrNamespace)
		attrs.Remove(attrDeployment)
		attrs.Remove(attrEnvironment)
		attrs.Remove(attrCluster)
		d := destOf(k)
		if tm, ok := d.metrics[[2]int{si, mi}]; ok {
			return tm
		}
		ts, ok := d.scopes[si]
		if !ok {
			ts = d.rm.ScopeMetrics().AppendEmpty()
			sm.Scope().CopyTo(ts.Scope())
			ts.SetSchemaUrl(sm.SchemaUrl())
			d.scopes[si] = ts
		}
		tm := ts.Metrics().AppendEmpty()
		tm.SetName(m.Name())
		tm.SetDescription(m.Description())
		tm.SetUnit(m.Unit())
		switch m.Type() {
		case pmetric.MetricTypeSum:
			s := tm.SetEmptySum()
			s.SetIsMonotonic(m.Sum().IsMonotonic())
			s.SetAggregationTemporality(m.Sum().AggregationTemporality())
		case pmetric.MetricTypeGauge:
			tm.SetEmptyGauge()
		case pmetric.MetricTypeHistogram:
			tm.SetEmptyHistogram().SetAggregationTemporality(m.Histogram().AggregationTemporality())
		}
		d.metrics[[2]int{si, mi}] = tm
		return tm
	}

	rms := md.ResourceMetrics()
	for ri := range rms.Len() {
		sms := rms.At(ri).ScopeMetrics()
		for si := range sms.Len() {
			sm := sms.At(si)
			ms := sm.Metrics()
			for mi := range ms.Len() {
				m := ms.At(mi)
				switch m.Type() {
				case pmetric.MetricTypeSum:
					dps := m.Sum().DataPoints()
					for i := range dps.Len() {
						dp := dps.At(i)
						dp.CopyTo(target(dp.Attributes(), sm, si, m, mi).Sum().DataPoints().AppendEmpty())
					}
				case pmetric.MetricTypeGauge:
					dps := m.Gauge().DataPoints()
					for i := range dps.Len() {
						dp := dps.At(i)
						dp.CopyTo(target(dp.Attributes(), sm, si, m, mi).Gauge().DataPoints().AppendEmpty())
					}
				case pmetric.MetricTypeHistogram:
					dps := m.Histogram().DataPoints()
					for i := range dps.Len() {
						dp := dps.At(i)
						dp.CopyTo(target(dp.Attributes(), sm, si, m, mi).Histogram().DataPoints().AppendEmpty())
					}
				}
			}
		}
	}
	return out
}
