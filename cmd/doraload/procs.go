package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// process is a server this command started and stops by its PID.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error
}

func startProcess(dir, name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM to the process's PID and kills it if it has not exited
// within a few seconds.
func (p *process) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *process) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitHTTP waits until GET url answers 200, or the process exits.
func (p *process) waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %w\n%s", p.name, url, ctx.Err(), p.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

func freePorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := localcluster.FreePort()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// collector is a running otelcol-dora with the addresses it serves.
type collector struct {
	*process
	// ingest is the receiver's HTTP endpoint (dora webhooks or otlp).
	ingest string
	// metrics is the Prometheus exporter's /metrics URL (dora only).
	metrics string
	// pprof is the pprof extension's address, when asked for.
	pprof string
}

// doraConfig is otelcol-dora as users run it: the dora receiver's GitHub
// webhook and OTLP span sources (and, with a kubeconfig, its Kubernetes
// source), a metrics pipeline into the Prometheus exporter; default
// settings otherwise (emit_interval, log level info, internal telemetry).
const doraConfig = `receivers:
  dora:
    webhooks:
      endpoint: %[1]s
      github:
        secret: %[2]s
      bitbucket:
        secret: %[2]s
      bitbucket_dc:
        secret: %[2]s
      azuredevops:
        token: %[2]s
      otlp:
        deployment_pipelines: ["deploy*"]
        deployment_tasks: ["Deploy"]   # the Jenkins trace's Deploy stage
        # Like the otlp receiver it is compared with: no authentication.
        insecure_skip_verify: true
%[6]s
exporters:
  prometheus:
    endpoint: %[3]s
    without_scope_info: true
  nop:
extensions:
  health_check:
    endpoint: %[4]s
%[7]s
service:
  extensions: [health_check%[8]s]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %[5]d
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [%[9]s]
`

// otlpConfig is the collector's own otlp receiver (OTLP/HTTP) feeding
// no-op logs and traces pipelines: the baseline for the same request sizes.
const otlpConfig = `receivers:
  otlp:
    protocols:
      http:
        endpoint: %[1]s
exporters:
  nop:
extensions:
  health_check:
    endpoint: %[2]s
service:
  extensions: [health_check]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %[3]d
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [nop]
    traces:
      receivers: [otlp]
      exporters: [nop]
`

// startDora runs otelcol-dora on doraConfig, its metrics pipeline ending in
// exporter (prometheus or nop). kubeconfig adds the Kubernetes source; pprof
// adds the pprof extension.
func startDora(ctx context.Context, dir, name, bin, secret, exporter, kubeconfig string, pprof bool) (*collector, error) {
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	k8s := ""
	if kubeconfig != "" {
		k8s = fmt.Sprintf("    kubernetes:\n      auth_type: kubeConfig\n      kubeconfig: %s\n", kubeconfig)
	}
	pprofExt, pprofList, pprofAddr := "", "", ""
	if pprof {
		pprofAddr = addr(ports[4])
		pprofExt = fmt.Sprintf("  pprof:\n    endpoint: %s\n", pprofAddr)
		pprofList = ", pprof"
	}
	cfg := fmt.Sprintf(doraConfig, addr(ports[0]), secret, addr(ports[1]), addr(ports[2]), ports[3], k8s, pprofExt, pprofList, exporter)
	c, err := startCollectorProcess(ctx, dir, name, bin, cfg, addr(ports[2]))
	if err != nil {
		return nil, err
	}
	c.ingest, c.metrics, c.pprof = "http://"+addr(ports[0]), "http://"+addr(ports[1])+"/metrics", pprofAddr
	return c, nil
}

// startOTLP runs otelcol-dora on otlpConfig.
func startOTLP(ctx context.Context, dir, bin string) (*collector, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(otlpConfig, addr(ports[0]), addr(ports[1]), ports[2])
	c, err := startCollectorProcess(ctx, dir, "otlp", bin, cfg, addr(ports[1]))
	if err != nil {
		return nil, err
	}
	c.ingest = "http://" + addr(ports[0])
	return c, nil
}

func startCollectorProcess(ctx context.Context, dir, name, bin, cfg, health string) (*collector, error) {
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, err := startProcess(dir, name, bin, "--config", path)
	if err != nil {
		return nil, err
	}
	if err := p.waitHTTP(ctx, "http://"+health+"/"); err != nil {
		p.stop()
		return nil, err
	}
	return &collector{process: p}, nil
}

// startFloor runs this command's floor subcommand as its own process.
func startFloor(ctx context.Context, dir, secret string) (*collector, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := localcluster.FreePort()
	if err != nil {
		return nil, err
	}
	p, err := startProcess(dir, "floor", self, "floor", "-addr", addr(port), "-secret", secret)
	if err != nil {
		return nil, err
	}
	if err := p.waitHTTP(ctx, "http://"+addr(port)+floorHealthPath); err != nil {
		p.stop()
		return nil, err
	}
	return &collector{process: p, ingest: "http://" + addr(port)}, nil
}

// binaryPath resolves the otelcol-dora binary: -bin, $OTELCOL_DORA_BIN, or
// bin/otelcol-dora under the module root.
func binaryPath(flagValue, root string) (string, error) {
	bin := flagValue
	if bin == "" {
		bin = os.Getenv("OTELCOL_DORA_BIN")
	}
	if bin == "" {
		bin = filepath.Join(root, "bin", "otelcol-dora")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("otelcol-dora binary not found at %s (run `make build`): %w", bin, err)
	}
	return bin, nil
}

// moduleRoot walks up from the working directory to this module's go.mod.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/otelcol-dora/dorareceiver\n") {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("run doraload from inside the otelcol-dora checkout (it reads the webhook fixtures under internal/)")
		}
	}
}
