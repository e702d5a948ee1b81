package e2e

import (
	"encoding/json"
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
)

// TestIncidentChainPrometheusAlertmanager runs the whole incident chain
// with real parts: a real Prometheus scrapes a test target, an alerting
// rule fires on its gauge, the real Alertmanager routes the alert to
// otelcol-dora, the target recovers and the rule resolves. The incident
// opens and resolves at the times the alert carries and joins the latest
// production deployment before it (sent first through the generic
// source), as METRICS.md's attribution rule says. The first notification
// loses its answer (503): Alertmanager's own retry delivers it again and it
// is counted once.
func TestIncidentChainPrometheusAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary, Prometheus and Alertmanager; run through make test")
	}
	base, metricsURL := sendersCollector(t)
	proxy := startLostAnswerProxy(t, base, 1)
	dir := t.TempDir()

	// Two production deployments of shop/api: the incident must join the
	// later one.
	now := time.Now().UTC().Truncate(time.Second)
	first, second := now.Add(-2*time.Hour), now.Add(-5*time.Minute)
	for i, at := range []time.Time{first, second} {
		r := sendGeneric(t, base, fmt.Appendf(nil, `{"type":"deployment","id":"platform/api/deploy/%d","time":%q,"service":"api","namespace":"shop","environment":"production","status":"success","deployment_id":"%d"}`,
			i+1, at.Format(time.RFC3339), i+1))
		require.Equal(t, http.StatusOK, r.status, r.body)
	}
	svc := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production"}
	waitMetric(t, metricsURL, "platform_deployments_total", with(svc, "status", "success"), 2)

	// The application: an error ratio that its alert watches.
	var ratio atomic.Value
	ratio.Store(0.0)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE app_error_ratio gauge\napp_error_ratio{service=\"api\",namespace=\"shop\"} %v\n", ratio.Load())
	}))
	t.Cleanup(app.Close)

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
      - url: %s/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: %s
`, proxy.URL, alertmanagerToken), 0o600))
	startProcess(t, "alertmanager", toolBinary(t, "alertmanager"),
		"--config.file="+amConfig, "--web.listen-address="+amAddr,
		"--cluster.listen-address=", "--storage.path="+filepath.Join(dir, "am"))
	waitHTTP200(t, "http://"+amAddr+"/-/ready")

	rules := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(rules, []byte(appAlerts), 0o600))
	prom := startPrometheus(t, prometheusConfig{
		Targets:      map[string]string{"app": strings.TrimPrefix(app.URL, "http://")},
		RuleFiles:    []string{rules},
		Alertmanager: amAddr,
	})

	// The application fails: the rule fires, Alertmanager notifies.
	ratio.Store(0.2)
	var activeAt time.Time
	require.Eventually(t, func() bool {
		activeAt = firingSince(t, prom, "HighErrorRate")
		return !activeAt.IsZero()
	}, 30*time.Second, 200*time.Millisecond, "the rule never fired")
	waitMetric(t, metricsURL, "platform_deployment_failures_total", with(svc, "reason", "incident"), 1)

	// It recovers: the rule resolves, Alertmanager sends the resolution.
	ratio.Store(0.0)
	waitMetric(t, metricsURL, "platform_recovery_time_seconds_count", svc, 1)

	// What Alertmanager sent: the firing (its answer lost, then its retry)
	// and the resolution, of one alert.
	var firing, resolved []exchange
	for _, e := range proxy.exchanges() {
		assert.Equal(t, "Bearer "+alertmanagerToken, e.Header.Get("Authorization"))
		assert.Equal(t, http.StatusOK, e.Upstream, "%s", e.UpstreamBody)
		switch a := notifiedAlert(t, e.Body); a.Status {
		case "firing":
			firing = append(firing, e)
		case "resolved":
			resolved = append(resolved, e)
		}
	}
	require.GreaterOrEqual(t, len(firing), 2, "the lost answer and Alertmanager's retry:\n%s", proxy)
	require.NotEmpty(t, resolved, "%s", proxy)
	assert.Equal(t, http.StatusServiceUnavailable, firing[0].Answered)
	assertAnswer(t, firing[0].UpstreamBody, 1, 0)
	assertAnswer(t, firing[1].UpstreamBody, 0, 1)
	opened, closed := notifiedAlert(t, firing[0].Body), notifiedAlert(t, resolved[0].Body)
	assert.Equal(t, opened.Fingerprint, closed.Fingerprint)
	// Prometheus sends its times in milliseconds.
	assert.True(t, opened.StartsAt.Equal(activeAt.Truncate(time.Millisecond)), "the alert starts when the rule became active (%v), not %v", activeAt, opened.StartsAt)
	assert.True(t, closed.StartsAt.Equal(opened.StartsAt))
	require.True(t, closed.EndsAt.After(opened.StartsAt))

	m := scrape(t, metricsURL)
	assert.Equal(t, 2.0, m.sum("platform_deployments_total", svc), "still two deployments")
	assert.Equal(t, 1.0, m.sum("platform_incidents_total", with(svc, "attributed", "true")), "one incident, attributed")
	assert.Equal(t, 0.0, m.sum("platform_incidents_total", with(svc, "attributed", "false")))
	assert.Equal(t, 1.0, m.sum("platform_deployment_failures_total", svc), "one change failure")
	assert.Equal(t, 1.0, m.sum("platform_recovery_time_seconds_count", svc))
	// The second deployment failed (the incident it caused) and recovered
	// when the alert resolved: from its finish to the alert's endsAt, at
	// the times Prometheus set, not when the notifications arrived.
	assert.InDelta(t, closed.EndsAt.Sub(second).Seconds(), m.sum("platform_recovery_time_seconds_sum", svc), 0.001)
}

// amAlert is the part of an Alertmanager notification's alert the test
// reads.
type amAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// notifiedAlert returns the one alert of an Alertmanager notification.
func notifiedAlert(t *testing.T, body []byte) amAlert {
	t.Helper()
	var n struct {
		Version string    `json:"version"`
		Alerts  []amAlert `json:"alerts"`
	}
	require.NoError(t, json.Unmarshal(body, &n), "%s", body)
	require.Equal(t, "4", n.Version)
	require.Len(t, n.Alerts, 1, "%s", body)
	return n.Alerts[0]
}

// firingSince returns when Prometheus's alert name became active, if it is
// firing now.
func firingSince(t *testing.T, prom, name string) time.Time {
	t.Helper()
	resp, err := http.Get(prom + "/api/v1/alerts")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels   map[string]string `json:"labels"`
				State    string            `json:"state"`
				ActiveAt time.Time         `json:"activeAt"`
			} `json:"alerts"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name && a.State == "firing" {
			return a.ActiveAt
		}
	}
	return time.Time{}
}
