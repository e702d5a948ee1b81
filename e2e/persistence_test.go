package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
)

// storageCollector runs otelcol-dora with the generic webhook source, the
// Prometheus exporter and the file_storage extension on dir, with fresh
// ports: each call is a new process on the same state. receiverConfig is
// more YAML for the dora receiver, indented by four spaces. It returns the
// webhook server's base URL and the Prometheus endpoint's URL.
func storageCollector(t *testing.T, bin, dir, receiverConfig string) (webhookURL, metricsURL string, p *collectorProcess) {
	t.Helper()
	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
%s
    storage: file_storage/dora
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
  file_storage/dora:
    directory: %s
    # A replica that becomes leader waits this long for the old one's lock.
    timeout: 10s
service:
  extensions: [health_check, file_storage/dora]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, receiverConfig, webhookAddr, genericSecret, promAddr, healthAddr, dir), 0o600))
	p = runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, "http://" + promAddr + "/metrics", p
}

// persistentCollector is storageCollector with the engine's production
// environments and a snapshot every 3 events, so that the state is in a
// snapshot and a log.
func persistentCollector(t *testing.T, bin, dir string) (webhookURL, metricsURL string, p *collectorProcess) {
	t.Helper()
	production, err := json.Marshal(engine.DefaultConfig().Production)
	require.NoError(t, err)
	return storageCollector(t, bin, dir, fmt.Sprintf("    production_environments: %s\n    snapshot_every: 3", production))
}

// TestStateSurvivesKill9 sends a scenario's events to the real binary
// with file_storage, in two halves, killing the collector with SIGKILL
// (by PID) after each half and starting a new one on the same directory.
// Every delivery answered 200 before a kill is kept: the Prometheus
// endpoint of the last collector shows exactly the scenario's values,
// nothing lost, nothing doubled. Then every delivery is sent again, as
// senders retrying after the crash would: each is recognized as a
// duplicate and the values do not move.
func TestStateSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	var sc enginetest.Scenario
	for _, s := range enginetest.Scenarios() {
		if s.Name == "a reviewed change and its revert" {
			sc = s
		}
	}
	require.NotEmpty(t, sc.Events, "the scenario is gone from enginetest")
	dir := t.TempDir()

	half := len(sc.Events) / 2
	for _, part := range [][]int{{0, half}, {half, len(sc.Events)}} {
		webhookURL, _, p := persistentCollector(t, bin, dir)
		for i := part[0]; i < part[1]; i++ {
			ev := sc.Events[i]
			a := sendGeneric(t, webhookURL, genericDelivery(t, ev))
			require.Equal(t, http.StatusOK, a.status, "event %d (%s): %v", i, ev.ID, a.body)
			require.EqualValues(t, 1, a.body["accepted"], "event %d (%s): %v", i, ev.ID, a.body)
		}
		p.kill(t)
		assert.NotContains(t, p.log(), "Shutdown complete", "killed, not shut down")
	}

	webhookURL, metricsURL, p := persistentCollector(t, bin, dir)
	assert.Contains(t, p.log(), "DORA state restored from storage")
	// The restored totals are emitted at start; wait for the first.
	waitMetric(t, metricsURL, "platform_deployments_total", map[string]string{"deployment": "api", "status": "success"},
		float64(sc.Want.Counters[enginetest.Deployments][enginetest.Series{Service: enginetest.API, Label: "success"}]))
	checkScenarioMetrics(t, scrape(t, metricsURL), sc.Want)

	// Ids are remembered for the dedup window (24h of event time before
	// the newest event): a redelivery within it is a duplicate; an older
	// one is applied again, and changes nothing (deployments and incidents
	// are counted once by their own ids).
	var newest time.Time
	for _, ev := range sc.Events {
		if ev.Time.After(newest) {
			newest = ev.Time
		}
	}
	duplicates := 0
	for i, ev := range sc.Events {
		a := sendGeneric(t, webhookURL, genericDelivery(t, ev))
		require.Equal(t, http.StatusOK, a.status, "redelivery %d (%s): %v", i, ev.ID, a.body)
		if !ev.Time.Before(newest.Add(-engine.DefaultConfig().DedupWindow)) {
			assert.EqualValues(t, 0, a.body["accepted"], "redelivery %d (%s)", i, ev.ID)
			assert.EqualValues(t, 1, a.body["duplicates"], "redelivery %d (%s)", i, ev.ID)
			duplicates++
		}
	}
	assert.GreaterOrEqual(t, duplicates, len(sc.Events)-1)
	checkScenarioMetrics(t, scrape(t, metricsURL), sc.Want)

	// The state is one bbolt file per receiver in the directory.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	require.Len(t, files, 1, "%v", files)
	assert.True(t, strings.HasPrefix(files[0], "receiver_dora_"), files[0])
}
