// Command localcluster runs a local Kubernetes control plane (etcd,
// kube-apiserver and optionally kube-controller-manager and a fake kubelet)
// until it is interrupted, for trying the receiver by hand (`make run`).
//
//	go run ./cmd/localcluster -dir DIR [-controller-manager] [-fake-kubelet]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

func main() {
	dir := flag.String("dir", "", "directory for certificates, etcd data, logs, kubeconfig and the PID file (required)")
	kcm := flag.Bool("controller-manager", false, "also run kube-controller-manager")
	kubelet := flag.Bool("fake-kubelet", false, "also run a fake kubelet so Pods run and rollouts complete (implies -controller-manager)")
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, *kcm, *kubelet); err != nil {
		log.Fatal(err)
	}
}

func run(dir string, kcm, kubelet bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c, err := localcluster.Start(ctx, localcluster.Options{
		Dir:               dir,
		ControllerManager: kcm,
		FakeKubelet:       kubelet,
		Logf:              log.Printf,
	})
	if err != nil {
		return err
	}

	// The PID file lets scripts (make run) stop us with a plain kill; the
	// signal then reaches this process, which stops its children.
	pidFile := filepath.Join(c.Dir, "localcluster.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("%w (and stopping: %v)", err, c.Stop())
	}
	defer os.Remove(pidFile)

	fmt.Printf("kube-apiserver: %s\nkubeconfig: %s\n\n    export KUBECONFIG=%s\n\n", c.APIServerURL, c.Kubeconfig, c.Kubeconfig)
	log.Printf("running (pid %d, logs in %s); interrupt to stop", os.Getpid(), c.Dir)

	<-ctx.Done()
	log.Print("stopping")
	return c.Stop()
}
