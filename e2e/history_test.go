package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/history/historytest"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const historyToken = "e2e-history-token"

// historyCollector runs otelcol-dora with file_storage on dir, the
// generic and PagerDuty sources importing their history from api (a
// month: historytest.Month), the trigger endpoint, and the Prometheus
// exporter on promAddr (kept across restarts, so one Prometheus scrapes
// every process).
func historyCollector(t *testing.T, bin, dir, promAddr string, api *historytest.Server) (base, ownURL string, p *collectorProcess) {
	t.Helper()
	webhookAddr, healthAddr := freeAddr(t), freeAddr(t)
	ownPort := freePort(t)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    storage: file_storage/dora
    emit_interval: 1s
    history:
      batch_size: 4
      trigger:
        token: %[6]s
    webhooks:
      endpoint: %[1]s
      generic:
        secret: %[2]s
        history:
          endpoint: %[7]s/history
          token: %[6]s
      pagerduty:
        secret: e2e-pagerduty-secret
        namespace: shop
        services:
          PIJ90N7: api
        history:
          endpoint: %[7]s
          token_file: %[8]s
exporters:
  prometheus:
    endpoint: %[3]s
    without_scope_info: true
extensions:
  health_check:
    endpoint: %[4]s
  file_storage/dora:
    directory: %[5]s
    timeout: 10s
service:
  extensions: [health_check, file_storage/dora]
  telemetry:
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %[9]d
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, webhookAddr, genericSecret, promAddr, healthAddr, dir, historyToken, api.URL, tokenFile(t), ownPort), 0o600))
	p = runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, fmt.Sprintf("http://127.0.0.1:%d/metrics", ownPort), p
}

// tokenFile holds the PagerDuty token as a mounted Secret would, with a
// trailing newline.
func tokenFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "pagerduty-token")
	require.NoError(t, os.WriteFile(path, []byte(historyToken+"\n"), 0o600))
	return path
}

// dashboardTrends are the shipped dashboard's queries that read the
// cumulative counters and histograms (increase, rate), by "panel/refId",
// with the dashboard's variables filled in (grafanaVariables).
func dashboardTrends(t *testing.T) map[string]string {
	raw, err := os.ReadFile(filepath.Join("..", "dashboard", "dora-metrics.json"))
	require.NoError(t, err)
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels []panel `json:"panels"`
	}
	var dash struct {
		Panels []panel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	out := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if strings.Contains(tg.Expr, "increase(") || strings.Contains(tg.Expr, "rate(") {
					out[p.Title+"/"+tg.RefID] = grafanaVariables.Replace(tg.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	require.NotEmpty(t, out)
	return out
}

// queryRangeMax is the largest value any series of expr takes from start
// to end (a step of a second), and whether there was one.
func queryRangeMax(t *testing.T, base, expr string, start, end time.Time) (float64, bool) {
	t.Helper()
	q := url.Values{"query": {expr}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"1"}}
	resp, err := http.Get(base + "/api/v1/query_range?" + q.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "success", body.Status, "query %s: %s", expr, body.Error)
	best, found := 0.0, false
	for _, r := range body.Data.Result {
		for _, v := range r.Values {
			x := parseValue(t, v[1])
			if !found || x > best {
				best, found = x, true
			}
		}
	}
	return best, found
}

// TestHistoryImportKill9AndNoJump: a first start imports a month of
// deployments (the platform's history endpoint, the generic form) and
// PagerDuty incidents from a local server, slowed down; the collector is
// killed with SIGKILL (by PID) in the middle of the import and started
// again on the same storage: it resumes from its saved progress, and the
// 30-day rolling values count each deployment and each failure once. The
// imported history moves no counter: with a real Prometheus scraping
// every process, the shipped dashboard's trend queries (increase over the
// counters and histograms) show nothing at the import's time, and then
// exactly the one deployment delivered live afterwards.
func TestHistoryImportKill9AndNoJump(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	now := time.Now().Truncate(time.Second)
	events, incidents := historytest.Month(now, "shop", "api")
	api, err := historytest.New(historyToken, incidents, events, 3)
	require.NoError(t, err)
	defer api.Close()
	api.SetDelay(150 * time.Millisecond)

	promAddr := freeAddr(t)
	prom := startPrometheus(t, prometheusConfig{Targets: map[string]string{"otelcol-dora": promAddr}})
	dir := t.TempDir()
	began := time.Now()

	_, _, first := historyCollector(t, bin, dir, promAddr, api)
	// 60 deployments in pages of 3: 20 requests. Killed after a few pages
	// were applied (batch_size 4 splits none of them).
	require.Eventually(t, func() bool { return api.Requests() >= 6 }, 30*time.Second, 10*time.Millisecond)
	first.kill(t)
	assert.Contains(t, first.log(), "History import started")
	assert.NotContains(t, first.log(), "History import finished")
	readBefore := api.Requests()

	api.SetDelay(0)
	base, own, second := historyCollector(t, bin, dir, promAddr, api)
	freq := `platform_dora_deployment_frequency_per_day{deployment="api",window="30d"}`
	cfr := `platform_dora_change_failure_rate_ratio{deployment="api",window="30d"}`
	require.Eventually(t, func() bool {
		v, ok := valueOf(query(t, prom, freq), nil)
		return ok && v == 60.0/30
	}, 60*time.Second, 200*time.Millisecond, "the 30-day frequency counts the month once")
	v, ok := valueOf(query(t, prom, cfr), nil)
	require.True(t, ok)
	assert.Equal(t, 12.0/60, v, "each imported incident fails its deployment once")
	assert.Contains(t, second.log(), "History import resumes where it stopped")
	require.Eventually(t, func() bool { return strings.Count(second.log(), "History import finished") == 2 }, 30*time.Second, 100*time.Millisecond)
	assert.Less(t, api.Requests()-readBefore, int64(20+1), "the resumed import did not read the window again from its start")
	// The import's own telemetry: the second process applied what the
	// first had not, and both sources finished.
	imported := ownCounter(t, own, "otelcol_dora_history_imported_events", `source="generic"`)
	assert.Greater(t, imported, 0.0)
	assert.Less(t, imported, 60.0, "the resumed run applied only what was left")
	assert.Equal(t, 24.0, ownCounter(t, own, "otelcol_dora_history_imported_events", `source="pagerduty"`), "12 incidents opened and resolved")
	assert.Equal(t, 1.0, ownCounter(t, own, "otelcol_dora_history_progress", `source="generic"`))
	assert.Equal(t, 1.0, ownCounter(t, own, "otelcol_dora_history_progress", `source="pagerduty"`))
	assert.Positive(t, ownCounter(t, own, "otelcol_dora_history_requests", `source="pagerduty"`, `code="200"`))
	assert.Empty(t, query(t, prom, `platform_deployments_total`), "imported deployments are in no counter")
	assert.Empty(t, query(t, prom, `platform_incidents_total`), "nor imported incidents")

	// One live deployment after the import.
	liveAt := time.Now().Truncate(time.Second)
	body, err := json.Marshal(generic.Payload{Type: "deployment", ID: "live-1", Time: liveAt, Service: "api", Namespace: "shop",
		Environment: "production", Status: "success", DeploymentID: "live-1", Revision: "aaaaaaaa"})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/events", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(generic.SignatureHeader, "sha256="+webhook.SignHMACSHA256(genericSecret, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		v, ok := valueOf(query(t, prom, `platform_deployments_total{deployment="api",status="success"}`), nil)
		return ok && v == 1
	}, 30*time.Second, 200*time.Millisecond)
	require.Eventually(t, func() bool {
		v, ok := valueOf(query(t, prom, freq), nil)
		return ok && v == 61.0/30
	}, 30*time.Second, 200*time.Millisecond)

	// Every trend query of the dashboard, over the whole test (import,
	// kill, resume, live delivery): the deployment counts never exceed the
	// live one, and nothing else (failures, incidents, lead and recovery
	// times, all imported) has a value.
	end := time.Now().Add(2 * time.Second)
	time.Sleep(2 * time.Second)
	for name, expr := range dashboardTrends(t) {
		max, found := queryRangeMax(t, prom, expr, began, end)
		switch {
		case strings.HasPrefix(name, "Deployment frequency (successful deployments in the last 24 hours)"),
			strings.HasPrefix(name, "Deployments per interval"),
			name == "Deployments per service/A":
			require.True(t, found, "%s: the live deployment", name)
			assert.Equal(t, 1.0, max, "%s: only the live deployment, no jump at the import", name)
		case strings.HasPrefix(name, "Deployment frequency/"):
			// Per day over the 7-day range: the live deployment alone.
			assert.InDelta(t, 1.0/7, max, 1e-9, name)
		case strings.HasPrefix(name, "Rework rate"), strings.HasPrefix(name, "Change failure rate"), name == "Deployments per service/D":
			// Ratios over the live deployment: no failure, no rework.
			assert.Zero(t, max, name)
		default:
			assert.False(t, found, "%s: nothing imported shows (max %v)", name, max)
		}
	}
}
