// Command soak runs otelcol-dora for a bounded time the way a platform team
// runs it: two replicas with leader election on a real kube-apiserver (with
// kube-controller-manager and a fake kubelet, so rollouts complete for
// real), sharing one file_storage directory, under a steady mix of
// Kubernetes rollouts and signed webhooks, with replicas killed (SIGKILL or
// SIGTERM) and restarted periodically. At the end it compares the counters
// on the leader's Prometheus endpoint with what was sent and acknowledged,
// and prints events sent, counted, lost, duplicated and peak memory.
//
// With -topology agent-gateway it runs the topology of issue 16 instead:
// -clusters real control planes, an agent (mode: agent) in each forwarding
// its cluster's events through otlp_http with a sending_queue on
// file_storage, and two gateway replicas with leader election behind one
// address (a proxy to the ready replica, as a Service); webhooks go to the
// gateway; agents and gateway replicas are killed and restarted in turn;
// the gateway's endpoint is compared with what was done, per cluster. It
// exits 1 when anything was lost or duplicated, or (for runs of 10 minutes
// or more) when fewer than 5 restarts or no leader change happened.
//
//	go run ./cmd/soak -duration 10m        (make soak)
//	go run ./cmd/soak -topology agent-gateway -duration 10m
//	                                       (make soak SOAK_TOPOLOGY=agent-gateway)
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

// Topologies (-topology).
const (
	topologySingle       = "single"
	topologyAgentGateway = "agent-gateway"
)

type options struct {
	topology     string
	clusters     int
	duration     time.Duration
	restartEvery time.Duration
	rolloutEvery time.Duration
	webhookRate  float64
	deployments  int
	services     int
	bin          string
	dir          string
	keep         bool
}

func main() {
	var o options
	flag.StringVar(&o.topology, "topology", topologySingle, "single (two replicas on one cluster) or agent-gateway (an agent per cluster, two gateway replicas)")
	flag.IntVar(&o.clusters, "clusters", 3, "clusters of the agent-gateway topology")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to send load")
	flag.DurationVar(&o.restartEvery, "restart-every", 90*time.Second, "pause between replica restarts")
	flag.DurationVar(&o.rolloutEvery, "rollout-every", 4*time.Second, "pause between rollouts (round robin over the Deployments)")
	flag.Float64Var(&o.webhookRate, "webhook-rate", 20, "webhook deliveries per second (commit and deployment events)")
	flag.IntVar(&o.deployments, "deployments", 5, "Kubernetes Deployments rolled out in turn")
	flag.IntVar(&o.services, "services", 10, "services the webhook deliveries are about")
	flag.StringVar(&o.bin, "bin", "bin/otelcol-dora", "the otelcol-dora binary")
	flag.StringVar(&o.dir, "dir", "", "working directory (default: a temporary one, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (logs, state) at the end")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
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

// check refuses options the soak cannot run.
func (o *options) check() error {
	switch o.topology {
	case topologySingle, "":
		o.topology = topologySingle
		o.clusters = 1
	case topologyAgentGateway:
		if o.clusters < 1 || o.clusters > 5 {
			return fmt.Errorf("-clusters: %d, want 1 to 5 (each is a control plane of its own)", o.clusters)
		}
	default:
		return fmt.Errorf("-topology: %q is neither %s nor %s", o.topology, topologySingle, topologyAgentGateway)
	}
	if o.deployments < 1 || o.services < 1 || o.webhookRate <= 0 || o.duration <= 0 || o.restartEvery <= 0 || o.rolloutEvery <= 0 {
		return fmt.Errorf("-deployments, -services, -webhook-rate, -duration, -restart-every and -rollout-every must be positive")
	}
	return nil
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

	var cps []*localcluster.Cluster
	defer func() {
		for _, cp := range cps {
			if err := cp.Stop(); err != nil {
				log.Printf("stopping a control plane: %v", err)
			}
		}
	}()
	for i := range o.clusters {
		cp, err := localcluster.Start(ctx, localcluster.Options{
			Dir:         filepath.Join(dir, fmt.Sprintf("cluster-%d", i)),
			FakeKubelet: true,
			Logf:        log.Printf,
		})
		if err != nil {
			return false, fmt.Errorf("starting control plane %d: %w", i, err)
		}
		cps = append(cps, cp)
	}

	s, err := newSoak(o, bin, dir, cps)
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
