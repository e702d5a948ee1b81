package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// collector is a webhook.Sink that keeps every event and the status of
// every delivery.
type collector struct {
	mu       sync.Mutex
	events   []event.Event
	statuses []int
}

func (c *collector) sink(_ context.Context, source string, events []event.Event) (webhook.SinkResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range events {
		if ev.Source != source {
			return webhook.SinkResult{}, fmt.Errorf("%w: source %q delivered by %q", webhook.ErrInvalidEvent, ev.Source, source)
		}
	}
	c.events = append(c.events, events...)
	return webhook.SinkResult{Accepted: len(events)}, nil
}

func (c *collector) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		c.mu.Lock()
		c.statuses = append(c.statuses, rec.Code)
		c.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// waitFor returns the first event of kind, failing after timeout.
func (c *collector) waitFor(t *testing.T, kind event.Kind, timeout time.Duration, am *amProcess) event.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, ev := range c.events {
			if ev.Kind == kind {
				c.mu.Unlock()
				return ev
			}
		}
		c.mu.Unlock()
		if err := am.exited(); err != nil {
			t.Fatalf("alertmanager exited while waiting for %s: %v\n%s", kind, err, am.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("no %s event within %s; events so far: %+v; delivery statuses: %v\nalertmanager log:\n%s", kind, timeout, c.events, c.statuses, am.log())
	return event.Event{}
}

type amProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

func (p *amProcess) exited() error {
	select {
	case <-p.done:
		if p.waitErr == nil {
			return errors.New("exit status 0")
		}
		return p.waitErr
	default:
		return nil
	}
}

func (p *amProcess) log() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func (p *amProcess) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Logf("alertmanager (pid %d) ignored SIGTERM; killing it", p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// alertmanagerBinary finds the alertmanager that `make tools` builds.
func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	dir, err := localcluster.BinDir()
	if err != nil {
		t.Fatalf("finding the tools directory: %v", err)
	}
	bin := filepath.Join(dir, "alertmanager")
	info, err := os.Stat(bin)
	if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		t.Fatalf("alertmanager is not an executable at %s (%v): run `make tools` to build it, or set DORA_TOOLS_BIN", bin, err)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := localcluster.FreePort()
	require.NoError(t, err)
	return port
}

func startAlertmanager(t *testing.T, bin, webhookURL, credentials string) (*amProcess, string) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	cfg := fmt.Sprintf(`route:
  receiver: dora
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: dora
    webhook_configs:
      - url: %q
        send_resolved: true
        http_config:
          authorization:
            credentials: %q
`, webhookURL, credentials)
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	var last *amProcess
	var addr string
	for attempt := 0; attempt < 3; attempt++ {
		addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
		p := &amProcess{logPath: filepath.Join(dir, fmt.Sprintf("alertmanager-%d.log", attempt)), done: make(chan struct{})}
		logFile, err := os.Create(p.logPath)
		require.NoError(t, err)
		p.cmd = exec.Command(bin,
			"--config.file="+cfgPath,
			"--web.listen-address="+addr,
			"--cluster.listen-address=",
			"--storage.path="+filepath.Join(dir, "data"),
			"--log.level=debug",
		)
		p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
		setDeathSignal(p.cmd)
		require.NoError(t, p.cmd.Start())
		go func() {
			p.waitErr = p.cmd.Wait()
			logFile.Close()
			close(p.done)
		}()
		t.Cleanup(func() { p.stop(t) })
		last = p
		if waitReady(p, "http://"+addr+"/-/ready", 20*time.Second) {
			return p, "http://" + addr
		}
		if strings.Contains(p.log(), "address already in use") {
			p.stop(t)
			continue // lost the port to another process; try another
		}
		break
	}
	t.Fatalf("alertmanager did not become ready at %s\n%s", addr, last.log())
	return nil, ""
}

func waitReady(p *amProcess, url string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() != nil {
			return false
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func postAlert(t *testing.T, base string, alert map[string]any) {
	t.Helper()
	body, err := json.Marshal([]any{alert})
	require.NoError(t, err)
	resp, err := http.Post(base+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "POST /api/v2/alerts")
}

// TestRealAlertmanager sends an alert through a real Alertmanager and
// checks what its webhook notifications become.
func TestRealAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Alertmanager; skipped with -short")
	}
	bin := alertmanagerBinary(t)

	const credentials = "real-am-token"
	cfg := DefaultConfig()
	cfg.Token = credentials
	require.NoError(t, cfg.Validate())
	var c collector
	srv := httptest.NewServer(c.wrap(webhook.NewHandler(webhook.Options{
		Routes: []webhook.Route{{Path: cfg.Path, Provider: New(cfg)}},
		Sink:   c.sink,
	})))
	t.Cleanup(srv.Close)
	require.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"), srv.URL)

	am, base := startAlertmanager(t, bin, srv.URL+cfg.Path, credentials)

	labels := map[string]string{"alertname": "HighErrorRate", "service": "api", "namespace": "shop", "severity": "critical"}
	startsAt := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	alert := map[string]any{
		"labels":       labels,
		"annotations":  map[string]string{"summary": "api is failing requests"},
		"startsAt":     startsAt.Format(time.RFC3339),
		"generatorURL": "http://prometheus.example:9090/graph",
	}
	postAlert(t, base, alert)

	wantIncident := "alertmanager/" + Fingerprint(labels) + "/" + strconv.FormatInt(startsAt.Unix(), 10)
	opened := c.waitFor(t, event.IncidentOpened, 30*time.Second, am)
	assert.Equal(t, event.Event{
		Kind:       event.IncidentOpened,
		Source:     event.SourceAlertmanager,
		ID:         wantIncident + "/firing",
		Service:    event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		IncidentID: wantIncident,
		Time:       opened.Time,
	}, opened, "the fingerprint Alertmanager sends is the one Fingerprint computes")
	assert.True(t, opened.Time.Equal(startsAt), "opened at startsAt %s, got %s", startsAt, opened.Time)

	endsAt := time.Now().UTC().Add(-time.Second).Truncate(time.Second)
	alert["endsAt"] = endsAt.Format(time.RFC3339)
	postAlert(t, base, alert)

	resolved := c.waitFor(t, event.IncidentResolved, 30*time.Second, am)
	assert.Equal(t, opened.IncidentID, resolved.IncidentID)
	assert.Equal(t, wantIncident+"/resolved", resolved.ID)
	assert.Equal(t, opened.Service, resolved.Service)
	assert.True(t, resolved.Time.Equal(endsAt), "resolved at endsAt %s, got %s", endsAt, resolved.Time)

	c.mu.Lock()
	defer c.mu.Unlock()
	for i, status := range c.statuses {
		assert.Equal(t, http.StatusOK, status, "delivery %d", i)
	}
}
