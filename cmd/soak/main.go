// Command soak runs otelcol-dora for a bounded time the way a platform team
// runs it: two replicas with leader election on a real kube-apiserver (with
// kube-controller-manager and a fake kubelet, so rollouts complete for
// real), sharing one file_storage directory, under a steady mix of
// Kubernetes rollouts and signed webhooks, with replicas killed (SIGKILL or
// SIGTERM) and restarted periodically. At the end it compares the counters
// on the leader's Prometheus endpoint with what was sent and acknowledged,
// and prints events sent, counted, lost, duplicated and peak memory. It
// exits 1 when anything was lost or duplicated, or (for runs of 10 minutes
// or more) when fewer than 5 restarts or no leader change happened.
//
//	go run ./cmd/soak -duration 10m        (make soak)
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

type options struct {
	duration     time.Duration
	restartEvery time.Duration
	rolloutEvery time.Duration
	webhookRate  float64
	deployments  int
	services     int
	bin          string
	dir          string
	keep         bool
	// agent: the replicas are a gateway, an agent watches the cluster.
	agent bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to send load")
	flag.DurationVar(&o.restartEvery, "restart-every", 90*time.Second, "pause between replica restarts")
	flag.DurationVar(&o.rolloutEvery, "rollout-every", 4*time.Second, "pause between rollouts (round robin over the Deployments)")
	flag.Float64Var(&o.webhookRate, "webhook-rate", 20, "webhook deliveries per second (commit and deployment events)")
	flag.IntVar(&o.deployments, "deployments", 5, "Kubernetes Deployments rolled out in turn")
	flag.IntVar(&o.services, "services", 10, "services the webhook deliveries are about")
	flag.StringVar(&o.bin, "bin", "bin/otelcol-dora", "the otelcol-dora binary")
	flag.StringVar(&o.dir, "dir", "", "working directory (default: a temporary one, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (logs, state) at the end")
	flag.BoolVar(&o.agent, "agent", false, "the agent/gateway topology: the replicas are a gateway, an agent (mode: agent) watches the cluster and forwards its rollouts to the ready replica")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	ok, err := run(o)
	if err != nil {
		log.Fatalf("soak: %v", err)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(o options) (bool, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(bin); err != nil {
		return false, fmt.Errorf("otelcol-dora binary: %w (run make build)", err)
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "dora-soak-"); err != nil {
			return false, err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	log.Printf("working directory %s", dir)

	cp, err := localcluster.Start(ctx, localcluster.Options{
		Dir:         filepath.Join(dir, "cluster"),
		FakeKubelet: true,
		Logf:        log.Printf,
	})
	if err != nil {
		return false, fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			log.Printf("stopping the control plane: %v", err)
		}
	}()

	s, err := newSoak(o, bin, dir, cp)
	if err != nil {
		return false, err
	}
	defer s.stopReplicas()
	res, err := s.run(ctx)
	if err != nil {
		return false, err
	}
	res.print(os.Stdout)
	return res.ok(o.duration), nil
}
