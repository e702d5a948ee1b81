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

func (r *results) heapRatio() float64 { return r.Source.heapPerObject() / r.Plain.heapPerObject() }
func (r *results) syncRatio() float64 { return r.Source.SyncSeconds / r.Plain.SyncSeconds }

func (r *results) json() string {
	b, _ := json.MarshalIndent(struct {
		*results
		SourceHeapPerDeployment float64 `json:"source_heap_bytes_per_deployment"`
		PlainHeapPerDeployment  float64 `json:"plain_heap_bytes_per_deployment"`
		HeapRatio               float64 `json:"heap_ratio"`
		SyncRatio               float64 `json:"sync_ratio"`
	}{r, r.Source.heapPerObject(), r.Plain.heapPerObject(), r.heapRatio(), r.syncRatio()}, "", "  ")
	return string(b)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func mib(kib uint64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("\n## Kubernetes scale (issue 7, item 4)\n\n")
	p("A real etcd and kube-apiserver (internal/localcluster, etcd data on tmpfs when /dev/shm exists) holding %d Deployments in %d namespaces, each with two replicas, labels, annotations, one container with ports, env, resources and probes, and the status of a completed rollout (created in %.0f s). Each variant runs in its own process (`k8sscale watch`), on the receiver's protobuf client; heap figures are after `runtime.GC()`, before the informers start and after every handler has synced.\n\n",
		r.Deployments, r.Namespaces, r.PopulateSeconds)
	p("| variant | initial sync | heap growth per Deployment (HeapAlloc) | HeapInuse growth per Deployment | RSS after sync | peak RSS |\n")
	p("| --- | --- | --- | --- | --- | --- |\n")
	for _, v := range []*syncReport{&r.Plain, &r.Source} {
		name := "plain client-go informer, no transform"
		if v.Variant == variantSource {
			name = "receiver's source (transform + tracker, counting sink)"
		}
		p("| %s | %.2f s | %.0f B | %.0f B | %s | %s |\n", name, v.SyncSeconds, v.heapPerObject(), v.inusePerObject(), mib(v.RSSKiB), mib(v.PeakRSSKiB))
	}
	ro := r.Rollout
	p("\nMass rollout: every Deployment got a new image (%.1f s for %d patches), then the status of a completed rollout through the status subresource (%.1f s for %d writes). The source counted %d rollouts started and %d succeeded (%d other events): **%s**. Rate: **%.0f rollouts/s** (counted successes over the time from the first status write to the last success counted); the last success was counted %.3f s after the last status write. Source heap after the rollout: %.0f B per Deployment.\n\n",
		ro.ImageSeconds, r.Deployments, ro.StatusSeconds, r.Deployments, ro.Started, ro.Counted, ro.Other,
		map[bool]string{true: "exactly one per Deployment", false: "NOT exactly one per Deployment"}[ro.Exact],
		ro.CountedPerSecond, ro.LagSeconds, (float64(ro.HeapAllocAfter)-float64(r.Source.HeapAllocBefore))/float64(r.Deployments))
	hp := r.Source.heapPerObject()
	p("Targets:\n\n")
	p("- Heap growth per watched Deployment under 1 KiB: %.0f B, %s.\n", hp, met(hp < targetHeapPerDeployment))
	p("- At most 0.2x the plain informer's: %.3fx, %s.\n", r.heapRatio(), met(r.heapRatio() <= targetHeapRatio))
	p("- Initial sync within 2x the plain informer's: %.2fx, %s.\n", r.syncRatio(), met(r.syncRatio() <= targetSyncRatio))
	p("\nWhole run (control plane start, populate, both variants, rollout): %.0f s.\n", r.TotalSeconds)
	return b.String()
}
