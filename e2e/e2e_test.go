// Package e2e runs the built otelcol-dora binary on the shipped
// config/local.yaml against a real control plane (etcd, kube-apiserver,
// kube-controller-manager and a fake kubelet, so rollouts complete for real)
// and reads the DORA metrics from its Prometheus endpoint, as a user would.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

const waitFor = 90 * time.Second

func TestOtelcolDoraEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and the control plane; run through make test")
	}
	bin := collectorBinary(t)
	cp := localcluster.StartForTest(t, localcluster.Options{FakeKubelet: true})
	client := cp.Client()
	ctx := context.Background()

	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// A Deployment rolled out before the collector starts is not a new
	// deployment.
	createDeployment(t, client, "shop", "legacy", "registry.local/legacy:1.0")
	waitRolledOut(t, client, "shop", "legacy")

	webhookAddr := freeAddr(t)
	metricsURL := startCollectorWith(t, bin, cp.Kubeconfig, nil,
		"DORA_WEBHOOK_ENDPOINT="+webhookAddr, "DORA_GITHUB_SECRET="+githubSecret)
	m := scrape(t, metricsURL)
	assert.Zero(t, m.sum("platform_deployments_total", nil), "nothing counted at start")

	success := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production", "status": "success"}

	// 1. A new service: its first rollout is a deployment.
	createDeployment(t, client, "shop", "api", "registry.local/api:1.0")
	waitMetric(t, metricsURL, "platform_deployments_total", success, 1)

	// 2. A commit pushed to GitHub 90 minutes ago ships in a new image: one
	// more deployment, and a lead time from the push's commit timestamp.
	const sha = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
	push := fixture(t, "../internal/github/testdata/push.json")
	commit := push["commits"].([]any)[0].(map[string]any)
	commit["id"], commit["timestamp"] = sha, time.Now().Add(-90*time.Minute).UTC().Format(time.RFC3339)
	push["commits"], push["head_commit"], push["after"] = []any{commit}, commit, sha
	r := sendGitHub(t, "http://"+webhookAddr, "push", "push-e2e", push)
	require.Equal(t, http.StatusOK, r.status, r.body)
	updateDeployment(t, client, "shop", "api", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:2.0"
		d.Spec.Template.Annotations = map[string]string{"dora.otelcol.dev/commit-sha": sha}
	})
	waitMetric(t, metricsURL, "platform_deployments_total", success, 2)
	m = scrape(t, metricsURL)
	lead := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production"}
	assert.Equal(t, 1.0, m.sum("platform_lead_time_seconds_count", lead))
	assert.InDelta(t, 90*60, m.sum("platform_lead_time_seconds_sum", lead), 120, "lead time is about 90 minutes")
	assert.Equal(t, 1.0, m.sum("platform_lead_time_seconds_bucket", with(lead, "le", "7200")))
	assert.Equal(t, 0.0, m.sum("platform_lead_time_seconds_bucket", with(lead, "le", "3600")))

	// 3. A broken image: pods never become ready, the controller gives up
	// after progressDeadlineSeconds.
	cp.SetPodsBecomeReady(false)
	updateDeployment(t, client, "shop", "api", func(d *appsv1.Deployment) {
		deadline := int32(3)
		d.Spec.ProgressDeadlineSeconds = &deadline
		d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:3.0-broken"
	})
	waitMetric(t, metricsURL, "platform_deployment_failures_total",
		map[string]string{"namespace": "shop", "deployment": "api", "reason": "ProgressDeadlineExceeded"}, 1)
	waitMetric(t, metricsURL, "platform_deployments_total", with(success, "status", "failure"), 1)

	// 4. Roll back to the 2.0 template (what `kubectl rollout undo` does):
	// the rollback completes, which is the recovery.
	cp.SetPodsBecomeReady(true)
	updateDeployment(t, client, "shop", "api", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:2.0"
	})
	waitMetric(t, metricsURL, "platform_deployments_total", success, 3)
	waitMetric(t, metricsURL, "platform_recovery_time_seconds_count", lead, 1)

	// 5. Scaling is not a deployment.
	updateDeployment(t, client, "shop", "api", func(d *appsv1.Deployment) { n := int32(3); d.Spec.Replicas = &n })
	waitRolledOut(t, client, "shop", "api")
	createDeployment(t, client, "shop", "sentinel", "registry.local/sentinel:1.0")
	waitMetric(t, metricsURL, "platform_deployments_total", with(success, "deployment", "sentinel"), 1)

	m = scrape(t, metricsURL)
	assert.Equal(t, 3.0, m.sum("platform_deployments_total", success), "scale counted nothing")
	assert.Equal(t, 1.0, m.sum("platform_deployment_failures_total", map[string]string{"deployment": "api"}), "one change failure")
	assert.Zero(t, m.sum("platform_deployments_total", map[string]string{"deployment": "legacy"}))
	for _, name := range []string{"platform_deployments_total", "platform_deployment_failures_total", "platform_lead_time_seconds", "platform_recovery_time_seconds"} {
		assert.Contains(t, m.types, name, "metric family of the contract")
	}
	assert.Equal(t, "counter", m.types["platform_deployments_total"])
	assert.Equal(t, "histogram", m.types["platform_lead_time_seconds"])
}

// collectorProcess is a running otelcol-dora.
type collectorProcess struct {
	cmd     *exec.Cmd
	logPath string
	// exited is closed when the process has exited, with err its status.
	exited chan struct{}
	err    error
}

// kill stops the collector with SIGKILL, by PID, as `kill -9` does: it
// flushes and closes nothing. It returns once the process is gone.
func (p *collectorProcess) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL))
	<-p.exited
}

// log is what the collector wrote so far.
func (p *collectorProcess) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// runCollector runs otelcol-dora with args and extra environment until the
// test ends, stopping it by PID, and waits until its health check (on
// healthAddr) answers.
func runCollector(t *testing.T, bin string, args, env []string, healthAddr string) *collectorProcess {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "otelcol-dora.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &collectorProcess{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		logFile.Close()
		if t.Failed() {
			t.Logf("otelcol-dora log:\n%s", p.log())
		}
	})

	healthURL := "http://" + healthAddr + "/"
	require.Eventually(t, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("otelcol-dora exited: %v\n%s", p.err, p.log())
		default:
		}
		resp, err := http.Get(healthURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "otelcol-dora never became healthy")
	return p
}

// collectorBinary is the otelcol-dora that `make build` produced.
func collectorBinary(t *testing.T) string {
	bin := os.Getenv("OTELCOL_DORA_BIN")
	if bin == "" {
		bin = filepath.Join("..", "bin", "otelcol-dora")
	}
	bin, err := filepath.Abs(bin)
	require.NoError(t, err)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("otelcol-dora binary not found at %s (run `make build`, or `make test` which builds it): %v", bin, err)
	}
	return bin
}

// startCollectorWith is startCollector with more configuration files merged
// over config/local.yaml and more environment variables.
func startCollectorWith(t *testing.T, bin, kubeconfig string, extraConfigs []string, env ...string) string {
	promAddr, healthAddr, telemetryPort := freeAddr(t), freeAddr(t), freePort(t)
	args := []string{"--config", filepath.Join("..", "config", "local.yaml")}
	for _, c := range extraConfigs {
		args = append(args, "--config", c)
	}
	env = append([]string{
		// A fresh state for each collector (the shipped default is
		// .run/storage, which would carry counts from run to run).
		"DORA_STORAGE_DIR=" + filepath.Join(t.TempDir(), "storage"),
		"DORA_KUBECONFIG=" + kubeconfig,
		"DORA_PROMETHEUS_ENDPOINT=" + promAddr,
		"DORA_HEALTH_ENDPOINT=" + healthAddr,
		"DORA_TELEMETRY_PORT=" + strconv.Itoa(telemetryPort),
	}, env...)
	runCollector(t, bin, args, env, healthAddr)
	return "http://" + promAddr + "/metrics"
}

func freePort(t *testing.T) int {
	p, err := localcluster.FreePort()
	require.NoError(t, err)
	return p
}

func freeAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }

func createDeployment(t *testing.T, client kubernetes.Interface, ns, name, image string) {
	replicas := int32(2)
	_, err := client.AppsV1().Deployments(ns).Create(context.Background(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func updateDeployment(t *testing.T, client kubernetes.Interface, ns, name string, mutate func(*appsv1.Deployment)) {
	require.Eventually(t, func() bool {
		d, err := client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		require.NoError(t, err)
		mutate(d)
		_, err = client.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err == nil // a conflict with the controller's write: retry
	}, 10*time.Second, 50*time.Millisecond)
}

func waitRolledOut(t *testing.T, client kubernetes.Interface, ns, name string) {
	require.Eventually(t, func() bool {
		d, err := client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		require.NoError(t, err)
		if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != *d.Spec.Replicas || d.Status.AvailableReplicas != *d.Spec.Replicas {
			return false
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Reason == "NewReplicaSetAvailable" {
				return true
			}
		}
		return false
	}, waitFor, 100*time.Millisecond, "%s/%s never rolled out", ns, name)
}

func waitMetric(t *testing.T, url, name string, labels map[string]string, want float64) {
	t.Helper()
	var last float64
	require.Eventually(t, func() bool {
		last = scrape(t, url).sum(name, labels)
		return last == want
	}, waitFor, 100*time.Millisecond, "%s%v never reached %v", name, labels, want)
	_ = last
}

func with(m map[string]string, k, v string) map[string]string {
	c := map[string]string{k: v}
	for mk, mv := range m {
		if mk != k {
			c[mk] = mv
		}
	}
	return c
}

// exposition is a parsed Prometheus text exposition.
type exposition struct {
	samples []sample
	types   map[string]string // metric family -> type
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func scrape(t *testing.T, url string) exposition {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	e, err := parseExposition(resp.Body)
	require.NoError(t, err)
	return e
}

// sum adds the values of the samples named name whose labels include
// labels.
func (e exposition) sum(name string, labels map[string]string) float64 {
	var total float64
	for _, s := range e.samples {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range labels {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += s.value
		}
	}
	return total
}

// parseExposition reads the Prometheus text format (0.0.4), enough of it
// for the exporter's output: TYPE lines and samples with quoted labels.
func parseExposition(r io.Reader) (exposition, error) {
	e := exposition{types: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			if len(f) == 4 {
				e.types[f[2]] = f[3]
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return e, fmt.Errorf("%q: %w", line, err)
		}
		e.samples = append(e.samples, s)
	}
	return e, sc.Err()
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexByte(line, '{'); i >= 0 {
		s.name = line[:i]
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return s, fmt.Errorf("unbalanced braces")
		}
		body := line[i+1 : j]
		for body != "" {
			eq := strings.IndexByte(body, '=')
			if eq < 0 || eq+1 >= len(body) || body[eq+1] != '"' {
				return s, fmt.Errorf("bad label")
			}
			key := body[:eq]
			val, n, err := unquote(body[eq+1:])
			if err != nil {
				return s, err
			}
			s.labels[key] = val
			body = strings.TrimPrefix(body[eq+1+n:], ",")
		}
		rest = strings.TrimSpace(line[j+1:])
	} else {
		f := strings.Fields(line)
		if len(f) < 2 {
			return s, fmt.Errorf("no value")
		}
		s.name, rest = f[0], f[1]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	s.value = v
	return s, err
}

// unquote reads a double-quoted label value with \\, \" and \n escapes and
// returns it with the number of bytes consumed.
func unquote(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("bad escape")
			}
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), i + 1, nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, fmt.Errorf("unterminated label value")
}
