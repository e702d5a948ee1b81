package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// Variants a watch child measures.
const (
	variantSource = "source"
	variantPlain  = "plain"
)

// syncReport is what a watch child reports once its informers have synced
// (its first line on stdout).
type syncReport struct {
	Variant string `json:"variant"`
	// Objects is how many Deployments the child holds after sync.
	Objects int `json:"objects"`
	// SyncSeconds runs from the start of the informers to HasSynced of
	// every handler registration (all of the first list delivered).
	SyncSeconds float64 `json:"sync_seconds"`
	// Heap figures are after runtime.GC, before the informers started and
	// after sync.
	HeapAllocBefore uint64 `json:"heap_alloc_before"`
	HeapAllocAfter  uint64 `json:"heap_alloc_after"`
	HeapInuseBefore uint64 `json:"heap_inuse_before"`
	HeapInuseAfter  uint64 `json:"heap_inuse_after"`
	// RSSKiB and PeakRSSKiB are VmRSS and VmHWM after sync.
	RSSKiB     uint64 `json:"rss_kib"`
	PeakRSSKiB uint64 `json:"peak_rss_kib"`
}

// rolloutReport is the source child's second line: what it counted of the
// mass rollout.
type rolloutReport struct {
	Started   int64 `json:"started"`
	Succeeded int64 `json:"succeeded"`
	// Other counts events of any other kind (failures, rollbacks): none
	// are expected.
	Other int64 `json:"other"`
	// FirstSucceededNanos and LastSucceededNanos are Unix times of the
	// first and last success the sink took.
	FirstSucceededNanos int64 `json:"first_succeeded_unix_nanos"`
	LastSucceededNanos  int64 `json:"last_succeeded_unix_nanos"`
	// CPUSeconds is the CPU time (user and system) this process spent
	// from its sync to the last rollout counted: decoding the watch events
	// and handling them.
	CPUSeconds float64 `json:"cpu_seconds"`
	// HeapAllocAfter is the live heap after the rollout (the tracker now
	// remembers one earlier template per Deployment).
	HeapAllocAfter uint64 `json:"heap_alloc_after"`
}

// countingSink counts the source's events by kind, as the receiver's engine
// would take them.
type countingSink struct {
	started, succeeded, other atomic.Int64
	mu                        sync.Mutex
	first, last               time.Time
}

func (c *countingSink) take(ev event.Event) error {
	switch ev.Kind {
	case event.DeploymentStarted:
		c.started.Add(1)
	case event.DeploymentSucceeded:
		now := time.Now()
		c.mu.Lock()
		if c.first.IsZero() {
			c.first = now
		}
		c.last = now
		c.mu.Unlock()
		c.succeeded.Add(1)
	default:
		c.other.Add(1)
	}
	return nil
}

func watchMain(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	variant := fs.String("variant", "", "source or plain")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster")
	expect := fs.Int("expect", 0, "Deployments the cluster holds")
	timeout := fs.Duration("rollout-timeout", defaultRolloutTimeout, "how long to wait for every rollout after the last status write")
	fs.StringVar(&heapProfile, "heap-profile", "", "write a heap profile after sync to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if heapProfile != "" {
		// Every allocation, so that per-object costs show exactly.
		runtime.MemProfileRate = 1
	}
	if *kubeconfig == "" || *expect < 1 {
		return errors.New("-kubeconfig and -expect are required")
	}
	// The receiver's client: protobuf, as k8s.NewClient builds it. Both
	// variants use it, so that the comparison is of what they keep and do,
	// not of the wire format.
	cfg := k8s.DefaultConfig()
	cfg.AuthType = k8s.AuthTypeKubeConfig
	cfg.KubeConfig = *kubeconfig
	client, err := k8s.NewClient(&cfg)
	if err != nil {
		return err
	}
	switch *variant {
	case variantSource:
		return watchSource(&cfg, client, *expect, *timeout)
	case variantPlain:
		return watchPlain(client, *expect)
	}
	return fmt.Errorf("-variant: %q is not %s or %s", *variant, variantSource, variantPlain)
}

// watchPlain runs a plain shared informer on Deployments, with no
// transform, and a handler that counts what it is given.
func watchPlain(client kubernetes.Interface, expect int) error {
	rep := syncReport{Variant: variantPlain}
	before := heap()
	started := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Apps().V1().Deployments().Informer()
	var adds atomic.Int64
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) { adds.Add(1) }})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if err := waitSynced(reg.HasSynced); err != nil {
		return fmt.Errorf("plain informer: %w", err)
	}
	rep.SyncSeconds = time.Since(started).Seconds()
	after := heap()
	rep.Objects = len(inf.GetStore().ListKeys())
	if rep.Objects != expect || adds.Load() != int64(expect) {
		return fmt.Errorf("plain informer holds %d Deployments and was given %d, want %d", rep.Objects, adds.Load(), expect)
	}
	rep.fill(before, after)
	runtime.KeepAlive(inf)
	return emit(rep)
}

// watchSource runs the receiver's Kubernetes source with a counting sink,
// reports its sync, then counts the mass rollout until the parent says the
// last status was written and every rollout is counted (or the timeout).
func watchSource(cfg *k8s.Config, client kubernetes.Interface, expect int, timeout time.Duration) error {
	rep := syncReport{Variant: variantSource}
	sink := &countingSink{}
	before := heap()
	started := time.Now()
	src := k8s.New(cfg, client, zap.NewNop(), sink.take)
	if err := src.Start(context.Background()); err != nil {
		return err
	}
	if err := waitSynced(src.HasSynced); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	rep.SyncSeconds = time.Since(started).Seconds()
	after := heap()
	rep.Objects = src.Watched()
	if rep.Objects != expect {
		return fmt.Errorf("source tracks %d Deployments, want %d", rep.Objects, expect)
	}
	rep.fill(before, after)
	if err := emit(rep); err != nil {
		return err
	}

	// The parent writes one line once it has written the last status, or
	// closes stdin when this run measures the sync only.
	cpuBefore := cpuSeconds()
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if errors.Is(err, io.EOF) && line == "" {
		return src.Shutdown(context.Background())
	}
	if err != nil {
		return fmt.Errorf("waiting for the rollout: %w", err)
	}
	if strings.TrimSpace(line) != "written" {
		return fmt.Errorf("unexpected line from the parent: %q", line)
	}
	deadline := time.Now().Add(timeout)
	for sink.succeeded.Load() < int64(expect) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cpu := cpuSeconds() - cpuBefore
	// A little longer, so that a rollout counted twice would show.
	time.Sleep(time.Second)
	rr := rolloutReport{Started: sink.started.Load(), Succeeded: sink.succeeded.Load(), Other: sink.other.Load(), CPUSeconds: cpu}
	sink.mu.Lock()
	if !sink.first.IsZero() {
		rr.FirstSucceededNanos, rr.LastSucceededNanos = sink.first.UnixNano(), sink.last.UnixNano()
	}
	sink.mu.Unlock()
	rr.HeapAllocAfter = heap().HeapAlloc
	if err := src.Shutdown(context.Background()); err != nil {
		return err
	}
	return emit(rr)
}

// heapProfile, when set, is where fill writes a heap profile.
var heapProfile string

// syncTimeout bounds the initial sync, so that a broken cluster ends the run.
const syncTimeout = 5 * time.Minute

// waitSynced polls synced every millisecond: cache.WaitForCacheSync polls
// every 100 ms, too coarse for a sync of about a second.
func waitSynced(synced func() bool) error {
	deadline := time.Now().Add(syncTimeout)
	for !synced() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not synced after %v", syncTimeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (r *syncReport) fill(before, after runtime.MemStats) {
	if heapProfile != "" {
		if f, err := os.Create(heapProfile); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	r.HeapAllocBefore, r.HeapAllocAfter = before.HeapAlloc, after.HeapAlloc
	r.HeapInuseBefore, r.HeapInuseAfter = before.HeapInuse, after.HeapInuse
	r.RSSKiB, r.PeakRSSKiB = procStatusKiB("VmRSS"), procStatusKiB("VmHWM")
}

// heap returns the memory statistics after a full collection, so that
// HeapAlloc is the live heap.
func heap() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// procStatusKiB reads a "Key: N kB" line of /proc/self/status; 0 where
// there is none (not Linux).
func procStatusKiB(key string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// cpuSeconds is the user and system CPU time of this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func emit(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(os.Stdout, "%s\n", b)
	return err
}
