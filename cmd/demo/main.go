// Command demo shows a newcomer otelcol-dora at work (`make demo`): it
// starts a local control plane, otelcol-dora and Prometheus with the DORA
// recording rules, plays the delivery scenario of internal/scenario at a
// watchable pace, prints a DORA summary per service read from Prometheus,
// and keeps everything running until Ctrl-C, which stops all it started.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/scenario"
)

func main() {
	dir := flag.String("dir", ".run/demo", "working directory for the control plane, Prometheus data and logs")
	collector := flag.String("collector", "bin/otelcol-dora", "the otelcol-dora binary")
	collectorConfig := flag.String("config", "config/local.yaml", "the collector configuration")
	rules := flag.String("rules", "deploy/prometheus/dora-rules.yaml", "Prometheus rules to load")
	pace := flag.Duration("pace", 4*time.Second, "pause between scenario steps")
	promAddr := flag.String("prometheus", "127.0.0.1:9090", "Prometheus listen address")
	once := flag.Bool("once", false, "stop after printing the summary instead of waiting for Ctrl-C")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *collector, *collectorConfig, *rules, *promAddr, *pace, *once); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

const (
	webhookAddr  = "127.0.0.1:8088"
	metricsAddr  = "127.0.0.1:9464"
	githubSecret = "local-dev-secret"
)

func run(ctx context.Context, dir, collector, collectorConfig, rules, promAddr string, pace time.Duration, once bool) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			stopProcess(procs[i])
		}
	}()

	log.Printf("starting a local control plane (etcd, kube-apiserver, kube-controller-manager, fake kubelet) in %s", dir)
	cluster, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(dir, "cluster"), FakeKubelet: true, Logf: log.Printf})
	if err != nil {
		return err
	}
	defer cluster.Stop()

	log.Printf("starting otelcol-dora on %s", collectorConfig)
	p, err := startProcess(dir, "otelcol-dora", collector, []string{"--config", collectorConfig},
		// A fresh state: the demo's history starts from zero.
		"DORA_STORAGE_DIR="+filepath.Join(dir, "storage"),
		"DORA_KUBECONFIG="+cluster.Kubeconfig, "DORA_WEBHOOK_ENDPOINT="+webhookAddr,
		"DORA_PROMETHEUS_ENDPOINT="+metricsAddr, "DORA_GITHUB_SECRET="+githubSecret)
	if err != nil {
		return err
	}
	procs = append(procs, p)
	if err := waitOK(ctx, "http://"+metricsAddr+"/metrics"); err != nil {
		return fmt.Errorf("otelcol-dora did not start (log: %s): %w", filepath.Join(dir, "otelcol-dora.log"), err)
	}

	bin, err := localcluster.BinDir()
	if err != nil {
		return err
	}
	promConfig := filepath.Join(dir, "prometheus.yml")
	rulesAbs, err := filepath.Abs(rules)
	if err != nil {
		return err
	}
	if err := os.WriteFile(promConfig, fmt.Appendf(nil, `global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files: [%q]
scrape_configs:
  - job_name: otelcol-dora
    static_configs:
      - targets: [%q]
`, rulesAbs, metricsAddr), 0o644); err != nil {
		return err
	}
	log.Printf("starting Prometheus on %s with %s", promAddr, rules)
	p, err = startProcess(dir, "prometheus", filepath.Join(bin, "prometheus"), []string{
		"--config.file=" + promConfig, "--storage.tsdb.path=" + filepath.Join(dir, "prometheus-data"), "--web.listen-address=" + promAddr,
	})
	if err != nil {
		return err
	}
	procs = append(procs, p)
	if err := waitOK(ctx, "http://"+promAddr+"/-/ready"); err != nil {
		return fmt.Errorf("prometheus did not start: %w", err)
	}

	fmt.Printf("\nPlaying the scenario (a step every %s):\n", pace)
	_, err = scenario.Run(ctx, scenario.Env{
		Client:             cluster.Client(),
		WebhookURL:         "http://" + webhookAddr,
		GitHubSecret:       githubSecret,
		SetPodsBecomeReady: cluster.SetPodsBecomeReady,
		Pace:               pace,
		Logf:               func(f string, a ...any) { fmt.Printf("  "+f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	// Two scrapes, so that Prometheus has the final values.
	time.Sleep(5 * time.Second)
	if err := printSummary("http://" + promAddr); err != nil {
		return err
	}
	fmt.Printf(`
Look at:
  DORA metrics:  curl -s http://%s/metrics | grep '^platform_'
  Prometheus:    http://%s/api/v1/query?query=platform_deployments_total
  Kubernetes:    export KUBECONFIG=%s
  Logs:          %s
`, metricsAddr, promAddr, cluster.Kubeconfig, dir)
	if once {
		return nil
	}
	fmt.Println("Running until Ctrl-C.")
	<-ctx.Done()
	fmt.Println("\nStopping what the demo started.")
	return nil
}

// printSummary reads the four DORA numbers per service from Prometheus,
// through the shipped recording rules (7-day windows), and their levels from
// the receiver's own platform_dora_level gauges (DORA 2024 thresholds).
func printSummary(prom string) error {
	queries := map[string]string{
		"frequency": `dora:deployment_frequency:per_day_7d{environment=~"production|prod"}`,
		"lead":      `dora:lead_time_seconds:p50_7d{environment=~"production|prod"}`,
		"cfr":       `dora:change_failure_rate:ratio_7d{environment=~"production|prod"}`,
		"recovery":  `dora:recovery_time_seconds:p50_7d{environment=~"production|prod"}`,
	}
	values := map[string]map[string]float64{}
	services := map[string]bool{}
	for name, q := range queries {
		v, err := instant(prom, q, "deployment")
		if err != nil {
			return err
		}
		values[name] = v
		for svc := range v {
			services[svc] = true
		}
	}
	levels := map[string]map[string]float64{}
	for _, metric := range []string{"deployment_frequency", "lead_time", "change_failure_rate", "recovery_time", "overall"} {
		v, err := instant(prom, `platform_dora_level{window="7d",tier_set="dora-2024",metric="`+metric+`"}`, "deployment")
		if err != nil {
			return err
		}
		levels[metric] = v
	}
	// A level needs enough of its window observed (min_window_coverage);
	// the demo's history is minutes old, so say how much of the week is.
	coverage, err := instant(prom, `platform_dora_window_coverage_ratio{window="7d"}`, "deployment")
	if err != nil {
		return err
	}
	names := make([]string, 0, len(services))
	for s := range services {
		names = append(names, s)
	}
	sort.Strings(names)
	fmt.Printf("\nDORA summary (production, last 7 days, from Prometheus; levels by the DORA 2024 report):\n")
	fmt.Printf("  %-8s %-24s %-24s %-24s %-24s %s\n", "service", "deployment frequency", "median lead time", "change failure rate", "median recovery", "overall")
	for _, svc := range names {
		fmt.Printf("  %-8s %-24s %-24s %-24s %-24s %s\n", svc,
			show(values["frequency"], svc, func(v float64) string { return fmt.Sprintf("%.2f/day", v) }, levels["deployment_frequency"]),
			show(values["lead"], svc, duration, levels["lead_time"]),
			show(values["cfr"], svc, func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) }, levels["change_failure_rate"]),
			show(values["recovery"], svc, duration, levels["recovery_time"]),
			overallName(levels["overall"], coverage, svc))
	}
	return nil
}

func duration(seconds float64) string {
	return (time.Duration(seconds) * time.Second).Round(time.Second).String()
}

func show(values map[string]float64, svc string, format func(float64) string, levels map[string]float64) string {
	v, ok := values[svc]
	if !ok || math.IsNaN(v) {
		return "n/a"
	}
	return format(v) + " (" + levelName(levels, svc) + ")"
}

// overallName names the overall level, or says why there is none: too
// little of the window observed.
func overallName(levels, coverage map[string]float64, svc string) string {
	if _, ok := levels[svc]; !ok {
		if c, ok := coverage[svc]; ok {
			return fmt.Sprintf("none yet: %.1f%% of the week observed", c*100)
		}
	}
	return levelName(levels, svc)
}

// levelName names a platform_dora_level value.
func levelName(levels map[string]float64, svc string) string {
	v, ok := levels[svc]
	if !ok {
		return "n/a"
	}
	switch v {
	case 4:
		return "elite"
	case 3:
		return "high"
	case 2:
		return "medium"
	case 1:
		return "low"
	}
	return "n/a"
}

// instant runs an instant query and returns its values by the given label.
func instant(prom, q, label string) (map[string]float64, error) {
	resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	out := map[string]float64{}
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		out[r.Metric[label]] = v
	}
	return out, nil
}

func startProcess(dir, name, bin string, args []string, env ...string) (*exec.Cmd, error) {
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return cmd, nil
}

// stopProcess stops a child by its PID: SIGTERM, then SIGKILL.
func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func waitOK(ctx context.Context, u string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer 200 within 60s", u)
}
