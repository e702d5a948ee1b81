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

// clusterStory plays one commit, pushed once, and its rollout in each of
// clusters: the same Deployment, the same rollout ids (a Kubernetes
// source's ids are unique within its cluster only), then an incident of
// each cluster's own, opened and resolved.
func clusterStory(t *testing.T, clusters ...string) pmetric.Metrics {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.MinWindowCoverage = 0
	e, err := engine.New(cfg, start)
	require.NoError(t, err)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	apply := func(ev event.Event) {
		_, err := e.Apply(ev)
		require.NoError(t, err)
	}
	for _, c := range clusters {
		svc := api
		svc.Cluster = c
		apply(event.Event{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: "api-0/succeeded", Time: at(0), Service: svc, DeploymentID: "api-0", Revision: "0000001"})
	}
	apply(event.Event{Kind: event.ChangeCommitted, Source: event.SourceGitHub, ID: "push-1", Time: at(10 * time.Minute), Revision: "abc1234", ParentRevision: "0000001"})
	for i, c := range clusters {
		svc := api
		svc.Cluster = c
		// Cluster i ships the commit i*10 minutes later than the first.
		d := time.Duration(i) * 10 * time.Minute
		apply(event.Event{Kind: event.DeploymentStarted, Source: event.SourceKubernetes, ID: "api-1/started", Time: at(20*time.Minute + d), Service: svc, DeploymentID: "api-1", Revision: "abc1234"})
		apply(event.Event{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: "api-1/succeeded", Time: at(30*time.Minute + d), Service: svc, DeploymentID: "api-1", Revision: "abc1234"})
		apply(event.Event{Kind: event.IncidentOpened, Source: "alertmanager", ID: "inc-1/opened", Time: at(50*time.Minute + d), Service: svc, IncidentID: "inc-1"})
		apply(event.Event{Kind: event.IncidentResolved, Source: "alertmanager", ID: "inc-1/resolved", Time: at(55*time.Minute + d), Service: svc, IncidentID: "inc-1"})
	}
	em := New(metadata.NewDefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	return em.Emit(e.SnapshotAt(at(2*time.Hour)), at(2*time.Hour))
}

// A service in two clusters is two series of every metric, each with its
// cluster attribute: deployments counted per cluster (the same rollout ids
// in both are not redeliveries), lead time per cluster's production
// deployment of the one commit pushed.
func TestEmitClusterAttribute(t *testing.T) {
	md := clusterStory(t, "eu-1", "us-1")
	byCluster := map[string]map[string]int{} // metric -> cluster -> points
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := range ms.Len() {
		m := ms.At(i)
		forEachPoint(m, func(attrs pcommon.Map) {
			c, ok := attrs.Get("cluster")
			if !assert.True(t, ok, "%s: every point carries its cluster", m.Name()) {
				return
			}
			if byCluster[m.Name()] == nil {
				byCluster[m.Name()] = map[string]int{}
			}
			byCluster[m.Name()][c.Str()]++
		})
	}
	for _, name := range []string{
		"platform.deployments", "platform.deployment.failures", "platform.incidents",
		LeadTimeMetric, RecoveryTimeMetric, "platform.dora.deployment_frequency", "platform.dora.level",
	} {
		assert.Equal(t, byCluster[name]["eu-1"], byCluster[name]["us-1"], "%s: the same series in both clusters", name)
		assert.Positive(t, byCluster[name]["eu-1"], name)
		assert.Len(t, byCluster[name], 2, name)
	}

	deployments := sumPoints(t, md, "platform.deployments", "status", "success")
	assert.Equal(t, map[string]float64{"eu-1": 2, "us-1": 2}, deployments, "each cluster's two rollouts, counted in it")
	leadTime := map[string]float64{}
	m := findMetric(t, md, LeadTimeMetric)
	for i := range m.Histogram().DataPoints().Len() {
		dp := m.Histogram().DataPoints().At(i)
		c, _ := dp.Attributes().Get("cluster")
		require.EqualValues(t, 1, dp.Count(), "one lead time per cluster's production deployment")
		leadTime[c.Str()] = dp.Sum()
	}
	assert.Equal(t, map[string]float64{"eu-1": 20 * 60, "us-1": 30 * 60}, leadTime, "from the one push to each cluster's deployment")
}

// Without a cluster (a single-cluster installation) no point has a
// cluster attribute: the series are exactly those before clusters existed
// (the golden files of TestEmitGolden are unchanged).
func TestEmitNoClusterNoAttribute(t *testing.T) {
	md := clusterStory(t, "")
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	require.Positive(t, ms.Len())
	for i := range ms.Len() {
		m := ms.At(i)
		forEachPoint(m, func(attrs pcommon.Map) {
			_, ok := attrs.Get("cluster")
			assert.False(t, ok, "%s: no cluster attribute, not an empty one", m.Name())
		})
	}
	assert.Equal(t, map[string]float64{"": 2}, sumPoints(t, md, "platform.deployments", "status", "success"))
}

// sumPoints sums the values of metric's points whose attribute key is
// value, by cluster.
func sumPoints(t *testing.T, md pmetric.Metrics, metric, key, value string) map[string]float64 {
	t.Helper()
	m := findMetric(t, md, metric)
	out := map[string]float64{}
	dps := m.Sum().DataPoints()
	for i := range dps.Len() {
		dp := dps.At(i)
		if v, _ := dp.Attributes().Get(key); v.Str() != value {
			continue
		}
		c, _ := dp.Attributes().Get("cluster")
		out[c.Str()] += float64(dp.IntValue())
	}
	return out
}

func findMetric(t *testing.T, md pmetric.Metrics, name string) pmetric.Metric {
	t.Helper()
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := range ms.Len() {
		if ms.At(i).Name() == name {
			return ms.At(i)
		}
	}
	t.Fatalf("no metric %s", name)
	return pmetric.Metric{}
}
