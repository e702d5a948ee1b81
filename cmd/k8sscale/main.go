// Command k8sscale measures the receiver's Kubernetes source at scale on a
// real kube-apiserver (issue 7, item 4): it starts a local control plane,
// creates many Deployments, then measures, each in its own child process so
// that heaps do not mix,
//
//   - a plain client-go Deployment informer without a transform (the
//     baseline), and
//   - the receiver's source (internal/k8s, with its transform and tracker)
//     feeding a counting sink,
//
// for time to initial sync, heap growth per watched Deployment and RSS after
// sync; then it rolls every Deployment out (a new image, then the status a
// completed rollout has, written through the status subresource as the
// Deployment controller writes it) and reports the rate at which the
// source counted the rollouts.
//
//	go run ./cmd/k8sscale [-deployments 10000] [-namespaces 100] [-markdown]
//
// With -clusters N (N > 1) it measures issue 16's topology instead
// (gateway.go): N API servers of -deployments each, an otelcol-dora agent
// per cluster forwarding to one otelcol-dora gateway (-bin), a mass
// rollout in every cluster, counted once per Deployment at the gateway.
//
//	go run ./cmd/k8sscale -clusters 3 -deployments 10000 -markdown
//
// The children are this binary run as `k8sscale watch -variant source|plain`.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
)

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if len(os.Args) > 1 && os.Args[1] == "watch" {
		log.SetPrefix("k8sscale watch: ")
		if err := watchMain(os.Args[2:]); err != nil {
			log.Fatal(err)
		}
		return
	}
	log.SetPrefix("k8sscale: ")
	var o options
	flag.IntVar(&o.deployments, "deployments", 10000, "Deployments to create")
	flag.IntVar(&o.namespaces, "namespaces", 100, "namespaces to spread them over")
	flag.IntVar(&o.workers, "workers", 32, "parallel API requests when creating and rolling out")
	flag.BoolVar(&o.markdown, "markdown", false, "print the results as a BENCHMARKS.md section instead of JSON")
	flag.StringVar(&o.dir, "dir", "", "directory for the control plane (default: a new one under /dev/shm when it exists, else the temp dir; removed at the end)")
	flag.DurationVar(&o.rolloutTimeout, "rollout-timeout", defaultRolloutTimeout, "how long the source may take to count every rollout after the last status write")
	flag.StringVar(&o.profileDir, "heap-profiles", "", "write each variant's heap profile after sync to DIR/VARIANT.heap.pprof")
	flag.IntVar(&o.clusters, "clusters", 1, "API servers; above 1, agents (one per cluster) forwarding to a gateway, all otelcol-dora processes (-bin)")
	flag.StringVar(&o.bin, "bin", "bin/otelcol-dora", "the otelcol-dora binary (with -clusters)")
	flag.Parse()
	if flag.NArg() > 0 || o.deployments < 1 || o.namespaces < 1 || o.namespaces > o.deployments || o.workers < 1 || o.clusters < 1 || o.clusters > 5 {
		flag.Usage()
		os.Exit(2)
	}
	if o.clusters > 1 {
		res, err := runGateway(o)
		if err != nil {
			log.Fatal(err)
		}
		if o.markdown {
			fmt.Print(res.markdown())
		} else {
			b, _ := json.MarshalIndent(res, "", "  ")
			fmt.Println(string(b))
		}
		if !res.Exact {
			log.Fatalf("the gateway counted %v (%d duplicated, %d missing), want exactly %d per cluster", res.Counted, res.Duplicated, res.Missing, res.Deployments)
		}
		return
	}
	res, err := run(o)
	if err != nil {
		log.Fatal(err)
	}
	if o.markdown {
		fmt.Print(res.markdown())
	} else {
		fmt.Println(res.json())
	}
	if !res.Rollout.Exact {
		log.Fatalf("the source counted %d rollouts, want exactly %d", res.Rollout.Counted, res.Deployments)
	}
}
