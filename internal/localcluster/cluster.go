// Package localcluster runs a real Kubernetes control plane on 127.0.0.1 from
// the etcd, kube-apiserver and kube-controller-manager binaries that
// `make tools` builds, for tests and for `make run`. An optional in-process
// fake kubelet makes Pods run so Deployment rollouts complete for real.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ContextName is the kubeconfig context (and cluster) name of the admin
// kubeconfig.
const ContextName = "localcluster"

const (
	readyTimeout = 60 * time.Second
	pollEvery    = 100 * time.Millisecond
	logTailLines = 40
)

// Options configures Start.
type Options struct {
	// Dir keeps certificates, etcd data, logs and the kubeconfig. When
	// empty, Start uses a temporary directory that Stop removes.
	Dir string
	// ControllerManager also runs kube-controller-manager, so ReplicaSets
	// and Pods are created for real.
	ControllerManager bool
	// FakeKubelet runs an in-process stand-in for scheduler and kubelet
	// that makes Pods run and become Ready. It implies ControllerManager.
	FakeKubelet bool
	// Logf receives progress messages; nil discards them.
	Logf func(format string, args ...any)
	// APIServerArgs are extra kube-apiserver flags, after the defaults (a
	// later flag wins), e.g. --watch-cache=false for a fault test.
	APIServerArgs []string
}

// Cluster is a running control plane. Its methods are safe for concurrent
// use.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig (context ContextName).
	Kubeconfig string
	// APIServerURL is https://127.0.0.1:PORT; the port stays the same
	// across StopAPIServer and StartAPIServer.
	APIServerURL string
	// Dir is the absolute path of the cluster's directory.
	Dir string

	opts         Options
	ownDir       bool
	etcdBin      string
	apiServerBin string
	kcmBin       string
	pki          *pki
	etcdPort     int
	apiPort      int
	restConfig   *rest.Config
	client       kubernetes.Interface

	mu        sync.Mutex
	stopped   bool
	etcd      *process
	apiServer *process
	kcm       *process
	kubelet   *fakeKubelet
}

// Start starts etcd and kube-apiserver (and, as asked, kube-controller-manager
// and the fake kubelet) and returns once the apiserver is ready. ctx bounds
// the start-up only: the cluster runs until Stop. On error, whatever was
// started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.FakeKubelet {
		opts.ControllerManager = true
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	c := &Cluster{opts: opts}

	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	if c.etcdBin, err = binary(binDir, etcdBin); err != nil {
		return nil, err
	}
	if c.apiServerBin, err = binary(binDir, apiServerBin); err != nil {
		return nil, err
	}
	if opts.ControllerManager {
		if c.kcmBin, err = binary(binDir, controllerManagerBin); err != nil {
			return nil, err
		}
	}

	if opts.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "localcluster-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	} else {
		if c.Dir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
			err = fmt.Errorf("localcluster: %w", err)
		}
	}()

	if c.pki, err = generatePKI(filepath.Join(c.Dir, "pki")); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	c.apiPort, c.etcdPort = ports[0], ports[1]
	c.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(c.apiPort)
	if err := c.writeKubeconfig(); err != nil {
		return nil, err
	}
	if c.restConfig, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return nil, err
	}
	// Tests create objects in bursts; client-go's default 5 QPS would
	// throttle them for no benefit against a private apiserver.
	c.restConfig.QPS, c.restConfig.Burst = 100, 200
	if c.client, err = kubernetes.NewForConfig(c.restConfig); err != nil {
		return nil, err
	}

	started := time.Now()
	if err := c.startEtcd(ctx, ports[2], ports[3]); err != nil {
		return nil, err
	}
	if err := c.StartAPIServer(ctx); err != nil {
		return nil, err
	}
	opts.Logf("localcluster: kube-apiserver ready at %s after %v", c.APIServerURL, time.Since(started).Round(time.Millisecond))

	if opts.ControllerManager {
		if err := c.startControllerManager(ctx); err != nil {
			return nil, err
		}
	}
	if opts.FakeKubelet {
		kubelet, err := startFakeKubelet(ctx, c.client, opts.Logf)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.kubelet = kubelet
		c.mu.Unlock()
		opts.Logf("localcluster: fake kubelet running as node %q", FakeNodeName)
	}
	return c, nil
}

// RESTConfig returns a copy of the admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Client returns an admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// SetPodsBecomeReady chooses whether the fake kubelet reports new Pods Ready
// (the default). With false, Pods still get bound and Running but never
// Ready, so a rollout stalls until its progress deadline passes. Pods already
// Ready stay so. It does nothing without Options.FakeKubelet.
func (c *Cluster) SetPodsBecomeReady(ready bool) {
	c.mu.Lock()
	kubelet := c.kubelet
	c.mu.Unlock()
	if kubelet != nil {
		kubelet.setPodsBecomeReady(ready)
	}
}

// StopAPIServer stops kube-apiserver, leaving etcd and the rest running, to
// let a test see how clients cope with an outage.
func (c *Cluster) StopAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.apiServer
	c.apiServer = nil
	return p.stop(10 * time.Second)
}

// StartAPIServer (re)starts kube-apiserver on the same port against the same
// etcd and waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("localcluster: cluster is stopped")
	}
	if c.apiServer != nil {
		if done, _ := c.apiServer.exited(); !done {
			return errors.New("localcluster: kube-apiserver is already running")
		}
	}
	p, err := startProcess(apiServerBin, c.apiServerBin, c.apiServerArgs(), c.Dir, c.logPath(apiServerBin))
	if err != nil {
		return err
	}
	c.apiServer = p
	return waitReady(ctx, p, func(ctx context.Context) error {
		_, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	})
}

// Stop stops everything Start started, in reverse order, and removes the
// directory if Start created it. Later calls do nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	if c.kubelet != nil {
		c.kubelet.stop()
	}
	errs := []error{
		c.kcm.stop(5 * time.Second),
		c.apiServer.stop(10 * time.Second),
		c.etcd.stop(5 * time.Second),
	}
	c.apiServer = nil
	if c.ownDir {
		errs = append(errs, os.RemoveAll(c.Dir))
	}
	return errors.Join(errs...)
}

func (c *Cluster) logPath(name string) string {
	return filepath.Join(c.Dir, name+".log")
}

// logTail returns the end of a component's log, or "" if it has none.
func (c *Cluster) logTail(name string, n int) string {
	if _, err := os.Stat(c.logPath(name)); err != nil {
		return ""
	}
	return tailFile(c.logPath(name), n)
}

func (c *Cluster) startEtcd(ctx context.Context, peerPort, metricsPort int) error {
	url := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	args := []string{
		"--name=localcluster",
		"--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + url(c.etcdPort),
		"--advertise-client-urls=" + url(c.etcdPort),
		"--listen-peer-urls=" + url(peerPort),
		"--initial-advertise-peer-urls=" + url(peerPort),
		"--initial-cluster=localcluster=" + url(peerPort),
		"--listen-metrics-urls=" + url(metricsPort),
		// Durability across power loss is worthless here; fsync is what
		// makes etcd slow on CI disks.
		"--unsafe-no-fsync",
	}
	p, err := startProcess(etcdBin, c.etcdBin, args, c.Dir, c.logPath(etcdBin))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.etcd = p
	c.mu.Unlock()

	healthURL := url(c.etcdPort) + "/health"
	return waitReady(ctx, p, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthURL, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s %s", healthURL, resp.Status, body)
		}
		return nil
	})
}

func (c *Cluster) apiServerArgs() []string {
	return append([]string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(c.etcdPort),
		"--tls-cert-file=" + c.pki.ServingCert,
		"--tls-private-key-file=" + c.pki.ServingKey,
		"--client-ca-file=" + c.pki.CACert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.pki.SAPub,
		"--service-account-signing-key-file=" + c.pki.SAKey,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		// No token controller runs before the controller-manager, and
		// Pods need no credentials here.
		"--disable-admission-plugins=ServiceAccount",
		// 1.37 refuses to publish a loopback address as the kubernetes
		// Service's endpoint and exits unless reconciling is off.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
	}, c.opts.APIServerArgs...)
}

func (c *Cluster) startControllerManager(ctx context.Context) error {
	args := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--controllers=*",
		"--service-account-private-key-file=" + c.pki.SAKey,
		"--root-ca-file=" + c.pki.CACert,
	}
	p, err := startProcess(controllerManagerBin, c.kcmBin, args, c.Dir, c.logPath(controllerManagerBin))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.kcm = p
	c.mu.Unlock()

	// The default ServiceAccount appears once the controllers run: waiting
	// for it means objects created after Start are acted upon at once, and
	// a controller-manager that dies at start-up is reported here.
	started := time.Now()
	err = waitReady(ctx, p, func(ctx context.Context) error {
		_, err := c.client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	if err == nil {
		c.opts.Logf("localcluster: kube-controller-manager running after %v", time.Since(started).Round(time.Millisecond))
	}
	return err
}

// waitReady polls check until it succeeds, failing early if the process exits
// and after readyTimeout; errors carry the tail of the process's log.
func waitReady(ctx context.Context, p *process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		err := check(attemptCtx)
		cancelAttempt()
		if err == nil {
			return nil
		}
		if done, exitErr := p.exited(); done {
			return fmt.Errorf("%s exited during start-up (%v); log %s ends with:\n%s", p.name, exitErr, p.logPath, p.tail(logTailLines))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last check: %v); log %s ends with:\n%s", p.name, context.Cause(ctx), err, p.logPath, p.tail(logTailLines))
		case <-t.C:
		}
	}
}

// writeKubeconfig writes an admin kubeconfig with the credentials embedded,
// so it keeps working when copied out of Dir.
func (c *Cluster) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ContextName] = &clientcmdapi.Cluster{
		Server:                   c.APIServerURL,
		CertificateAuthorityData: c.pki.caPEM,
	}
	cfg.AuthInfos[ContextName+"-admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.pki.adminCertPEM,
		ClientKeyData:         c.pki.adminKeyPEM,
	}
	cfg.Contexts[ContextName] = &clientcmdapi.Context{
		Cluster:   ContextName,
		AuthInfo:  ContextName + "-admin",
		Namespace: corev1.NamespaceDefault,
	}
	cfg.CurrentContext = ContextName
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return clientcmd.WriteToFile(*cfg, c.Kubeconfig)
}
