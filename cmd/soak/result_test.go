package main

import (
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
		{deploymentsTotal, "soak", "app-0"}:  3,
		{deploymentsTotal, "hooks", "svc-1"}: 5,
		{leadTimeCount, "hooks", "svc-1"}:    4,
	}
	if !equal(want, got) {
		t.Fatalf("parsed %v, want %v", got, want)
	}

	// One lost lead time, one deployment counted twice, one series missing.
	want[seriesKey{leadTimeCount, "hooks", "svc-1"}] = 5
	want[seriesKey{deploymentsTotal, "soak", "app-0"}] = 2
	want[seriesKey{deploymentsTotal, "soak", "app-1"}] = 1
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
