package dorareceiver

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// serviceDeployment is a generic deployment of shop/<service> in production.
func serviceDeployment(id, service string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"deployment","id":%q,"time":%q,"namespace":"shop","service":%q,"environment":"production","status":"success","revision":%q}`,
		id, at.UTC().Format(time.RFC3339), service, "rev-"+id)
}

// servicesIn lists the deployment attribute of every point of md.
func servicesIn(md pmetric.Metrics) []string {
	seen := map[string]bool{}
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				forEachPointAttrs(ms.At(k), func(attrs map[string]any) {
					seen[fmt.Sprint(attrs["deployment"])] = true
				})
			}
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func forEachPointAttrs(m pmetric.Metric, f func(map[string]any)) {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		for i := range m.Sum().DataPoints().Len() {
			f(m.Sum().DataPoints().At(i).Attributes().AsRaw())
		}
	case pmetric.MetricTypeGauge:
		for i := range m.Gauge().DataPoints().Len() {
			f(m.Gauge().DataPoints().At(i).Attributes().AsRaw())
		}
	case pmetric.MetricTypeHistogram:
		for i := range m.Histogram().DataPoints().Len() {
			f(m.Histogram().DataPoints().At(i).Attributes().AsRaw())
		}
	}
}

// startTwoServices starts a receiver emitting every interval and deploys
// shop/api and shop/web once, in one delivery; it returns the events URL.
func startTwoServices(t *testing.T, next *flakyConsumer, interval time.Duration, now time.Time) string {
	t.Helper()
	url := startWebhookReceiver(t, next, func(cfg *Config) { cfg.EmitInterval = interval }) + "/events"
	body := fmt.Appendf(nil, "[%s,%s]", serviceDeployment("api-0", "api", now.Add(-time.Hour)), serviceDeployment("web-0", "web", now.Add(-time.Hour)))
	r := post(t, url, "application/json", body, true)
	require.Equal(t, http.StatusOK, r.status, r.body)
	return url
}

// A burst of deliveries to one service, after a full emission, sends that
// service's series only; their values are the whole cumulative state.
func TestChangeEmitsChangedServicesOnly(t *testing.T) {
	next := &flakyConsumer{}
	now := time.Now().Truncate(time.Second)
	url := startTwoServices(t, next, time.Hour, now)
	all := next.AllMetrics()
	require.NotEmpty(t, all)
	assert.Equal(t, []string{"api", "web"}, servicesIn(all[len(all)-1]), "the first emission has both")

	before := len(next.AllMetrics())
	for i := range 5 {
		r := post(t, url, "application/json", serviceDeployment(fmt.Sprintf("api-%d", i+1), "api", now.Add(time.Duration(i-30)*time.Minute)), true)
		require.Equal(t, http.StatusOK, r.status, r.body)
	}
	all = next.AllMetrics()
	require.Greater(t, len(all), before, "the burst was emitted")
	for i, md := range all[before:] {
		assert.Equal(t, []string{"api"}, servicesIn(md), "emission %d after the burst", i)
	}
	v, ok := counterValue(all[len(all)-1], "platform.deployments", map[string]string{"deployment": "api", "status": "success"})
	assert.True(t, ok)
	assert.EqualValues(t, 6, v, "api's cumulative total, not the burst's")
}

// The periodic emission sends every service, changed or not.
func TestIntervalEmitsEveryService(t *testing.T) {
	next := &flakyConsumer{}
	now := time.Now().Truncate(time.Second)
	url := startTwoServices(t, next, 300*time.Millisecond, now)
	r := post(t, url, "application/json", serviceDeployment("api-1", "api", now.Add(-time.Minute)), true)
	require.Equal(t, http.StatusOK, r.status, r.body)
	// No delivery comes after this: any later emission is the ticker's.
	after := len(next.AllMetrics())
	require.Eventually(t, func() bool { return len(next.AllMetrics()) > after }, 10*time.Second, 20*time.Millisecond, "the ticker emits")
	md := next.AllMetrics()[after]
	assert.Equal(t, []string{"api", "web"}, servicesIn(md))
	v, _ := counterValue(md, "platform.deployments", map[string]string{"deployment": "web", "status": "success"})
	assert.EqualValues(t, 1, v)
}

// After the pipeline refused an emission, the next one is full, whatever
// triggers it; the one after that is back to the changed services.
func TestEmissionAfterRefusalIsFull(t *testing.T) {
	next := &flakyConsumer{}
	now := time.Now().Truncate(time.Second)
	url := startTwoServices(t, next, time.Hour, now)

	next.failing.Store(true)
	refused := serviceDeployment("api-1", "api", now.Add(-time.Minute))
	r := post(t, url, "application/json", refused, true)
	require.Equal(t, http.StatusServiceUnavailable, r.status, r.body)
	next.failing.Store(false)

	before := len(next.AllMetrics())
	r = post(t, url, "application/json", refused, true)
	require.Equal(t, http.StatusOK, r.status, "the redelivery waits for a fresh emission: %v", r.body)
	all := next.AllMetrics()
	require.Greater(t, len(all), before)
	assert.Equal(t, []string{"api", "web"}, servicesIn(all[before]), "the emission after the refused one is full")
	v, _ := counterValue(all[len(all)-1], "platform.deployments", map[string]string{"deployment": "api", "status": "success"})
	assert.EqualValues(t, 2, v, "the refused deployment counted once")

	before = len(all)
	r = post(t, url, "application/json", serviceDeployment("web-1", "web", now.Add(-time.Minute)), true)
	require.Equal(t, http.StatusOK, r.status, r.body)
	all = next.AllMetrics()
	require.Greater(t, len(all), before)
	assert.Equal(t, []string{"web"}, servicesIn(all[len(all)-1]), "then the changed services again")
}

// semantic_conventions: the receiver sends each service under a resource
// of its own with the OpenTelemetry names, none left on the points; off (the
// default) the points keep the Prometheus contract's attributes.
func TestSemanticConventionsResources(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("enabled=", on), func(t *testing.T) {
			next := &flakyConsumer{}
			url := startWebhookReceiver(t, next, func(cfg *Config) {
				cfg.SemanticConventions = SemanticConventionsConfig{Enabled: on}
				if on {
					cfg.SemanticConventions.Cluster = "eu-1"
				}
			}) + "/events"
			body := fmt.Appendf(nil, "[%s,%s]", serviceDeployment("api-0", "api", now.Add(-time.Hour)), serviceDeployment("web-0", "web", now.Add(-time.Hour)))
			require.Equal(t, http.StatusOK, post(t, url, "application/json", body, true).status)
			all := next.AllMetrics()
			require.NotEmpty(t, all)
			md := all[len(all)-1]
			var resources []map[string]any
			pointHasService := false
			for i := range md.ResourceMetrics().Len() {
				rm := md.ResourceMetrics().At(i)
				resources = append(resources, rm.Resource().Attributes().AsRaw())
				ms := rm.ScopeMetrics().At(0).Metrics()
				for k := range ms.Len() {
					forEachPointAttrs(ms.At(k), func(attrs map[string]any) {
						_, ns := attrs["namespace"]
						_, d := attrs["deployment"]
						_, env := attrs["environment"]
						pointHasService = pointHasService || ns || d || env
					})
				}
			}
			if !on {
				assert.True(t, pointHasService)
				assert.Equal(t, []map[string]any{{}}, resources)
				return
			}
			assert.False(t, pointHasService)
			sort.Slice(resources, func(i, j int) bool { return fmt.Sprint(resources[i]) < fmt.Sprint(resources[j]) })
			assert.Equal(t, []map[string]any{
				{"service.name": "api", "k8s.namespace.name": "shop", "deployment.environment.name": "production", "k8s.cluster.name": "eu-1"},
				{"service.name": "web", "k8s.namespace.name": "shop", "deployment.environment.name": "production", "k8s.cluster.name": "eu-1"},
			}, resources)
		})
	}
}
