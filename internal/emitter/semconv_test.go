package emitter

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// points lists every point of md as "metric|service|other attributes|value",
// the service read through get from the resource and point attributes.
func points(md pmetric.Metrics, get func(res, attrs pcommon.Map) (ns, name, env, cluster string)) []string {
	var out []string
	rms := md.ResourceMetrics()
	for ri := range rms.Len() {
		res := rms.At(ri).Resource().Attributes()
		sms := rms.At(ri).ScopeMetrics()
		for si := range sms.Len() {
			ms := sms.At(si).Metrics()
			for mi := range ms.Len() {
				m := ms.At(mi)
				add := func(attrs pcommon.Map, value string) {
					ns, name, env, cluster := get(res, attrs)
					rest := attrs.AsRaw()
					delete(rest, attrNamespace)
					delete(rest, attrDeployment)
					delete(rest, attrEnvironment)
					out = append(out, fmt.Sprintf("%s %s %s|%s/%s/%s@%s|%v|%s", m.Name(), m.Type(), m.Unit(), ns, name, env, cluster, rest, value))
				}
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for i := range m.Sum().DataPoints().Len() {
						dp := m.Sum().DataPoints().At(i)
						add(dp.Attributes(), fmt.Sprint(dp.IntValue(), dp.DoubleValue(), m.Sum().IsMonotonic(), m.Sum().AggregationTemporality(), dp.StartTimestamp(), dp.Timestamp()))
					}
				case pmetric.MetricTypeGauge:
					for i := range m.Gauge().DataPoints().Len() {
						dp := m.Gauge().DataPoints().At(i)
						add(dp.Attributes(), fmt.Sprint(dp.IntValue(), dp.DoubleValue(), dp.Timestamp()))
					}
				case pmetric.MetricTypeHistogram:
					for i := range m.Histogram().DataPoints().Len() {
						dp := m.Histogram().DataPoints().At(i)
						add(dp.Attributes(), fmt.Sprint(dp.Count(), dp.Sum(), dp.BucketCounts().AsRaw(), dp.ExplicitBounds().AsRaw(), dp.StartTimestamp(), dp.Timestamp()))
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func str(m pcommon.Map, k string) string {
	v, _ := m.Get(k)
	return v.AsString()
}

// TestSemanticConventions: every point of the Prometheus-contract emission
// is in the semantic-convention one with the same value, its service moved
// from the point attributes to its resource's k8s.namespace.name,
// service.name, deployment.environment.name and k8s.cluster.name; one
// resource per service.
func TestSemanticConventions(t *testing.T) {
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	md := em.Emit(scenario(t), start.Add(4*time.Hour))
	want := points(md, func(_, attrs pcommon.Map) (string, string, string, string) {
		return str(attrs, attrNamespace), str(attrs, attrDeployment), str(attrs, attrEnvironment), "eu-1"
	})
	require.NotEmpty(t, want)

	sc := SemanticConventions(md, "eu-1")
	got := points(sc, func(res, attrs pcommon.Map) (string, string, string, string) {
		for _, k := range []string{attrNamespace, attrDeployment, attrEnvironment} {
			_, ok := attrs.Get(k)
			assert.False(t, ok, "point attribute %s left on a point", k)
		}
		return str(res, SemconvNamespace), str(res, SemconvServiceName), str(res, SemconvEnvironment), str(res, SemconvCluster)
	})
	assert.Equal(t, want, got)

	// One resource per service (api in production, web in staging), each
	// with the receiver's scope.
	require.Equal(t, 2, sc.ResourceMetrics().Len())
	seen := map[string]bool{}
	for i := range sc.ResourceMetrics().Len() {
		rm := sc.ResourceMetrics().At(i)
		res := rm.Resource().Attributes()
		assert.Equal(t, 4, res.Len(), "%v", res.AsRaw())
		seen[str(res, SemconvServiceName)+"/"+str(res, SemconvEnvironment)] = true
		require.Equal(t, 1, rm.ScopeMetrics().Len())
		assert.Equal(t, metadata.ScopeName, rm.ScopeMetrics().At(0).Scope().Name())
	}
	assert.Equal(t, map[string]bool{"api/production": true, "web/staging": true}, seen)

	// Without a cluster, no k8s.cluster.name.
	md = em.Emit(scenario(t), start.Add(4*time.Hour))
	sc = SemanticConventions(md, "")
	_, ok := sc.ResourceMetrics().At(0).Resource().Attributes().Get(SemconvCluster)
	assert.False(t, ok)
}

// With semantic conventions, a series' cluster attribute becomes its
// resource's k8s.cluster.name (one resource per service and cluster); a
// series without one gets the receiver's cluster, when given.
func TestSemanticConventionsClusterAttribute(t *testing.T) {
	md := SemanticConventions(clusterStory(t, "eu-1", "us-1"), "fallback")
	clusters := map[string]bool{}
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		res := rms.At(i).Resource().Attributes()
		c, ok := res.Get(SemconvCluster)
		require.True(t, ok)
		clusters[c.Str()] = true
		ms := rms.At(i).ScopeMetrics().At(0).Metrics()
		for j := range ms.Len() {
			forEachPoint(ms.At(j), func(attrs pcommon.Map) {
				_, ok := attrs.Get(attrCluster)
				assert.False(t, ok, "the cluster moved to the resource")
			})
		}
	}
	assert.Equal(t, map[string]bool{"eu-1": true, "us-1": true}, clusters)

	md = SemanticConventions(clusterStory(t, ""), "fallback")
	for i := range md.ResourceMetrics().Len() {
		c, _ := md.ResourceMetrics().At(i).Resource().Attributes().Get(SemconvCluster)
		assert.Equal(t, "fallback", c.Str())
	}
}
