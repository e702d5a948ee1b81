package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseCountersAndCompare(t *testing.T) {
	exposition := `# HELP platform_deployments_total x
# TYPE platform_deployments_total counter
platform_deployments_total{deployment="app-0",environment="production",namespace="soak",status="success"} 3
platform_deployments_total{deployment="app-0",environment="production",namespace="soak",status="failure"} 7
platform_deployments_total{deployment="svc-1",environment="production",namespace="hooks",status="success"} 5
platform_lead_time_seconds_count{deployment="svc-1",environment="production",namespace="hooks"} 4
platform_lead_time_seconds_bucket{deployment="svc-1",environment="production",namespace="hooks",le="60.0"} 4
`
	got, err := parseCounters(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := map[seriesKey]float64{
		{deploymentsTotal, "soak", "app-0", ""}:  3,
		{deploymentsTotal, "hooks", "svc-1", ""}: 5,
		{leadTimeCount, "hooks", "svc-1", ""}:    4,
	}
	if !equal(want, got) {
		t.Fatalf("parsed %v, want %v", got, want)
	}

	// One lost lead time, one deployment counted twice, one series missing.
	want[seriesKey{leadTimeCount, "hooks", "svc-1", ""}] = 5
	want[seriesKey{deploymentsTotal, "soak", "app-0", ""}] = 2
	want[seriesKey{deploymentsTotal, "soak", "app-1", ""}] = 1
	var r result
	r.compare(want, got)
	if r.sent != 13 || r.counted != 12 || r.lost != 2 || r.duplicated != 1 || len(r.mismatches) != 3 {
		t.Fatalf("sent %d counted %d lost %d duplicated %d mismatches %v", r.sent, r.counted, r.lost, r.duplicated, r.mismatches)
	}
	if r.ok(time.Minute) {
		t.Fatal("a run with losses passed")
	}
	r = result{sent: 10, counted: 10, restarts: 4, leaderChanges: 1}
	if !r.ok(time.Minute) || r.ok(10*time.Minute) {
		t.Fatal("a full run needs 5 restarts; a short one does not")
	}
}

func TestOptionsCheck(t *testing.T) {
	base := options{duration: time.Minute, restartEvery: time.Second, rolloutEvery: time.Second, webhookRate: 1, deployments: 1, services: 1}
	o := base
	o.clusters = 3
	if err := o.check(); err != nil || o.topology != topologySingle || o.clusters != 1 {
		t.Fatalf("default topology: %v, %q, %d clusters", err, o.topology, o.clusters)
	}
	o = base
	o.topology, o.clusters = topologyAgentGateway, 3
	if err := o.check(); err != nil || o.clusters != 3 {
		t.Fatalf("agent-gateway: %v, %d clusters", err, o.clusters)
	}
	for _, bad := range []options{
		{topology: "mesh"},
		{topology: topologyAgentGateway, clusters: 0},
		{topology: topologyAgentGateway, clusters: 9},
	} {
		o := base
		o.topology, o.clusters = bad.topology, bad.clusters
		if err := o.check(); err == nil {
			t.Errorf("%q with %d clusters accepted", bad.topology, bad.clusters)
		}
	}
}

// The restarts alternate agents (in turn over the clusters) with gateway
// replicas (leader, then follower), SIGKILL twice for every SIGTERM.
func TestRestartTargets(t *testing.T) {
	s := &soak{replicas: []*replica{{name: "gateway-0"}, {name: "gateway-1"}}, agents: []*replica{{name: "agent-cluster-0"}, {name: "agent-cluster-1"}}}
	s.leader.Store("gateway-1")
	var got []string
	for n := range 6 {
		r, role, sig := s.restartTarget(n)
		got = append(got, fmt.Sprintf("%s/%s/%d", r.name, role, sig))
	}
	want := "agent-cluster-0/agent/9 gateway-1/leader/9 agent-cluster-1/agent/15 gateway-0/follower/9 agent-cluster-0/agent/9 gateway-1/leader/15"
	if strings.Join(got, " ") != want {
		t.Fatalf("restarts\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	s.agents = nil
	got = got[:0]
	for n := range 3 {
		r, role, _ := s.restartTarget(n)
		got = append(got, r.name+"/"+role)
	}
	if strings.Join(got, " ") != "gateway-1/leader gateway-0/follower gateway-1/leader" {
		t.Fatalf("single topology restarts: %v", got)
	}
}

// The configurations the soak writes are valid for the built binary
// (OTELCOL_DORA_BIN, which make test sets; else bin/otelcol-dora).
func TestConfigsValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := os.Getenv("OTELCOL_DORA_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin", "otelcol-dora")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("otelcol-dora binary not found at %s (run `make build`, or `make test` which builds it): %v", bin, err)
	}
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]func([3]int) string{
		"replica": standaloneConfig("replica-0", kc, dir),
		"gateway": gatewayConfig("gateway-0", kc, dir),
		"agent":   agentConfig("cluster-0", kc, "http://127.0.0.1:1", dir),
	} {
		r, err := newReplica(name, dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "validate", "--config", r.configPath).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}
