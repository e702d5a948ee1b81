package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rssBound is the documented bound (README "Limits", BENCHMARKS.md
// "Series and state cost") on the collector's peak RSS after the
// 20,000-services probe with the default limits, scraped: measured at
// 359 MiB (idle 50 MiB) on the reference machine.
const rssBound = 512 << 20

// procKB reads a field (VmRSS, VmHWM) of /proc/<pid>/status, in bytes.
func procKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestTwentyThousandServicesThroughTheBinary is the probe of issue 13
// through the built binary, with the default series limits: one signed
// delivery of 20,000 distinct services. The series stay under the limit,
// the overflow is counted, and the peak RSS stays under rssBound.
func TestTwentyThousandServicesThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ownPort := freePort(t)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    limits:
      max_events_per_delivery: 20000
    webhooks:
      endpoint: %s
      max_request_body_size: 16777216
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
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, webhookAddr, genericSecret, promAddr, healthAddr, ownPort), 0o600))
	p := runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	pid := p.cmd.Process.Pid
	webhookURL, metricsURL := "http://"+webhookAddr, "http://"+promAddr+"/metrics"
	ownURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", ownPort)
	idle := procKB(t, pid, "VmRSS")

	const n, limit = 20000, 2000 // limit: the default limits::max_services
	now := time.Now().UTC().Format(time.RFC3339)
	var body bytes.Buffer
	body.WriteByte('[')
	for i := range n {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"type":"deployment","id":"d%d","time":%q,"service":"svc-%05d","namespace":"shop","environment":"production","status":"success","deployment_id":"d%d","revision":"%040x"}`, i, now, i, i, i)
	}
	body.WriteByte(']')
	a := sendGeneric(t, webhookURL, body.Bytes())
	require.Equal(t, http.StatusOK, a.status, a.body)

	waitMetric(t, metricsURL, "platform_deployments_total", map[string]string{"deployment": "_overflow", "status": "success"}, n-limit)
	began := time.Now()
	e := scrape(t, metricsURL)
	scrapeTook := time.Since(began)
	deployments := map[string]bool{}
	series := 0
	for _, s := range e.samples {
		if strings.HasPrefix(s.name, "platform_") {
			series++
		}
		if s.name == "platform_deployments_total" {
			deployments[s.labels["deployment"]] = true
		}
	}
	assert.Len(t, deployments, limit+1, "the limit's services and _overflow")
	assert.Equal(t, float64(n-limit), ownCounter(t, ownURL, "otelcol_dora_folded_values", `source="generic"`, `attribute="service"`))
	assert.Contains(t, p.log(), "folded into the overflow value")

	peak := procKB(t, pid, "VmHWM")
	t.Logf("RSS idle %d MiB, peak %d MiB; %d platform_ samples, scrape %s", idle>>20, peak>>20, series, scrapeTook)
	assert.Less(t, peak, int64(rssBound), "peak RSS")
}
