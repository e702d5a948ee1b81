package dorareceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
)

// The cluster setting names the cluster of the receiver's own Kubernetes
// sources' events (their series carry it); a webhook's deployment of the
// same service names none, and its series carry no cluster attribute.
func TestClusterSettingNamesOwnEvents(t *testing.T) {
	ext := persisttest.NewExtension()
	rcv := startStoredReceiver(t, extensionHost{storageID: ext}, func(cfg *Config) { cfg.Cluster = "eu-1" })
	r := rcv.rcv.(*shared).doraReceiver
	now := time.Now()
	// The single-cluster form's Kubernetes sink (multicluster.go).
	require.NoError(t, r.kubernetesSink(nil, r.clusterSink(""))(event.Event{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: "shop/api/1/deployment_succeeded",
		Time: now, Service: event.Service{Namespace: "shop", Name: "api", Environment: "production"}, DeploymentID: "shop/api/1"}))
	post(t, rcv.url, "application/json", deploymentJSON("a", "success", now), true)

	byCluster := func() map[string]int64 {
		out := map[string]int64{}
		for _, md := range rcv.next.AllMetrics() {
			forEachMetric(md, "platform.deployments", func(m pmetric.Metric) {
				for i := range m.Sum().DataPoints().Len() {
					dp := m.Sum().DataPoints().At(i)
					c, ok := dp.Attributes().Get("cluster")
					k := "(none)"
					if ok {
						k = c.Str()
					}
					out[k] = max(out[k], dp.IntValue())
				}
			})
		}
		return out
	}
	require.Eventually(t, func() bool { return len(byCluster()) == 2 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, map[string]int64{"eu-1": 1, "(none)": 1}, byCluster())
}
