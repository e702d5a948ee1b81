package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/github"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const testSecret = "test-secret"

// TestMain lets the test binary serve as `doraload floor`, which runAll
// starts by re-executing itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		os.Exit(runFloor(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func root(t *testing.T) string {
	r, err := moduleRoot()
	require.NoError(t, err)
	return r
}

func githubProvider() *github.Provider {
	cfg := github.DefaultConfig()
	cfg.Secret = testSecret
	return github.New(cfg)
}

func parse(t *testing.T, p webhook.Provider, r request) webhook.Result {
	t.Helper()
	res, err := p.Parse(&webhook.Request{Header: r.header, Body: r.body, Received: time.Now()})
	require.NoError(t, err)
	return res
}

// Every push is new work for the receiver: its own delivery and commits,
// the fixture's size, and a signature the GitHub source accepts.
func TestPushRequestsAreDistinctSignedPushes(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join(root(t), pushFixture))
	require.NoError(t, err)
	a, err := pushRequests(root(t), testSecret, 0, 3)
	require.NoError(t, err)
	b, err := pushRequests(root(t), testSecret, 3, 1)
	require.NoError(t, err)
	reqs := append(a, b...)

	deliveries := map[string]bool{}
	revisions := map[string]bool{}
	for _, r := range reqs {
		assert.Len(t, r.body, len(fixture))
		deliveries[r.header.Get(github.DeliveryHeader)] = true
		res := parse(t, githubProvider(), r)
		require.NotEmpty(t, res.Events)
		for _, ev := range res.Events {
			require.Equal(t, event.ChangeCommitted, ev.Kind)
			assert.NotContains(t, string(fixture), ev.Revision, "a fixture SHA survived")
			assert.False(t, revisions[ev.Revision], "revision %s repeated", ev.Revision)
			revisions[ev.Revision] = true
		}
	}
	assert.Len(t, deliveries, len(reqs))
	n, err := commitCount(reqs[0].body)
	require.NoError(t, err)
	assert.Len(t, revisions, n*len(reqs))

	tampered := request{body: bytes.Replace(reqs[0].body, []byte("acme"), []byte("evil"), 1), header: reqs[0].header}
	_, err = githubProvider().Parse(&webhook.Request{Header: tampered.header, Body: tampered.body})
	assert.Error(t, err, "the signature covers the body")
}

func TestOTLPLogRequestsCarryThePushBytes(t *testing.T) {
	pushes, err := pushRequests(root(t), testSecret, 0, 2)
	require.NoError(t, err)
	logs, err := otlpLogRequests(pushes)
	require.NoError(t, err)
	for i, l := range logs {
		er := plogotlp.NewExportRequest()
		require.NoError(t, er.UnmarshalProto(l.body))
		lr := er.Logs().ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
		assert.Equal(t, pushes[i].body, lr.Body().Bytes().AsRaw())
		assert.InDelta(t, len(pushes[i].body), len(l.body), 300, "same size within the OTLP framing")
	}
}

func TestJenkinsSpanRequestsAreNewDeployments(t *testing.T) {
	reqs, err := jenkinsSpanRequests(root(t), 0, 3)
	require.NoError(t, err)
	cfg := cicdspans.DefaultConfig()
	cfg.DeploymentPipelines = []string{"deploy*"}
	cfg.DeploymentTasks = []string{"Deploy"} // as doraConfig
	p := cicdspans.New(cfg)
	ids := map[string]bool{}
	for _, r := range reqs {
		res := parse(t, p, r)
		require.Len(t, res.Events, 1, "the Deploy stage")
		assert.Equal(t, event.DeploymentSucceeded, res.Events[0].Kind)
		ids[res.Events[0].ID] = true
	}
	assert.Len(t, ids, 3)
}

func TestSpanRequestsAreNewDeployments(t *testing.T) {
	reqs, err := spanRequests(root(t), 0, 3)
	require.NoError(t, err)
	cfg := cicdspans.DefaultConfig()
	cfg.DeploymentPipelines = []string{"deploy*"}
	p := cicdspans.New(cfg)
	ids := map[string]bool{}
	for _, r := range reqs {
		res := parse(t, p, r)
		require.Len(t, res.Events, 1)
		assert.Equal(t, event.DeploymentSucceeded, res.Events[0].Kind)
		ids[res.Events[0].ID] = true
	}
	assert.Len(t, ids, 3)
}

func TestDeploymentStatusRequestsAreNewDeployments(t *testing.T) {
	ids := map[string]bool{}
	for i := range 3 {
		r, err := deploymentStatusRequest(root(t), testSecret, i, time.Now())
		require.NoError(t, err)
		res := parse(t, githubProvider(), r)
		require.Len(t, res.Events, 1)
		assert.Equal(t, event.DeploymentSucceeded, res.Events[0].Kind)
		ids[res.Events[0].ID] = true
	}
	assert.Len(t, ids, 3)
}

func TestFloorChecksTheSignature(t *testing.T) {
	srv := httptest.NewServer(floorHandler(configopaque.String(testSecret)))
	defer srv.Close()
	reqs, err := pushRequests(root(t), testSecret, 0, 1)
	require.NoError(t, err)
	c := srv.Client()
	require.NoError(t, send(context.Background(), c, srv.URL+"/webhooks/github", reqs[0]))
	bad := request{body: reqs[0].body, header: reqs[0].header.Clone()}
	bad.header.Set("X-Hub-Signature-256", "sha256="+webhook.SignHMACSHA256("other", bad.body))
	err = send(context.Background(), c, srv.URL+"/webhooks/github", bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 401")
}

func TestSumExposition(t *testing.T) {
	text := `# TYPE platform_deployments_total counter
platform_deployments_total{deployment="api",namespace="shop",status="success"} 3
platform_deployments_total{deployment="api",namespace="shop",status="failure"} 1
platform_deployments_total{deployment="web",namespace="shop",status="success"} 2.5
platform_deployments_total_other{status="success"} 100
platform_lead_time_seconds_count{status="success"} 7
`
	sum := func(labels ...string) float64 {
		v, err := sumExposition(bufio.NewScanner(strings.NewReader(text)), "platform_deployments_total", labels...)
		require.NoError(t, err)
		return v
	}
	assert.InDelta(t, 5.5, sum(`status="success"`), 1e-9)
	assert.InDelta(t, 6.5, sum(), 1e-9)
	assert.InDelta(t, 2.5, sum(`deployment="web"`, `status="success"`), 1e-9)
	assert.Zero(t, sum(`deployment="none"`))
}

func TestMedianOfRoundRatios(t *testing.T) {
	a := run{roundRates: []float64{100, 50, 300, 80}}
	b := run{roundRates: []float64{100, 100, 100, 0}}
	rs := roundRatios(a, b)
	assert.Equal(t, []float64{0.5, 1, 3}, rs, "sorted, rounds where b did nothing left out")
	assert.InDelta(t, 1, median(rs), 1e-9)
	assert.InDelta(t, 0.75, median([]float64{0.5, 1}), 1e-9)
	assert.Zero(t, median(nil))
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, quantile(d, 0.5))
	assert.Equal(t, 99*time.Millisecond, quantile(d, 0.99))
	assert.Equal(t, 100*time.Millisecond, quantile(d, 1))
	assert.Equal(t, time.Duration(0), quantile(nil, 0.5))
}

// The loops send each request exactly once, reuse connections, and count
// refusals as errors.
func TestLoopsSendEveryRequestOnce(t *testing.T) {
	var got, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	reqs := make([]request, 200)
	for i := range reqs {
		reqs[i] = request{body: []byte("x"), header: http.Header{}}
	}
	r := closedLoop(context.Background(), target{"t", srv.URL}, 4, reqs)
	assert.Equal(t, 200, r.requests)
	assert.Equal(t, int64(200), got.Load())
	assert.Equal(t, 20, r.errors)
	assert.Contains(t, r.firstError, "HTTP 503")
	assert.LessOrEqual(t, conns.Load(), int64(4), "keep-alive: one connection per sender")

	got.Store(0)
	start := time.Now()
	client := newClient(8)
	defer client.CloseIdleConnections()
	r = openLoop(context.Background(), client, target{"t", srv.URL}, 1000, 8, reqs[:100])
	assert.Equal(t, 100, r.requests)
	assert.Equal(t, int64(100), got.Load())
	assert.GreaterOrEqual(t, time.Since(start), 99*time.Millisecond, "100 requests at 1000/s take 99 ms at least")
	require.Len(t, r.due, 100)
	assert.Equal(t, 99*time.Millisecond, slices.Max(r.due), "the last is due 99 ms after the first")
}

// Interleaved rounds give every target each of its requests once, a slice
// per round, in turns.
func TestInterleavedRounds(t *testing.T) {
	var a, b atomic.Int64
	var order []string
	srvA := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { a.Add(1) }))
	defer srvA.Close()
	srvB := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { b.Add(1) }))
	defer srvB.Close()
	reqs := make([]request, 10)
	for i := range reqs {
		reqs[i] = request{body: []byte("x"), header: http.Header{}}
	}
	runs := interleaved(context.Background(), 3, 2, []loadJob{{target{"a", srvA.URL}, reqs}, {target{"b", srvB.URL}, reqs[:7]}},
		func(round, job int) { order = append(order, fmt.Sprint(round, job)) })
	assert.Equal(t, []string{"0 0", "0 1", "1 0", "1 1", "2 0", "2 1"}, order)
	assert.Equal(t, int64(10), a.Load())
	assert.Equal(t, int64(7), b.Load())
	require.Len(t, runs, 2)
	assert.Equal(t, 10, runs[0].requests)
	assert.Equal(t, 7, runs[1].requests)
	assert.Len(t, runs[0].latencies, 10)
	assert.Len(t, runs[1].roundRates, 3)
}

// The whole command, small, against the real binary and a real
// kube-apiserver: every section is measured and nothing is refused.
func TestDoraloadEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs otelcol-dora and a control plane")
	}
	var out bytes.Buffer
	o := options{
		secret: testSecret, conns: 4, requests: 300, rounds: 2, warmup: 50, rate: 200, rateFor: time.Second,
		senders: 8, spans: 100, vcsRequests: 200, samples: 3, kubernetes: true, timeout: 3 * time.Minute,
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	require.NoError(t, runAll(ctx, o, &out))
	report := out.String()
	t.Log(report)
	for _, s := range []string{"### Webhook ingest", "### CI/CD spans", "### Freshness", "dora / floor:", "dora / otlp receiver:", "dora / otlp receiver, Jenkins traces:",
		"### VCS sources' pushes", "dora bitbucket / floor:", "dora bitbucket_dc / floor:", "dora azuredevops / floor:"} {
		assert.Contains(t, report, s)
	}
	assert.NotContains(t, report, "not measured")
	assert.NotContains(t, report, "(first:", "a request was refused")
	assert.Equal(t, 2, strings.Count(report, "| 3 |"), "3 freshness samples of each kind")
}
