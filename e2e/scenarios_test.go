package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const genericSecret = "e2e-generic-secret"

// promFamily is how a metric of the contract appears on the Prometheus
// endpoint: its family name and the label that carries its own attribute
// (enginetest.Series.Label), empty when it has none.
type promFamily struct{ name, label string }

var (
	promCounters = map[string]promFamily{
		enginetest.Deployments:        {"platform_deployments_total", "status"},
		enginetest.DeploymentFailures: {"platform_deployment_failures_total", "reason"},
		enginetest.LeadTimeDropped:    {"platform_lead_time_dropped_total", "reason"},
		enginetest.Incidents:          {"platform_incidents_total", "attributed"},
		enginetest.Rework:             {"platform_deployments_rework_total", ""},
	}
	promHistograms = map[string]promFamily{
		enginetest.LeadTime:      {"platform_lead_time_seconds", ""},
		enginetest.LeadTimeStage: {"platform_lead_time_stage_seconds", "stage"},
		enginetest.RecoveryTime:  {"platform_recovery_time_seconds", ""},
	}
)

// TestScenarios replays every scenario of package enginetest (the ones the
// engine's own scenario test checks) through the real otelcol-dora: a fresh
// collector per scenario, so a fresh engine, with only the generic webhook
// source; each event is one signed delivery, answered 200 only once the
// pipeline has its effect. Then the Prometheus endpoint must show exactly
// the cumulative values computed by hand in the scenario: every counter
// series, every histogram's _sum and _count, and no other series of those
// families. A scenario the generic source alone cannot tell (EngineOnly) is
// left out here and replayed by the e2e test it names (replayedElsewhere).
//
// The rolling gauges (platform_dora_*) are not checked here: the collector
// computes them at the wall clock's now, while the scenarios happen at
// fixed past times, so their values depend on when the test runs. The
// engine's scenario test checks them at each scenario's Now.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	for _, sc := range enginetest.Scenarios() {
		if sc.EngineOnly != "" {
			// Replayed through the binary by a test of its own, which
			// EngineOnly names.
			test, ok := replayedElsewhere[sc.Name]
			require.True(t, ok, "scenario %q is EngineOnly (%s) but no e2e test replays it: add one to replayedElsewhere", sc.Name, sc.EngineOnly)
			require.Contains(t, sc.EngineOnly, testName(test), "scenario %q: EngineOnly names the test that replays it", sc.Name)
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			webhookURL, metricsURL := startWebhookCollector(t, bin, sc.ServicePaths)
			sent := map[string]bool{}
			for i, ev := range sc.Events {
				body := genericDelivery(t, ev)
				a := sendGeneric(t, webhookURL, body)
				require.Equal(t, http.StatusOK, a.status, "event %d (%s): %v", i, ev.ID, a.body)
				// A redelivery (an id sent before) is answered 200 as a
				// duplicate, and changes nothing.
				if sent[ev.ID] {
					require.EqualValues(t, 0, a.body["accepted"], "event %d (%s), redelivered: %v", i, ev.ID, a.body)
					require.EqualValues(t, 1, a.body["duplicates"], "event %d (%s), redelivered: %v", i, ev.ID, a.body)
					continue
				}
				sent[ev.ID] = true
				require.EqualValues(t, 1, a.body["accepted"], "event %d (%s): %v", i, ev.ID, a.body)
			}
			// The last 200 came after the pipeline had every change: no
			// waiting.
			checkScenarioMetrics(t, scrape(t, metricsURL), sc.Want)
		})
	}
}

// replayedElsewhere are the scenarios that the generic webhook source alone
// cannot tell (EngineOnly), by name, with the test that replays each
// through the binary instead.
var replayedElsewhere = map[string]func(*testing.T){
	enginetest.StoryTwoSources:         TestTwoSourcesEndToEnd,
	enginetest.StoryOpsgenie:           TestOpsgenieEndToEnd,
	enginetest.StoryIncidentIO:         TestIncidentIOEndToEnd,
	enginetest.StoryGrafana:            TestGrafanaEndToEnd,
	enginetest.StoryServiceNowIncident: TestIncidentSourcesEndToEnd,
	enginetest.StoryJiraIncident:       TestIncidentSourcesEndToEnd,
	enginetest.StoryGitLabIncident:     TestIncidentSourcesEndToEnd,
	enginetest.StoryJenkins:            TestJenkinsStoryEndToEnd,
	enginetest.StoryTekton:             TestTektonStoryEndToEnd,
	enginetest.StoryReleases:           TestReleasesStoryEndToEnd,
	enginetest.StoryBitbucket:          TestBitbucketStoryEndToEnd,
	enginetest.StoryBitbucketDC:        TestBitbucketDCStoryEndToEnd,
	enginetest.StoryAzureDevOps:        TestAzureDevOpsStoryEndToEnd,
}

// testName is the name of a test function, as go test -run takes it.
func testName(f func(*testing.T)) string {
	name := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
	return name[strings.LastIndexByte(name, '.')+1:]
}

// genericDelivery is the body of a generic-source delivery of ev. It fails
// the test when the generic form cannot carry ev exactly: the generic
// parser must give ev back, but for its source.
func genericDelivery(t *testing.T, ev event.Event) []byte {
	t.Helper()
	pl, err := generic.PayloadOf(ev)
	require.NoError(t, err)
	body, err := json.Marshal(pl)
	require.NoError(t, err)
	cfg := generic.DefaultConfig()
	cfg.InsecureSkipVerify = true
	res, err := generic.New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
	require.NoError(t, err, "%s", body)
	want := ev
	want.Source = event.SourceGeneric
	require.Equal(t, []event.Event{want}, res.Events, "the generic form cannot carry event %s exactly; extend internal/generic", ev.ID)
	return body
}

func sendGeneric(t *testing.T, base string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/events", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(generic.SignatureHeader, "sha256="+webhook.SignHMACSHA256(genericSecret, body))
	return deliver(t, req)
}

// checkScenarioMetrics compares the contract's cumulative families on the
// Prometheus endpoint with want, series by series (namespace, deployment,
// environment and the family's own label; other labels are ignored).
func checkScenarioMetrics(t *testing.T, m exposition, want enginetest.Expected) {
	t.Helper()
	for name := range want.Counters {
		require.Contains(t, promCounters, name, "no Prometheus family for counter %s", name)
	}
	for name := range want.Histograms {
		require.Contains(t, promHistograms, name, "no Prometheus family for histogram %s", name)
	}
	counters, histograms := scenarioCounters(t, m), scenarioHistograms(t, m)
	for _, name := range enginetest.CounterMetrics {
		w := want.Counters[name]
		if w == nil {
			w = enginetest.Counter{}
		}
		assert.Equal(t, w, counters[name], promCounters[name].name)
		if len(w) > 0 {
			assert.Equal(t, "counter", m.types[promCounters[name].name], promCounters[name].name)
		}
	}
	for _, name := range enginetest.HistogramMetrics {
		w := want.Histograms[name]
		if w == nil {
			w = enginetest.Histogram{}
		}
		assert.Equal(t, w, histograms[name], promHistograms[name].name)
		if len(w) > 0 {
			assert.Equal(t, "histogram", m.types[promHistograms[name].name], promHistograms[name].name)
		}
	}
}

// scenarioCounters reads every counter of the contract from the Prometheus
// endpoint, by metric name (enginetest's) and series; a family without
// series has an empty Counter.
func scenarioCounters(t *testing.T, m exposition) map[string]enginetest.Counter {
	t.Helper()
	out := map[string]enginetest.Counter{}
	for _, name := range enginetest.CounterMetrics {
		f, ok := promCounters[name]
		require.True(t, ok, "no Prometheus family for counter %s", name)
		got := enginetest.Counter{}
		for _, s := range m.samples {
			if s.name != f.name {
				continue
			}
			k := promSeries(s, f.label)
			require.NotContains(t, got, k, "%s: two series for %s", f.name, k)
			require.Equal(t, math.Trunc(s.value), s.value, "%s%v is not a count", f.name, s.labels)
			got[k] = uint64(s.value)
		}
		out[name] = got
	}
	return out
}

// scenarioHistograms reads every histogram of the contract from the
// Prometheus endpoint, by metric name (enginetest's) and series: their
// _sum and _count, each series having both and a +Inf bucket that holds
// every observation.
func scenarioHistograms(t *testing.T, m exposition) map[string]enginetest.Histogram {
	t.Helper()
	out := map[string]enginetest.Histogram{}
	for _, name := range enginetest.HistogramMetrics {
		f, ok := promHistograms[name]
		require.True(t, ok, "no Prometheus family for histogram %s", name)
		got := enginetest.Histogram{}
		sums, counts, infs := map[enginetest.Series]bool{}, map[enginetest.Series]bool{}, map[enginetest.Series]float64{}
		for _, s := range m.samples {
			k := promSeries(s, f.label)
			o := got[k]
			switch s.name {
			case f.name + "_sum":
				require.False(t, sums[k], "%s: two series for %s", s.name, k)
				sums[k], o.Sum = true, s.value
			case f.name + "_count":
				require.False(t, counts[k], "%s: two series for %s", s.name, k)
				require.Equal(t, math.Trunc(s.value), s.value, "%s%v is not a count", s.name, s.labels)
				counts[k], o.Count = true, uint64(s.value)
			case f.name + "_bucket":
				if s.labels["le"] == "+Inf" {
					infs[k] = s.value
				}
				continue
			default:
				continue
			}
			got[k] = o
		}
		for k := range got {
			assert.True(t, sums[k] && counts[k], "%s: %s has not both _sum and _count", f.name, k)
			assert.Equal(t, float64(got[k].Count), infs[k], "%s: %s: the +Inf bucket holds every observation", f.name, k)
		}
		out[name] = got
	}
	return out
}

func promSeries(s sample, label string) enginetest.Series {
	k := enginetest.Series{Service: event.Service{
		Namespace:   s.labels["namespace"],
		Name:        s.labels["deployment"],
		Environment: s.labels["environment"],
	}}
	if label != "" {
		k.Label = s.labels[label]
	}
	return k
}

// startWebhookCollector runs otelcol-dora on a configuration of its own:
// the generic webhook source only (no Kubernetes), the engine's default
// production environments (those the scenarios are computed with), the
// scenario's monorepo services if any, and the Prometheus exporter. It
// returns the webhook base URL and the metrics URL; the collector is
// stopped by PID when the test ends.
func startWebhookCollector(t *testing.T, bin string, monorepo []enginetest.ServicePaths) (string, string) {
	t.Helper()
	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	production, err := json.Marshal(engine.DefaultConfig().Production)
	require.NoError(t, err)
	// JSON is YAML: one services entry per monorepo service, all of one
	// placeholder repository (the scenarios' events name their services).
	type serviceEntry struct {
		Repository string   `json:"repository"`
		Namespace  string   `json:"namespace"`
		Deployment string   `json:"deployment"`
		Paths      []string `json:"paths"`
	}
	services := []serviceEntry{}
	for _, p := range monorepo {
		services = append(services, serviceEntry{"scenario/monorepo", p.Namespace, p.Name, p.Paths})
	}
	servicesYAML, err := json.Marshal(services)
	require.NoError(t, err)
	dir := t.TempDir()
	config := filepath.Join(dir, "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    production_environments: %s
    services: %s
    webhooks:
      endpoint: %s
      generic:
        secret: %s
exporters:
  prometheus:
    endpoint: %s
    without_scope_info: true
extensions:
  health_check:
    endpoint: %s
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, production, servicesYAML, webhookAddr, genericSecret, promAddr, healthAddr), 0o600))

	runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, "http://" + promAddr + "/metrics"
}
