package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// The agent/gateway run (issue 16): -clusters API servers with
// -deployments each, an otelcol-dora agent (mode: agent) per cluster
// forwarding through otlp_http with a sending_queue on file_storage, one
// otelcol-dora gateway; a mass rollout in every cluster at once, counted
// at the gateway's Prometheus endpoint.

// gatewayResults is what the agent/gateway run measured.
type gatewayResults struct {
	Clusters        int     `json:"clusters"`
	Deployments     int     `json:"deployments_per_cluster"`
	PopulateSeconds float64 `json:"populate_seconds"`
	// ImageSeconds and StatusSeconds: writing every new image, then every
	// completed status, in all clusters at once.
	ImageSeconds  float64 `json:"image_seconds"`
	StatusSeconds float64 `json:"status_seconds"`
	// Counted is, per cluster, the successful deployments the gateway
	// counted; Duplicated the series above 1; Missing the Deployments
	// with no count.
	Counted    map[string]int `json:"counted"`
	Duplicated int            `json:"duplicated"`
	Missing    int            `json:"missing"`
	Exact      bool           `json:"exact"`
	// LagSeconds runs from the last status write (in any cluster) to the
	// first scrape of the gateway that had every count.
	LagSeconds float64 `json:"lag_seconds"`
	// ScrapeSeconds is how long the last scrape of the gateway took: the
	// resolution of LagSeconds.
	ScrapeSeconds float64 `json:"scrape_seconds"`
	// AgentHeap is each agent's live heap after a GC (pprof, gc=1) once it
	// tracks its cluster; BaselineHeap that of an agent watching an empty
	// namespace; HeapPerDeployment their difference over -deployments.
	AgentHeap         []uint64 `json:"agent_heap_bytes"`
	BaselineHeap      uint64   `json:"baseline_heap_bytes"`
	HeapPerDeployment float64  `json:"heap_per_deployment_bytes"`
	AgentPeakRSSKiB   []uint64 `json:"agent_peak_rss_kib"`
	GatewayPeakRSSKiB uint64   `json:"gateway_peak_rss_kib"`
	TotalSeconds      float64  `json:"total_seconds"`
}

// collectorProc is an otelcol-dora process this command started.
type collectorProc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	health  string
	metrics string // gateway: Prometheus endpoint
	pprof   string // agents: pprof extension address
}

func startCollector(dir, name, bin, config, health string) (*collectorProc, error) {
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &collectorProc{name: name, cmd: cmd, exited: make(chan struct{}), logPath: logPath, health: health}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited during start-up; see %s", name, logPath)
		default:
		}
		if resp, err := http.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("%s not healthy after 2m; see %s", name, logPath)
}

// stop ends the process by its PID (SIGTERM, then SIGKILL).
func (p *collectorProc) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *collectorProc) peakRSSKiB() uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// liveHeap is the process's HeapAlloc right after a GC, from the pprof
// extension (the MemStats block of the debug=1 heap profile).
func (p *collectorProc) liveHeap() (uint64, error) {
	resp, err := http.Get("http://" + p.pprof + "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return heapAllocOf(resp.Body)
}

func saveHeapProfile(p *collectorProc, path string) error {
	resp, err := http.Get("http://" + p.pprof + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func heapAllocOf(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no HeapAlloc in the heap profile")
}

// steadyHeap reads the live heap until two readings a second apart are
// within 1% (the informer has listed and the tracker holds every
// Deployment), for at most a minute.
func (p *collectorProc) steadyHeap() (uint64, error) {
	var last uint64
	for range 60 {
		h, err := p.liveHeap()
		if err != nil {
			return 0, err
		}
		if last > 0 && h < last+last/100 && h+h/100 > last {
			return h, nil
		}
		last = h
		time.Sleep(time.Second)
	}
	return last, nil
}

func gatewayYAML(ports [3]int, maxServices int, maxStateBytes int64) string {
	return fmt.Sprintf(`receivers:
  dora:
    production_environments: [production]
    limits:
      # A gateway of tens of thousands of services needs more than the
      # defaults, sized for one installation: max_services 2,000 and the
      # memory guard's 512 MiB (which 30,000 services pass).
      max_services: %d
      max_state_bytes: %d
    webhooks:
      endpoint: 127.0.0.1:%d
      otlp:
        logs_path: /v1/logs
        # 127.0.0.1 only, as every process of this benchmark.
        insecure_skip_verify: true
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    without_scope_info: true
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, maxServices, maxStateBytes, ports[0], ports[1], ports[2])
}

// agentYAML is an agent as docs/agent-gateway.md configures it; namespace
// "" watches every namespace.
func agentYAML(ports [3]int, cluster, kubeconfig, namespace, gateway, stateDir string) string {
	ns := ""
	if namespace != "" {
		ns = fmt.Sprintf("      namespaces: [%s]\n", namespace)
	}
	return fmt.Sprintf(`receivers:
  dora:
    mode: agent
    cluster: %s
    kubernetes:
      auth_type: kubeConfig
      kubeconfig: %s
%s      environment:
        default: production
    storage: file_storage/agent
exporters:
  otlp_http:
    endpoint: %s
    sending_queue:
      enabled: true
      storage: file_storage/agent
      # A mass rollout of 10,000 Deployments is 20,000 records: the
      # default queue (1,000 requests) fills while the gateway catches up,
      # and the agent then backs off (nothing lost, but later).
      queue_size: 50000
    retry_on_failure:
      enabled: true
      max_elapsed_time: 0
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
  pprof:
    endpoint: 127.0.0.1:%d
  file_storage/agent:
    directory: %s
    create_directory: true
service:
  extensions: [health_check, pprof, file_storage/agent]
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [dora]
      exporters: [otlp_http]
`, cluster, kubeconfig, ns, gateway, ports[0], ports[1], stateDir)
}

func freePorts3() ([3]int, error) {
	var p [3]int
	for i := range p {
		var err error
		if p[i], err = localcluster.FreePort(); err != nil {
			return p, err
		}
	}
	return p, nil
}

func runGateway(o options) (*gatewayResults, error) {
	begin := time.Now()
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("otelcol-dora binary: %w (make build, or -bin)", err)
	}
	dir, err := clusterDir(o.dir)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res := &gatewayResults{Clusters: o.clusters, Deployments: o.deployments, Counted: map[string]int{}}
	ctx := context.Background()

	var clusters []*localcluster.Cluster
	defer func() {
		for _, c := range clusters {
			if err := c.Stop(); err != nil {
				log.Printf("stopping a control plane: %v", err)
			}
		}
	}()
	for i := range o.clusters {
		c, err := startCluster(filepath.Join(dir, fmt.Sprintf("cluster-%d", i)))
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
	}
	deps := make([][]*appsv1.Deployment, o.clusters)
	t := time.Now()
	err = eachCluster(clusters, func(i int, c *localcluster.Cluster) error {
		client, err := fastClient(c)
		if err != nil {
			return err
		}
		deps[i], err = populate(ctx, client, options{deployments: o.deployments, namespaces: o.namespaces, workers: max(1, o.workers/o.clusters)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("populating: %w", err)
	}
	res.PopulateSeconds = time.Since(t).Seconds()
	log.Printf("created %d Deployments in each of %d clusters in %.1fs", o.deployments, o.clusters, res.PopulateSeconds)

	gp, err := freePorts3()
	if err != nil {
		return nil, err
	}
	gw, err := startCollector(dir, "gateway", bin, gatewayYAML(gp, o.clusters*o.deployments+1000, int64(o.clusters*o.deployments+1000)<<17), fmt.Sprintf("http://127.0.0.1:%d/", gp[2]))
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	gw.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", gp[1])
	gatewayURL := fmt.Sprintf("http://127.0.0.1:%d", gp[0])

	startAgent := func(name, cluster, kubeconfig, namespace string) (*collectorProc, error) {
		ap, err := freePorts3()
		if err != nil {
			return nil, err
		}
		a, err := startCollector(dir, name, bin, agentYAML(ap, cluster, kubeconfig, namespace, gatewayURL, filepath.Join(dir, name+"-state")), fmt.Sprintf("http://127.0.0.1:%d/", ap[0]))
		if err != nil {
			return nil, err
		}
		a.pprof = fmt.Sprintf("127.0.0.1:%d", ap[1])
		return a, nil
	}
	// The baseline: the same agent binary and configuration, watching a
	// namespace that holds nothing.
	base, err := startAgent("agent-baseline", "baseline", clusters[0].Kubeconfig, "k8sscale-empty")
	if err != nil {
		return nil, err
	}
	if res.BaselineHeap, err = base.steadyHeap(); err != nil {
		base.stop()
		return nil, err
	}
	base.stop()
	var agents []*collectorProc
	defer func() {
		for _, a := range agents {
			a.stop()
		}
	}()
	for i, c := range clusters {
		a, err := startAgent(fmt.Sprintf("agent-%d", i), fmt.Sprintf("cluster-%d", i), c.Kubeconfig, "")
		if err != nil {
			return nil, err
		}
		agents = append(agents, a)
	}
	var heapSum float64
	for _, a := range agents {
		h, err := a.steadyHeap()
		if err != nil {
			return nil, err
		}
		res.AgentHeap = append(res.AgentHeap, h)
		heapSum += float64(h) - float64(res.BaselineHeap)
	}
	res.HeapPerDeployment = heapSum / float64(len(agents)) / float64(o.deployments)
	if o.profileDir != "" {
		// The first agent's heap profile after sync (pprof's sampling rate).
		if err := saveHeapProfile(agents[0], filepath.Join(o.profileDir, "agent.heap.pprof")); err != nil {
			log.Printf("heap profile: %v", err)
		}
	}
	log.Printf("agents synced: live heap %v bytes (baseline %d): %.0f B per Deployment", res.AgentHeap, res.BaselineHeap, res.HeapPerDeployment)

	// The mass rollout, in every cluster at once.
	clients := make([]kubernetes.Interface, len(clusters))
	for i, c := range clusters {
		if clients[i], err = fastClient(c); err != nil {
			return nil, err
		}
	}
	t = time.Now()
	err = eachCluster(clusters, func(i int, _ *localcluster.Cluster) error {
		return forEach(deps[i], max(1, o.workers/o.clusters), func(j int) error { return newImage(ctx, clients[i], deps[i], j) })
	})
	if err != nil {
		return nil, fmt.Errorf("new images: %w", err)
	}
	res.ImageSeconds = time.Since(t).Seconds()
	firstStatus := time.Now()
	err = eachCluster(clusters, func(i int, _ *localcluster.Cluster) error {
		return forEach(deps[i], max(1, o.workers/o.clusters), func(j int) error { return completeRollout(ctx, clients[i], deps[i][j]) })
	})
	if err != nil {
		return nil, fmt.Errorf("rollout status: %w", err)
	}
	lastStatus := time.Now()
	res.StatusSeconds = lastStatus.Sub(firstStatus).Seconds()
	log.Printf("rollout: %d images in %.1fs, %d statuses in %.1fs", o.clusters*o.deployments, res.ImageSeconds, o.clusters*o.deployments, res.StatusSeconds)

	want := o.clusters * o.deployments
	deadline := lastStatus.Add(o.rolloutTimeout)
	var tally gatewayTally
	// The endpoint of tens of thousands of services is large: scrapes a
	// little apart, so that the scraping does not slow the gateway down;
	// the lag is the scrape's start, when the counts were already there.
	for {
		at := time.Now()
		tally, err = scrapeGateway(gw.metrics)
		res.ScrapeSeconds = time.Since(at).Seconds()
		if err == nil && tally.total >= want {
			res.LagSeconds = at.Sub(lastStatus).Seconds()
			break
		}
		if time.Now().After(deadline) {
			log.Printf("gateway counted %d of %d within %s (%v)", tally.total, want, o.rolloutTimeout, err)
			break
		}
		log.Printf("gateway: %d of %d counted", tally.total, want)
		time.Sleep(time.Duration(max(100, o.clusters*o.deployments/100)) * time.Millisecond)
	}
	// A little longer, so that a rollout counted twice would show.
	time.Sleep(3 * time.Second)
	if tally, err = scrapeGateway(gw.metrics); err != nil {
		return nil, err
	}
	res.Duplicated = tally.duplicated
	res.Counted = tally.byCluster
	res.Missing = want - tally.series
	res.Exact = tally.total == want && tally.series == want && tally.duplicated == 0
	for i := range clusters {
		if tally.byCluster[fmt.Sprintf("cluster-%d", i)] != o.deployments {
			res.Exact = false
		}
	}
	for _, a := range agents {
		res.AgentPeakRSSKiB = append(res.AgentPeakRSSKiB, a.peakRSSKiB())
	}
	res.GatewayPeakRSSKiB = gw.peakRSSKiB()
	res.TotalSeconds = time.Since(begin).Seconds()
	return res, nil
}

// eachCluster runs f for every cluster at once and returns the first error.
func eachCluster(clusters []*localcluster.Cluster, f func(i int, c *localcluster.Cluster) error) error {
	errs := make([]error, len(clusters))
	var wg sync.WaitGroup
	for i, c := range clusters {
		wg.Go(func() { errs[i] = f(i, c) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// gatewayTally is the gateway's successful-deployment counters: the total,
// per cluster, the series, and the series above 1.
type gatewayTally struct {
	total, series, duplicated int
	byCluster                 map[string]int
}

var scrapeClient = &http.Client{Timeout: 2 * time.Minute}

func scrapeGateway(url string) (gatewayTally, error) {
	resp, err := scrapeClient.Get(url)
	if err != nil {
		return gatewayTally{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return gatewayTally{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseGatewayTally(resp.Body)
}

func parseGatewayTally(r io.Reader) (gatewayTally, error) {
	t := gatewayTally{byCluster: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "platform_deployments_total{")
		if !ok || !strings.Contains(rest, `status="success"`) {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			return t, fmt.Errorf("cannot parse %q", line)
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return t, fmt.Errorf("value of %q: %w", line, err)
		}
		cluster := ""
		if _, after, ok := strings.Cut(labels, `cluster="`); ok {
			cluster, _, _ = strings.Cut(after, `"`)
		}
		n := int(v)
		t.total += n
		t.byCluster[cluster] += n
		if n > 0 {
			t.series++
		}
		if n > 1 {
			t.duplicated++
		}
	}
	return t, sc.Err()
}

func (r *gatewayResults) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("")
	p("## Kubernetes at scale through agents and a gateway (issue 16, cmd/k8sscale -clusters %d)", r.Clusters)
	p("")
	p("Written by `k8sscale` on %s. Command:", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	p("")
	p("```")
	p("%s", strings.Join(append([]string{"k8sscale"}, os.Args[1:]...), " "))
	p("```")
	p("")
	p("%d real etcd + kube-apiserver pairs on this machine, %d Deployments each; one `bin/otelcol-dora` agent per cluster (`mode: agent`, `otlp_http` exporter with a `sending_queue` on `file_storage`, its source's state on the same storage), one `bin/otelcol-dora` gateway (`webhooks::otlp::logs_path`, prometheus exporter); every process on 127.0.0.1. The mass rollout writes a new image to every Deployment of every cluster at once, then the status of a completed rollout (status subresource, as the Deployment controller writes it).", r.Clusters, r.Deployments)
	p("")
	p("| figure | value | target |")
	p("| --- | --- | --- |")
	clusters := make([]string, 0, len(r.Counted))
	for i := range r.Clusters {
		c := fmt.Sprintf("cluster-%d", i)
		clusters = append(clusters, fmt.Sprintf("%s %d", c, r.Counted[c]))
	}
	p("| counted at the gateway (`platform_deployments_total{status=\"success\"}`), per cluster | %s | %d each, once per Deployment: %s |", strings.Join(clusters, ", "), r.Deployments, met(r.Exact))
	p("| Deployments counted twice / not counted | %d / %d | 0 / 0 |", r.Duplicated, r.Missing)
	p("| last status write → last count at the gateway (the start of the first scrape that had every count; a scrape of the endpoint took %.1f s) | %.2f s | |", r.ScrapeSeconds, r.LagSeconds)
	p("| writing the images / the statuses (all clusters) | %.1f s / %.1f s | |", r.ImageSeconds, r.StatusSeconds)
	heaps := make([]string, len(r.AgentHeap))
	for i, h := range r.AgentHeap {
		heaps[i] = mib(h / 1024)
	}
	p("| agent heap per Deployment (live heap after GC minus an agent watching an empty namespace, %s, over %d) | **%.0f B** (agents %s) | < 1 KiB: %s |", mib(r.BaselineHeap/1024), r.Deployments, r.HeapPerDeployment, strings.Join(heaps, ", "), met(r.HeapPerDeployment < targetHeapPerDeployment))
	rss := make([]string, len(r.AgentPeakRSSKiB))
	for i, k := range r.AgentPeakRSSKiB {
		rss[i] = mib(k)
	}
	p("| peak RSS: agents / gateway | %s / %s | |", strings.Join(rss, ", "), mib(r.GatewayPeakRSSKiB))
	p("| populating / whole run | %.0f s / %.0f s | |", r.PopulateSeconds, r.TotalSeconds)
	return b.String()
}
