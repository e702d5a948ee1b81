package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
)

var intstrHTTP = intstr.FromString("http")

// Issue 7 targets for the source against the plain informer.
const (
	targetHeapPerDeployment = 1024 // bytes
	targetHeapRatio         = 0.2
	targetSyncRatio         = 2.0
)

// heapPerObject is the live-heap growth per watched Deployment, in bytes.
func (r *syncReport) heapPerObject() float64 {
	return (float64(r.HeapAllocAfter) - float64(r.HeapAllocBefore)) / float64(max(r.Objects, 1))
}

func (r *syncReport) inusePerObject() float64 {
	return (float64(r.HeapInuseAfter) - float64(r.HeapInuseBefore)) / float64(max(r.Objects, 1))
}

// mean is the mean of f over the runs.
func mean(runs []syncReport, f func(*syncReport) float64) float64 {
	sum := 0.0
	for i := range runs {
		sum += f(&runs[i])
	}
	return sum / float64(max(len(runs), 1))
}

func heapPer(r *syncReport) float64 { return r.heapPerObject() }
func syncSec(r *syncReport) float64 { return r.SyncSeconds }

func (r *results) heapRatio() float64 {
	return mean(r.Source, heapPer) / mean(r.Plain, heapPer)
}
func (r *results) syncRatio() float64 { return mean(r.Source, syncSec) / mean(r.Plain, syncSec) }

func (r *results) json() string {
	b, _ := json.MarshalIndent(struct {
		*results
		SourceHeapPerDeployment float64 `json:"source_heap_bytes_per_deployment"`
		PlainHeapPerDeployment  float64 `json:"plain_heap_bytes_per_deployment"`
		SourceSyncSeconds       float64 `json:"source_sync_seconds"`
		PlainSyncSeconds        float64 `json:"plain_sync_seconds"`
		HeapRatio               float64 `json:"heap_ratio"`
		SyncRatio               float64 `json:"sync_ratio"`
	}{r, mean(r.Source, heapPer), mean(r.Plain, heapPer), mean(r.Source, syncSec), mean(r.Plain, syncSec), r.heapRatio(), r.syncRatio()}, "", "  ")
	return string(b)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func mib(kib uint64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// lagNote says what a lag means for the rate: with the source keeping up,
// the writers set it.
func lagNote(lag float64) string {
	if lag < 0 {
		return " (before: the watch event came ahead of the writer's answer), so the source kept up and the writers set this rate"
	}
	if lag < 1 {
		return ", so the source kept up and the writers set this rate"
	}
	return ", so the source fell behind the writers"
}

func variantName(v string) string {
	if v == variantSource {
		return "receiver's source (transform + tracker, counting sink)"
	}
	return "plain client-go informer, no transform"
}

func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("\n## Kubernetes scale (issue 7, item 4)\n\n")
	p("Command: `go run ./cmd/k8sscale -deployments %d -namespaces %d -markdown`.\n\n", r.Deployments, r.Namespaces)
	p("A real etcd and kube-apiserver (internal/localcluster, etcd data on tmpfs when /dev/shm exists) holding %d Deployments in %d namespaces, each with two replicas, labels, annotations, one container with ports, env, resources and probes, and the status of a completed rollout (created in %.0f s). Each measurement runs in its own process (`k8sscale watch`), on the receiver's protobuf client, in two rounds of opposite order (plain, source; source, plain). Heap figures are after `runtime.GC()`, before the informers start and after every handler has synced; sync runs from the informers' start to HasSynced of every handler.\n\n",
		r.Deployments, r.Namespaces, r.PopulateSeconds)
	p("| variant | round | initial sync | heap growth per Deployment (HeapAlloc) | HeapInuse growth per Deployment | RSS after sync | peak RSS |\n")
	p("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, runs := range [][]syncReport{r.Plain, r.Source} {
		for i := range runs {
			v := &runs[i]
			p("| %s | %d | %.2f s | %.0f B | %.0f B | %s | %s |\n", variantName(v.Variant), i+1, v.SyncSeconds, v.heapPerObject(), v.inusePerObject(), mib(v.RSSKiB), mib(v.PeakRSSKiB))
		}
	}
	ro := r.Rollout
	p("\nMass rollout: every Deployment got a new image (%.1f s for %d patches, %d parallel writers), then the status of a completed rollout through the status subresource (%.1f s for %d writes). The source counted %d rollouts started and %d succeeded (%d other events): **%s**. Rate seen by the source: **%.0f rollouts/s** (successes counted over the time from the first status write to the last success counted); the last success was counted %.3f s from the last status write%s. The source process spent %.1f s of CPU on the %d updates, **%.0f updates/s per CPU second**, the rate it could take on one core. Source heap after the rollout: %.0f B per Deployment.\n\n",
		ro.ImageSeconds, r.Deployments, r.workers, ro.StatusSeconds, r.Deployments, ro.Started, ro.Counted, ro.Other,
		map[bool]string{true: "exactly one per Deployment", false: "NOT exactly one per Deployment"}[ro.Exact],
		ro.CountedPerSecond, ro.LagSeconds, lagNote(ro.LagSeconds), ro.CPUSeconds, 2*r.Deployments, ro.UpdatesPerCPUSecond,
		(float64(ro.HeapAllocAfter)-float64(ro.HeapAllocBefore))/float64(r.Deployments))
	hp := mean(r.Source, heapPer)
	p("Targets (means of the rounds):\n\n")
	p("- Heap growth per watched Deployment under 1 KiB: %.0f B, %s.\n", hp, met(hp < targetHeapPerDeployment))
	p("- At most 0.2x the plain informer's (%.0f B): %.3fx, %s.\n", mean(r.Plain, heapPer), r.heapRatio(), met(r.heapRatio() <= targetHeapRatio))
	p("- Initial sync within 2x the plain informer's (%.2f s vs %.2f s): %.2fx, %s.\n", mean(r.Source, syncSec), mean(r.Plain, syncSec), r.syncRatio(), met(r.syncRatio() <= targetSyncRatio))
	p("\nWhole run (control plane start, populate, four syncs, rollout): %.0f s.\n", r.TotalSeconds)
	return b.String()
}
