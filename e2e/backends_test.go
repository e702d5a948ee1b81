package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-dora/dorareceiver/internal/scenario"
)

// backendsPrometheus is the otlp: section of docs/backends.md: Prometheus'
// OTLP receiver keeps the names the prometheus exporter writes (unit and
// type suffixes, dots to underscores), which is its default, said here so
// that a change of default shows.
const backendsPrometheus = "otlp:\n  translation_strategy: UnderscoreEscapingWithSuffixes\n"

// TestVendorBackends sends the delivery scenario of TestDoraThroughPrometheus
// through one otelcol-dora to three Prometheus servers at once: (a) scraping
// the prometheus exporter, (b) receiving otlp_http on its OTLP receiver,
// (c) receiving prometheus_remote_write; each loads the shipped rules. The
// same metric names exist in all three, and every shipped dashboard query
// and recording rule returns the scenario's values in each.
func TestVendorBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary, the control plane and Prometheus; run through make test")
	}
	otlpProm := startPrometheus(t, prometheusConfig{
		RuleFiles: shippedRules(t),
		Config:    backendsPrometheus,
		Flags:     []string{"--web.enable-otlp-receiver"},
	})
	rwProm := startPrometheus(t, prometheusConfig{
		RuleFiles: shippedRules(t),
		Flags:     []string{"--web.enable-remote-write-receiver"},
	})
	exporters := filepath.Join(t.TempDir(), "backends.yaml")
	require.NoError(t, os.WriteFile(exporters, fmt.Appendf(nil, `exporters:
  otlp_http/prometheus:
    endpoint: %s/api/v1/otlp
  prometheus_remote_write:
    endpoint: %s/api/v1/write
    disable_scope_info: true
service:
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus, otlp_http/prometheus, prometheus_remote_write]
`, otlpProm, rwProm), 0o600))
	stack := startDoraStackWith(t, []string{exporters}, shippedRules(t)...)
	t.Cleanup(func() {
		if t.Failed() {
			// Why a scrape found nothing: the targets' health and errors.
			if resp, err := http.Get(stack.prometheus + "/api/v1/targets"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("scrape targets: %s", b)
			}
		}
	})
	backends := map[string]*doraStack{
		"scrape":       stack,
		"otlp":         {prometheus: otlpProm},
		"remote write": {prometheus: rwProm},
	}

	want, err := scenario.Run(context.Background(), scenario.Env{
		Client:             stack.cluster.Client(),
		WebhookURL:         stack.webhookURL,
		GitHubSecret:       githubSecret,
		SetPodsBecomeReady: stack.cluster.SetPodsBecomeReady,
		Logf:               t.Logf,
	})
	require.NoError(t, err)
	// The scenario's numbers, as TestDoraThroughPrometheus waits for them.
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
	// The monitoring loop of TestDoraThroughPrometheus, on the scraping
	// Prometheus (the one with the application and Alertmanager): an
	// incident on api and its recovery.
	stack.errorRatio.Store(0.2)
	stack.waitQuery(t, `ALERTS{alertname="HighErrorRate",alertstate="firing"}`, map[string]string{"service": "api"}, 1)
	// The incident is counted before the application recovers: an alert
	// that resolves within Alertmanager's group_wait is never sent, and
	// there would be no incident to recover from.
	stack.waitQuery(t, `platform_deployment_failures_total`, map[string]string{"deployment": "api", "reason": "incident"}, 1)
	stack.errorRatio.Store(0.0)
	for name, b := range backends {
		t.Logf("waiting for the incident's recovery through %s", name)
		b.waitQuery(t, `platform_recovery_time_seconds_count`, map[string]string{"deployment": "api"}, float64(want.Recoveries["api"]+1))
	}

	// The same series in every backend: names and labels, but for the
	// scrape's job and instance (the target's; OTLP and remote write have
	// none, as the receiver's resource has no service.name) and the
	// spelling of le, a number ("60.0" scraped, "60" through OTLP and
	// remote write).
	seriesOf := func(base, expr string) []string {
		var out []string
		for _, s := range query(t, base, expr) {
			var labels []string
			for k, v := range s.Labels {
				switch k {
				case "job", "instance":
					continue
				case "le":
					f, err := strconv.ParseFloat(v, 64)
					require.NoError(t, err, "le=%q", v)
					v = strconv.FormatFloat(f, 'g', -1, 64)
				}
				labels = append(labels, k+"="+v)
			}
			sort.Strings(labels)
			out = append(out, fmt.Sprintf("{%s} %.9g", strings.Join(labels, ","), s.Value))
		}
		sort.Strings(out)
		return out
	}
	scraped := seriesOf(stack.prometheus, `{__name__=~"platform_.*"}`)
	require.NotEmpty(t, scraped)
	for name, b := range backends {
		assert.Equal(t, scraped, seriesOf(b.prometheus, `{__name__=~"platform_.*"}`), "series through %s", name)
	}

	// Every dashboard query and recording rule gives the same result in
	// each backend as through the prometheus exporter. (Rules are
	// evaluated every second by each Prometheus: a moment to agree.)
	for _, expr := range shippedExprs(t) {
		want := seriesOf(stack.prometheus, expr)
		for name, b := range backends {
			var got []string
			require.Eventually(t, func() bool {
				want = seriesOf(stack.prometheus, expr)
				got = seriesOf(b.prometheus, expr)
				return strings.Join(want, ";") == strings.Join(got, ";")
			}, 15*time.Second, 250*time.Millisecond, "%s through %s: %v, scraped %v", expr, name, got, want)
		}
	}

	for name, b := range backends {
		t.Run(name, func(t *testing.T) { checkShippedQueries(t, b, want) })
	}
}

// shippedExprs are the dashboard's panel queries (with the check's values
// of the Grafana variables) and the shipped recording rules' names.
func shippedExprs(t *testing.T) []string {
	raw, err := os.ReadFile(filepath.Join("..", "dashboard", "dora-metrics.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	var out []string
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			out = append(out, grafanaVariables.Replace(target.Expr))
		}
	}
	rawRules, err := os.ReadFile(shippedRules(t)[0])
	require.NoError(t, err)
	var groups struct {
		Groups []struct {
			Rules []struct {
				Record string `json:"record"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(rawRules, &groups))
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out = append(out, r.Record)
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}
