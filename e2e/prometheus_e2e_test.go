package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/scenario"
)

// doraStack is the whole loop of the e2e test with Prometheus: a control
// plane with a fake kubelet, otelcol-dora, a real Alertmanager that sends
// to the dora receiver, and a real Prometheus that scrapes otelcol-dora and
// an application, evaluates the shipped rules and an application alert.
type doraStack struct {
	cluster    *localcluster.Cluster
	prometheus string
	webhookURL string
	// errorRatio is the application's error ratio that its alert watches.
	errorRatio *atomic.Value
}

const appAlerts = `groups:
  - name: app
    rules:
      - alert: HighErrorRate
        expr: app_error_ratio > 0.05
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.service }} fails {{ $value }} of requests"
`

func startDoraStack(t *testing.T, ruleFiles ...string) *doraStack {
	return startDoraStackWith(t, nil, ruleFiles...)
}

// startDoraStackWith is startDoraStack with more collector configuration
// files merged over the stack's (more exporters, for example).
func startDoraStackWith(t *testing.T, extraConfigs []string, ruleFiles ...string) *doraStack {
	bin := collectorBinary(t)
	cluster := localcluster.StartForTest(t, localcluster.Options{FakeKubelet: true})
	dir := t.TempDir()

	// The application: one error-ratio series per service, as a service
	// mesh or an HTTP middleware would expose it.
	ratio := &atomic.Value{}
	ratio.Store(0.0)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE app_error_ratio gauge\napp_error_ratio{service=%q,namespace=%q} %v\n", "api", scenario.Namespace, ratio.Load())
	}))
	t.Cleanup(app.Close)

	webhookAddr := freeAddr(t)
	services := filepath.Join(dir, "services.yaml")
	require.NoError(t, os.WriteFile(services, []byte(`receivers:
  dora:
    services:
      - {repository: acme/api, namespace: shop, deployment: api}
      - {repository: acme/web, namespace: shop, deployment: web}
    # The story spans minutes: levels for its little-covered windows too.
    performance_levels: {min_window_coverage: 0}
`), 0o600))
	metricsURL := startCollectorWith(t, bin, cluster.Kubeconfig, append([]string{services}, extraConfigs...),
		"DORA_WEBHOOK_ENDPOINT="+webhookAddr,
		"DORA_GITHUB_SECRET="+githubSecret,
		"DORA_ALERTMANAGER_TOKEN="+alertmanagerToken,
	)

	// Alertmanager sends its v4 webhook to the dora receiver.
	amAddr := freeAddr(t)
	amConfig := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(amConfig, fmt.Appendf(nil, `route:
  receiver: dora
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: dora
    webhook_configs:
      - url: http://%s/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: %s
`, webhookAddr, alertmanagerToken), 0o600))
	startProcess(t, "alertmanager", toolBinary(t, "alertmanager"),
		"--config.file="+amConfig, "--web.listen-address="+amAddr,
		"--cluster.listen-address=", "--storage.path="+filepath.Join(dir, "am"))
	waitHTTP200(t, "http://"+amAddr+"/-/ready")

	alerts := filepath.Join(dir, "app-alerts.yaml")
	require.NoError(t, os.WriteFile(alerts, []byte(appAlerts), 0o600))
	prom := startPrometheus(t, prometheusConfig{
		Targets: map[string]string{
			"otelcol-dora": strings.TrimSuffix(strings.TrimPrefix(metricsURL, "http://"), "/metrics"),
			"app":          strings.TrimPrefix(app.URL, "http://"),
		},
		RuleFiles:    append(ruleFiles, alerts),
		Alertmanager: amAddr,
	})
	return &doraStack{cluster: cluster, prometheus: prom, webhookURL: "http://" + webhookAddr, errorRatio: ratio}
}

// waitQuery waits until expr has a sample with labels whose value is want.
func (s *doraStack) waitQuery(t *testing.T, expr string, labels map[string]string, want float64) {
	t.Helper()
	var last []promSample
	require.Eventually(t, func() bool {
		last = query(t, s.prometheus, expr)
		v, ok := valueOf(last, labels)
		return ok && v == want
	}, 90*time.Second, 250*time.Millisecond, "%s%v never became %v; last: %v", expr, labels, want, last)
}

// TestDoraThroughPrometheus plays the delivery scenario against the real
// otelcol-dora, reads its numbers back through a real Prometheus, then
// closes the monitoring loop: an application alert fires through a real
// Alertmanager into the receiver as an incident on the last deployment,
// and its resolution ends the recovery time.
func TestDoraThroughPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary, the control plane and Prometheus; run through make test")
	}
	stack := startDoraStack(t, shippedRules(t)...)
	want, err := scenario.Run(context.Background(), scenario.Env{
		Client:             stack.cluster.Client(),
		WebhookURL:         stack.webhookURL,
		GitHubSecret:       githubSecret,
		SetPodsBecomeReady: stack.cluster.SetPodsBecomeReady,
		Logf:               t.Logf,
	})
	require.NoError(t, err)

	for svc, byStatus := range want.Deployments {
		for status, n := range byStatus {
			stack.waitQuery(t, `platform_deployments_total{environment="production"}`,
				map[string]string{"namespace": scenario.Namespace, "deployment": svc, "status": status}, float64(n))
		}
	}
	for svc, byReason := range want.Failures {
		for reason, n := range byReason {
			stack.waitQuery(t, `platform_deployment_failures_total`,
				map[string]string{"deployment": svc, "reason": reason}, float64(n))
		}
	}
	for svc, leads := range want.LeadTimes {
		stack.waitQuery(t, `platform_lead_time_seconds_count`, map[string]string{"deployment": svc}, float64(len(leads)))
		sum, ok := valueOf(query(t, stack.prometheus, `platform_lead_time_seconds_sum`), map[string]string{"deployment": svc})
		require.True(t, ok)
		var expected float64
		for _, l := range leads {
			expected += l.Seconds()
		}
		// The rollout follows the push by a few seconds.
		assert.InDelta(t, expected, sum, 120, "lead time of %s", svc)
	}
	for svc, n := range want.Recoveries {
		stack.waitQuery(t, `platform_recovery_time_seconds_count`, map[string]string{"deployment": svc}, float64(n))
	}

	// The monitoring loop: the application starts failing.
	stack.errorRatio.Store(0.2)
	stack.waitQuery(t, `ALERTS{alertname="HighErrorRate",alertstate="firing"}`, map[string]string{"service": "api"}, 1)
	stack.waitQuery(t, `platform_deployment_failures_total`, map[string]string{"deployment": "api", "reason": "incident"}, 1)
	// It recovers: the alert resolves, Alertmanager sends the resolution.
	stack.errorRatio.Store(0.0)
	stack.waitQuery(t, `platform_recovery_time_seconds_count`, map[string]string{"deployment": "api"}, float64(want.Recoveries["api"]+1))

	checkShippedQueries(t, stack, want)

	// The receiver's own rolling values and levels, on its Prometheus
	// endpoint (METRICS.md: rolling values): api shipped 3 successful
	// deployments today, one of them rework (the rollback), and 2 of its 4
	// deployments failed (the 3.0 rollout; the rollback, by the incident).
	stack.waitQuery(t, `platform_dora_deployment_frequency_per_day{window="1d"}`, map[string]string{"deployment": "api"}, 3)
	stack.waitQuery(t, `platform_dora_deployment_frequency_per_day{window="1d"}`, map[string]string{"deployment": "web"}, 2)
	stack.waitQuery(t, `platform_dora_rework_rate_ratio{window="7d"}`, map[string]string{"deployment": "api"}, 1.0/3)
	stack.waitQuery(t, `platform_dora_change_failure_rate_ratio{window="7d"}`, map[string]string{"deployment": "api"}, 0.5)
	// The story is minutes old: a sliver of the week is observed.
	coverage, ok := valueOf(query(t, stack.prometheus, `platform_dora_window_coverage_ratio{window="7d"}`), map[string]string{"deployment": "api"})
	if assert.True(t, ok, "window coverage of api") {
		assert.True(t, coverage > 0 && coverage < 0.01, "7d coverage %v: minutes of a week", coverage)
	}
	for _, metric := range []string{"deployment_frequency", "lead_time", "change_failure_rate", "recovery_time", "overall"} {
		levels := query(t, stack.prometheus, `platform_dora_level{window="7d",tier_set="dora-2024",metric="`+metric+`"}`)
		level, ok := valueOf(levels, map[string]string{"deployment": "api"})
		if assert.True(t, ok, "level of %s for api: %v", metric, levels) {
			assert.True(t, level >= 1 && level <= 4, "level of %s is %v, not 1 (low) to 4 (elite)", metric, level)
		}
	}
	// Change failure rate 50% is "low" by every tier set.
	stack.waitQuery(t, `platform_dora_level{window="7d",tier_set="dora-2024",metric="change_failure_rate"}`, map[string]string{"deployment": "api"}, 1)
}
