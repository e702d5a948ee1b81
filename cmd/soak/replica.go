package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

const (
	webhookSecret = "soak-webhook-secret"
	agentToken    = "soak-agent-token"
	leaseName     = "otelcol-dora-soak"
	leaseDuration = 4 * time.Second
)

// replica is one otelcol-dora process and the ports it keeps across
// restarts; the state directory is shared by all replicas.
type replica struct {
	name       string
	configPath string
	logPath    string
	webhook    string // base URL of the webhook server
	metrics    string // Prometheus endpoint URL
	health     string // health_check extension URL

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	starts  int
	peakRSS int64 // bytes, the highest VmHWM/VmRSS seen over all its processes
}

// newReplica reserves the replica's ports and writes the configuration
// config gives for them (webhook server, Prometheus endpoint, health check).
func newReplica(name, dir string, config func(ports [3]int) string) (*replica, error) {
	var ports [3]int
	for i := range ports {
		p, err := localcluster.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	r := &replica{
		name:       name,
		configPath: filepath.Join(dir, name+".yaml"),
		logPath:    filepath.Join(dir, name+".log"),
		webhook:    fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		metrics:    fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1]),
		health:     fmt.Sprintf("http://127.0.0.1:%d/", ports[2]),
	}
	if err := os.WriteFile(r.configPath, []byte(config(ports)), 0o600); err != nil {
		return nil, err
	}
	return r, nil
}

// standaloneConfig is a replica of the single-cluster topology: it watches
// the cluster, takes webhooks and computes the metrics.
func standaloneConfig(name, kubeconfig, stateDir string) func([3]int) string {
	// Short lease timings keep a failover within a few seconds; the rest is
	// what a user's configuration has.
	return func(ports [3]int) string {
		return fmt.Sprintf(`receivers:
  dora:
    production_environments: [production]
    kubernetes:
      auth_type: kubeConfig
      kubeconfig: %s
      namespaces: [soak]
      environment:
        default: production
    leader_election:
      lease_name: %s
      lease_namespace: default
      identity: %s
      lease_duration: %s
      renew_deadline: 3s
      retry_period: 500ms
    storage: file_storage/dora
    webhooks:
      endpoint: 127.0.0.1:%d
      generic:
        secret: %s
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    without_scope_info: true
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
  file_storage/dora:
    directory: %s
    create_directory: true
    # A replica that becomes leader waits for the old leader's file lock.
    timeout: 30s
service:
  extensions: [health_check, file_storage/dora]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, kubeconfig, leaseName, name, leaseDuration, ports[0], webhookSecret, ports[1], ports[2], stateDir)
	}
}

// gatewayConfig is a gateway replica: no cluster of its own, webhooks and
// the agents' records (the otlp source's logs path, authenticated with a
// bearer token), its Lease on leaseKubeconfig's API server.
func gatewayConfig(name, leaseKubeconfig, stateDir string) func([3]int) string {
	return func(ports [3]int) string {
		return fmt.Sprintf(`receivers:
  dora:
    production_environments: [production]
    leader_election:
      auth_type: kubeConfig
      kubeconfig: %s
      lease_name: %s
      lease_namespace: default
      identity: %s
      lease_duration: %s
      renew_deadline: 3s
      retry_period: 500ms
    storage: file_storage/dora
    webhooks:
      endpoint: 127.0.0.1:%d
      generic:
        secret: %s
      otlp:
        logs_path: /v1/logs
        auth:
          authenticator: bearertokenauth/agents
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    without_scope_info: true
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
  bearertokenauth/agents:
    token: %s
  file_storage/dora:
    directory: %s
    create_directory: true
    timeout: 30s
service:
  extensions: [health_check, bearertokenauth/agents, file_storage/dora]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, leaseKubeconfig, leaseName, name, leaseDuration, ports[0], webhookSecret, ports[1], ports[2], agentToken, stateDir)
	}
}

// agentConfig is the agent of one cluster: mode agent, forwarding through
// otlp_http to the gateway's address (the soak's stand-in for a Service),
// with the sending queue on file_storage and retries without a time limit,
// so that a gateway down or restarting loses nothing. Its own state (the
// source's) is on the same file_storage.
func agentConfig(cluster, kubeconfig, gatewayURL, stateDir string) func([3]int) string {
	return func(ports [3]int) string {
		return fmt.Sprintf(`receivers:
  dora:
    mode: agent
    cluster: %s
    kubernetes:
      auth_type: kubeConfig
      kubeconfig: %s
      namespaces: [soak]
      environment:
        default: production
    storage: file_storage/agent
exporters:
  otlp_http:
    endpoint: %s
    auth:
      authenticator: bearertokenauth/gateway
    sending_queue:
      enabled: true
      storage: file_storage/agent
    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 2s
      max_elapsed_time: 0
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
  bearertokenauth/gateway:
    token: %s
  file_storage/agent:
    directory: %s
    create_directory: true
service:
  extensions: [health_check, bearertokenauth/gateway, file_storage/agent]
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [dora]
      exporters: [otlp_http]
`, cluster, kubeconfig, gatewayURL, ports[2], agentToken, stateDir)
	}
}

// start runs the process (its output appended to the replica's log) and
// waits until its health check answers.
func (r *replica) start(bin string) error {
	logFile, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--config", r.configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Never outlive the soak command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.starts++
	r.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start-up; see %s", r.name, r.logPath)
		default:
		}
		if resp, err := http.Get(r.health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy after 60s; see %s", r.name, r.logPath)
}

// stop sends sig to the process, by PID, and waits until it is gone
// (SIGKILL after 20 s if it does not stop).
func (r *replica) stop(sig syscall.Signal) {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	r.sampleRSS()
	_ = syscall.Kill(cmd.Process.Pid, sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	r.mu.Lock()
	r.cmd = nil
	r.mu.Unlock()
}

// ready reports whether the replica answers its readiness path with 200:
// it is the leader.
func (r *replica) ready(client *http.Client) bool {
	resp, err := client.Get(r.webhook + "/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// sampleRSS records the process's peak resident memory (VmHWM, the
// kernel's high-water mark, which also covers moments between samples).
func (r *replica) sampleRSS() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil && kb*1024 > r.peakRSS {
					r.peakRSS = kb * 1024
				}
			}
		}
	}
}
