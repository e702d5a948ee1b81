package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	// The monitoring loop of TestDoraThroughPrometheus, on the scraping
	// Prometheus (the one with the application and Alertmanager): an
	// incident on api and its recovery.
	stack.errorRatio.Store(0.2)
	stack.waitQuery(t, `ALERTS{alertname="HighErrorRate",alertstate="firing"}`, map[string]string{"service": "api"}, 1)
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
	seriesOf := func(base string) []string {
		var out []string
		for _, s := range query(t, base, `{__name__=~"platform_.*"}`) {
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
			out = append(out, strings.Join(labels, ","))
		}
		sort.Strings(out)
		return out
	}
	scraped := seriesOf(stack.prometheus)
	require.NotEmpty(t, scraped)
	for name, b := range backends {
		assert.Equal(t, scraped, seriesOf(b.prometheus), "series through %s", name)
	}

	for name, b := range backends {
		t.Run(name, func(t *testing.T) { checkShippedQueries(t, b, want) })
	}
}
