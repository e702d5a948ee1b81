package main

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/otelcol-dora/dorareceiver/internal/forward"
)

// The forwarded-event exports are what the gateway decodes: valid records
// of the schema, every id new, spread over the clusters; two slices
// numbered apart share no id.
func TestForwardRequests(t *testing.T) {
	now := time.Now()
	a, err := forwardRequests(0, 50, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := forwardRequests(50, 50, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	clusters := map[string]int{}
	for _, r := range append(a, b...) {
		if r.header.Get("Content-Type") != "application/x-protobuf" {
			t.Fatalf("content type %q", r.header.Get("Content-Type"))
		}
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(r.body); err != nil {
			t.Fatal(err)
		}
		evs, err := forward.Decode(req.Logs(), forward.Limits{MaxValueLen: 1024, MaxPaths: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 3 {
			t.Fatalf("%d records in an export, want 3", len(evs))
		}
		for _, ev := range evs {
			if ids[ev.ID] {
				t.Fatalf("id %s twice", ev.ID)
			}
			ids[ev.ID] = true
			clusters[ev.Service.Cluster]++
		}
	}
	if len(ids) != 300 || len(clusters) != forwardClusters || clusters["cluster-0"] != 100 {
		t.Fatalf("%d ids, clusters %v", len(ids), clusters)
	}
}
