package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// The tests of this file's family (senders_*_test.go and
// argocd_notifications_test.go) send through real sending software: the
// real Prometheus and Alertmanager, Argo CD's notifications engine, the
// CloudEvents Go SDK and the OpenTelemetry Go SDK's OTLP exporter. Each
// goes through a lostAnswerProxy, so each sender's own retry is exercised.

const (
	argocdToken   = "e2e-argocd-token"
	cdeventsToken = "e2e-cdevents-token"
)

// sendersCollector runs otelcol-dora with every source a real sender of
// these tests talks to (generic, alertmanager, argocd, cdevents, otlp),
// without Kubernetes, with the services mapping acme/api -> shop/api and
// acme/web -> shop/web. It returns the webhook base URL and the metrics
// URL.
func sendersCollector(t *testing.T) (string, string) {
	t.Helper()
	bin := collectorBinary(t)
	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    services:
      - {repository: acme/api, namespace: shop, deployment: api}
      - {repository: acme/web, namespace: shop, deployment: web}
    webhooks:
      endpoint: %s
      generic:
        secret: %s
      alertmanager:
        token: %s
      argocd:
        token: %s
      cdevents:
        token: %s
      otlp:
        deployment_pipelines: ["deploy*"]
        auth:
          authenticator: bearertokenauth/ci
exporters:
  prometheus:
    endpoint: %s
    without_scope_info: true
extensions:
  health_check:
    endpoint: %s
  bearertokenauth/ci:
    token: %s
service:
  extensions: [health_check, bearertokenauth/ci]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, webhookAddr, genericSecret, alertmanagerToken, argocdToken, cdeventsToken, promAddr, healthAddr, otlpToken), 0o600))
	runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, "http://" + promAddr + "/metrics"
}

// exchange is one request that went through a lostAnswerProxy.
type exchange struct {
	Method, Path string
	Header       http.Header
	Body         []byte // as sent (still compressed when it was)
	// Upstream is the receiver's status, Answered the sender's.
	Upstream, Answered int
	UpstreamBody       []byte
}

// lostAnswerProxy stands between a sender and otelcol-dora on 127.0.0.1.
// It forwards every request; for the first `lose` requests it then throws
// the receiver's answer away and answers the sender 503, as a load
// balancer does whose upstream answered too late. The receiver has then
// applied the delivery, the sender believes it failed and retries it on its
// own schedule: the retry must be recognized as a redelivery and counted
// once. (A proxy that answered 503 without forwarding would test only that
// the sender retries, not that its retry is counted once.)
type lostAnswerProxy struct {
	URL string

	target *url.URL
	mu     sync.Mutex
	lose   int
	seen   []exchange
}

func startLostAnswerProxy(t *testing.T, target string, lose int) *lostAnswerProxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &lostAnswerProxy{target: u, lose: lose}
	srv := httptest.NewUnstartedServer(p)
	srv.Start() // httptest listens on 127.0.0.1
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *lostAnswerProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out, err := http.NewRequest(r.Method, p.target.String()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	p.mu.Lock()
	ex := exchange{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Upstream: resp.StatusCode, UpstreamBody: respBody, Answered: resp.StatusCode}
	lost := p.lose > 0
	if lost {
		p.lose--
		ex.Answered = http.StatusServiceUnavailable
	}
	p.seen = append(p.seen, ex)
	p.mu.Unlock()

	if lost {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "upstream answer lost\n")
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

// exchanges returns what went through so far.
func (p *lostAnswerProxy) exchanges() []exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]exchange(nil), p.seen...)
}

// String lists the exchanges, for failure messages.
func (p *lostAnswerProxy) String() string {
	var b strings.Builder
	for i, e := range p.exchanges() {
		fmt.Fprintf(&b, "#%d %s %s -> receiver %d %q, sender got %d\n", i, e.Method, e.Path, e.Upstream, bytes.TrimSpace(e.UpstreamBody), e.Answered)
	}
	return b.String()
}

// loseNext loses the answers of the next n requests.
func (p *lostAnswerProxy) loseNext(n int) {
	p.mu.Lock()
	p.lose = n
	p.mu.Unlock()
}
