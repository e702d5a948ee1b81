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

// printSummary reads the four DORA numbers per service from Prometheus
// over the demo's time range and rates them by the DORA 2024 levels.
func printSummary(prom string) error {
	const window = "1h"
	queries := map[string]string{
		"deployments": `sum by (deployment) (increase(platform_deployments_total{environment="production"}[` + window + `]))`,
		"lead":        `histogram_quantile(0.5, sum by (deployment, le) (increase(platform_lead_time_seconds_bucket[` + window + `])))`,
		"failures":    `sum by (deployment) (increase(platform_deployment_failures_total[` + window + `]))`,
		"recovery":    `histogram_quantile(0.5, sum by (deployment, le) (increase(platform_recovery_time_seconds_bucket[` + window + `])))`,
	}
	values := map[string]map[string]float64{}
	services := map[string]bool{}
	for name, q := range queries {
		v, err := instant(prom, q)
		if err != nil {
			return err
		}
		values[name] = v
		for svc := range v {
			services[svc] = true
		}
	}
	names := make([]string, 0, len(services))
	for s := range services {
		names = append(names, s)
	}
	sort.Strings(names)
	fmt.Printf("\nDORA summary (production, last %s, read from Prometheus):\n", window)
	fmt.Printf("  %-10s %-26s %-26s %-26s %-26s\n", "service", "deployments", "median lead time", "change failure rate", "median recovery")
	for _, svc := range names {
		deploys := math.Round(values["deployments"][svc])
		failures := math.Round(values["failures"][svc])
		cfr := math.NaN()
		if deploys > 0 {
			cfr = failures / deploys
		}
		lead, hasLead := values["lead"][svc]
		rec, hasRec := values["recovery"][svc]
		fmt.Printf("  %-10s %-26s %-26s %-26s %-26s\n", svc,
			frequency(deploys, time.Hour),
			rated(hasLead, lead, durationLevel(lead, 24*3600, 7*24*3600, 30*24*3600)),
			ratedRatio(cfr),
			rated(hasRec, rec, durationLevel(rec, 3600, 24*3600, 7*24*3600)))
	}
	return nil
}

// frequency rates deployments seen over window, extrapolated to a day, by
// the DORA 2024 bands (on demand, daily to weekly, weekly to monthly, less).
func frequency(deploys float64, window time.Duration) string {
	perDay := deploys / window.Hours() * 24
	level := "low"
	switch {
	case perDay >= 1:
		level = "elite"
	case perDay >= 1.0/7:
		level = "high"
	case perDay >= 1.0/30:
		level = "medium"
	}
	return fmt.Sprintf("%.0f = %.0f/day (%s)", deploys, perDay, level)
}

func rated(ok bool, seconds float64, level string) string {
	if !ok || math.IsNaN(seconds) {
		return "n/a"
	}
	return fmt.Sprintf("%s (%s)", (time.Duration(seconds) * time.Second).Round(time.Second), level)
}

func ratedRatio(r float64) string {
	if math.IsNaN(r) {
		return "n/a"
	}
	level := "low"
	switch {
	case r <= 0.05:
		level = "elite"
	case r <= 0.10:
		level = "high"
	case r <= 0.15:
		level = "medium"
	}
	return fmt.Sprintf("%.0f%% (%s)", r*100, level)
}

// durationLevel rates a duration by DORA 2024 bands: under elite, under
// high, under medium, else low.
func durationLevel(seconds, elite, high, medium float64) string {
	switch {
	case seconds < elite:
		return "elite"
	case seconds < high:
		return "high"
	case seconds < medium:
		return "medium"
	}
	return "low"
}

func instant(prom, q string) (map[string]float64, error) {
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
		out[r.Metric["deployment"]] = v
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
