package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// toolBinary finds a binary that `make tools` builds.
func toolBinary(t *testing.T, name string) string {
	dir, err := localcluster.BinDir()
	require.NoError(t, err)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found in %s: run `make tools` (or `make test`, which builds it): %v", name, dir, err)
	}
	return bin
}

// startProcess runs a server until the test ends, stopping it by PID, and
// prints its log when the test failed.
func startProcess(t *testing.T, name, bin string, args ...string) {
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
}

func waitHTTP200(t *testing.T, url string) {
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "%s never answered 200", url)
}

// prometheusConfig is what the test's Prometheus scrapes and evaluates.
type prometheusConfig struct {
	// Targets by job name (host:port).
	Targets      map[string]string
	RuleFiles    []string
	Alertmanager string // host:port, optional
	// Config is more prometheus.yml (an otlp: section), Flags more
	// command-line flags (the OTLP or remote-write receiver).
	Config string
	Flags  []string
}

// startPrometheus runs a real Prometheus scraping and evaluating every
// second and returns its base URL.
func startPrometheus(t *testing.T, cfg prometheusConfig) string {
	bin := toolBinary(t, "prometheus")
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
	if len(cfg.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range cfg.RuleFiles {
			abs, err := filepath.Abs(f)
			require.NoError(t, err)
			fmt.Fprintf(&b, "  - %s\n", abs)
		}
	}
	if cfg.Alertmanager != "" {
		fmt.Fprintf(&b, "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [%q]\n", cfg.Alertmanager)
	}
	b.WriteString(cfg.Config)
	b.WriteString("scrape_configs:\n")
	for job, target := range cfg.Targets {
		fmt.Fprintf(&b, "  - job_name: %q\n    static_configs:\n      - targets: [%q]\n", job, target)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(configPath, []byte(b.String()), 0o600))
	addr := freeAddr(t)
	startProcess(t, "prometheus", bin, append([]string{
		"--config.file=" + configPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		// Send alert changes to Alertmanager at once, not every minute.
		"--rules.alert.resend-delay=1s",
	}, cfg.Flags...)...)
	base := "http://" + addr
	waitHTTP200(t, base+"/-/ready")
	return base
}

// promSample is one element of an instant vector.
type promSample struct {
	Labels map[string]string
	Value  float64
}

// query runs an instant query and returns its vector (a scalar result is
// one sample without labels).
func query(t *testing.T, base, expr string) []promSample {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "success", body.Status, "query %s: %s", expr, body.Error)
	switch body.Data.ResultType {
	case "vector":
		var v []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		require.NoError(t, json.Unmarshal(body.Data.Result, &v))
		out := make([]promSample, 0, len(v))
		for _, s := range v {
			out = append(out, promSample{Labels: s.Metric, Value: parseValue(t, s.Value[1])})
		}
		return out
	case "scalar":
		var v [2]any
		require.NoError(t, json.Unmarshal(body.Data.Result, &v))
		return []promSample{{Labels: map[string]string{}, Value: parseValue(t, v[1])}}
	default:
		t.Fatalf("query %s: unexpected result type %s", expr, body.Data.ResultType)
		return nil
	}
}

func parseValue(t *testing.T, v any) float64 {
	s, ok := v.(string)
	require.True(t, ok, "value %v", v)
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err)
	return f
}

// valueOf returns the value of the sample whose labels include want, and
// whether there is exactly one.
func valueOf(samples []promSample, want map[string]string) (float64, bool) {
	var found []float64
	for _, s := range samples {
		ok := true
		for k, v := range want {
			if s.Labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			found = append(found, s.Value)
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	return found[0], true
}
