package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

const defaultRolloutTimeout = 2 * time.Minute

type options struct {
	deployments, namespaces, workers int
	// clusters above 1 is the agent/gateway run (gateway.go) with bin.
	clusters       int
	bin            string
	markdown       bool
	dir            string
	rolloutTimeout time.Duration
	profileDir     string
}

// results is everything one run measured.
type results struct {
	Deployments     int     `json:"deployments"`
	Namespaces      int     `json:"namespaces"`
	PopulateSeconds float64 `json:"populate_seconds"`
	// Plain and Source hold one sync per round.
	Plain        []syncReport `json:"plain"`
	Source       []syncReport `json:"source"`
	Rollout      rollout      `json:"rollout"`
	TotalSeconds float64      `json:"total_seconds"`
	workers      int
}

// rollout is the mass rollout as the parent wrote it and the source
// counted it.
type rollout struct {
	// ImageSeconds and StatusSeconds are how long writing every new image,
	// then every completed status, took.
	ImageSeconds  float64 `json:"image_seconds"`
	StatusSeconds float64 `json:"status_seconds"`
	// Started and Counted are the source's DeploymentStarted and
	// DeploymentSucceeded events; Other any other kind.
	Started int64 `json:"started"`
	Counted int64 `json:"counted"`
	Other   int64 `json:"other"`
	Exact   bool  `json:"exact"`
	// CountedPerSecond is Counted over the time from the first status
	// write to the last counted success.
	CountedPerSecond float64 `json:"counted_per_second"`
	// LagSeconds runs from the last status write to the last counted
	// success.
	LagSeconds float64 `json:"lag_seconds"`
	// HeapAllocBefore and HeapAllocAfter are the source's live heap
	// before its informers started and after the rollout.
	HeapAllocBefore uint64 `json:"heap_alloc_before"`
	HeapAllocAfter  uint64 `json:"heap_alloc_after"`
	// CPUSeconds is the source process's CPU time from its sync to the
	// last rollout counted; UpdatesPerCPUSecond is the Deployment updates
	// (watch events) it handled per CPU second, what it could sustain on
	// one core when the writers are not the bound.
	CPUSeconds          float64 `json:"cpu_seconds"`
	UpdatesPerCPUSecond float64 `json:"updates_per_cpu_second"`
}

func (r *results) add(rep syncReport) {
	if rep.Variant == variantSource {
		r.Source = append(r.Source, rep)
	} else {
		r.Plain = append(r.Plain, rep)
	}
}

func run(o options) (*results, error) {
	begin := time.Now()
	dir, err := clusterDir(o.dir)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	c, err := startCluster(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := c.Stop(); err != nil {
			log.Printf("stopping the control plane: %v", err)
		}
	}()

	client, err := fastClient(c)
	if err != nil {
		return nil, err
	}
	res := &results{Deployments: o.deployments, Namespaces: o.namespaces, workers: o.workers}
	ctx := context.Background()
	t := time.Now()
	deps, err := populate(ctx, client, o)
	if err != nil {
		return nil, err
	}
	res.PopulateSeconds = time.Since(t).Seconds()
	log.Printf("created %d Deployments in %d namespaces in %.1fs", o.deployments, o.namespaces, res.PopulateSeconds)

	// Two rounds in opposite orders, so that neither variant always lists
	// first; the second round's source stays up for the rollout.
	syncOnly := func(variant string) (syncReport, error) {
		var rep syncReport
		w, err := startWatch(variant, c.Kubeconfig, o)
		if err != nil {
			return rep, err
		}
		defer w.kill()
		if err := w.readLine(&rep); err != nil {
			return rep, fmt.Errorf("%s: %w", variant, err)
		}
		if err := w.wait(); err != nil {
			return rep, fmt.Errorf("%s: %w", variant, err)
		}
		log.Printf("%s: synced in %.2fs", variant, rep.SyncSeconds)
		return rep, nil
	}
	for _, variant := range []string{variantPlain, variantSource} {
		rep, err := syncOnly(variant)
		if err != nil {
			return nil, err
		}
		res.add(rep)
	}
	src, err := startWatch(variantSource, c.Kubeconfig, o)
	if err != nil {
		return nil, err
	}
	defer src.kill()
	var srcSync syncReport
	if err := src.readLine(&srcSync); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	res.add(srcSync)
	log.Printf("source: synced in %.2fs (stays up for the rollout)", srcSync.SyncSeconds)
	rep, err := syncOnly(variantPlain)
	if err != nil {
		return nil, err
	}
	res.add(rep)

	t = time.Now()
	if err := forEach(deps, o.workers, func(i int) error { return newImage(ctx, client, deps, i) }); err != nil {
		return nil, fmt.Errorf("new images: %w", err)
	}
	res.Rollout.ImageSeconds = time.Since(t).Seconds()
	firstStatus := time.Now()
	if err := forEach(deps, o.workers, func(i int) error { return completeRollout(ctx, client, deps[i]) }); err != nil {
		return nil, fmt.Errorf("rollout status: %w", err)
	}
	lastStatus := time.Now()
	res.Rollout.StatusSeconds = lastStatus.Sub(firstStatus).Seconds()
	log.Printf("rollout: %d images in %.1fs, %d statuses in %.1fs", len(deps), res.Rollout.ImageSeconds, len(deps), res.Rollout.StatusSeconds)
	if _, err := io.WriteString(src.stdin, "written\n"); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	var rr rolloutReport
	if err := src.readLine(&rr); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if err := src.wait(); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	r := &res.Rollout
	r.Started, r.Counted, r.Other, r.HeapAllocAfter, r.HeapAllocBefore = rr.Started, rr.Succeeded, rr.Other, rr.HeapAllocAfter, srcSync.HeapAllocBefore
	r.CPUSeconds = rr.CPUSeconds
	if rr.CPUSeconds > 0 {
		// Each Deployment changed twice: its image, then its status.
		r.UpdatesPerCPUSecond = float64(2*o.deployments) / rr.CPUSeconds
	}
	r.Exact = rr.Succeeded == int64(o.deployments) && rr.Started == int64(o.deployments) && rr.Other == 0
	if rr.LastSucceededNanos != 0 {
		last := time.Unix(0, rr.LastSucceededNanos)
		r.LagSeconds = last.Sub(lastStatus).Seconds()
		if d := last.Sub(firstStatus).Seconds(); d > 0 {
			r.CountedPerSecond = float64(rr.Succeeded) / d
		}
	}
	res.TotalSeconds = time.Since(begin).Seconds()
	return res, nil
}

// clusterDir is a fresh directory for etcd and the apiserver; tmpfs keeps
// etcd's writes off the disk.
func clusterDir(dir string) (string, error) {
	if dir != "" {
		return os.MkdirTemp(dir, "k8sscale-")
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "k8sscale-"); err == nil {
			return d, nil
		}
	}
	return os.MkdirTemp("", "k8sscale-")
}

// startCluster starts etcd and kube-apiserver; ports are picked free, so a
// start that lost a port to another process is tried again on new ones.
func startCluster(dir string) (*localcluster.Cluster, error) {
	var errs []error
	for attempt := 1; attempt <= 3; attempt++ {
		c, err := localcluster.Start(context.Background(), localcluster.Options{
			Dir:  fmt.Sprintf("%s/attempt-%d", dir, attempt),
			Logf: log.Printf,
		})
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// fastClient is an admin client without client-side rate limiting, on
// protobuf: populating is bounded by the apiserver, not by the client.
func fastClient(c *localcluster.Cluster) (kubernetes.Interface, error) {
	rc := c.RESTConfig()
	rc.QPS, rc.Burst = -1, 0 // a negative QPS turns the rate limiter off
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	return kubernetes.NewForConfig(rc)
}

// populate creates the namespaces and the Deployments, each with the status
// of a completed rollout (a cluster at rest), and returns them as created.
func populate(ctx context.Context, client kubernetes.Interface, o options) ([]*appsv1.Deployment, error) {
	for i := range o.namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespaceName(i)}}
		if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	deps := make([]*appsv1.Deployment, o.deployments)
	err := forEach(deps, o.workers, func(i int) error {
		d, err := client.AppsV1().Deployments(namespaceName(i%o.namespaces)).Create(ctx, deployment(i), metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"})
		if err != nil {
			return err
		}
		deps[i] = d
		return completeRollout(ctx, client, d)
	})
	return deps, err
}

func namespaceName(i int) string { return fmt.Sprintf("team-%03d", i) }

// deployment is a typical application Deployment: labels, the annotations
// CI and kubectl leave, one container with ports, env, resources and
// probes.
func deployment(i int) *appsv1.Deployment {
	name := fmt.Sprintf("svc-%05d", i)
	labels := map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop", "app.kubernetes.io/managed-by": "ci"}
	replicas := int32(2)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: labels,
			Annotations: map[string]string{
				"dora.otelcol.dev/team":         fmt.Sprintf("team-%d", i%20),
				"dora.otelcol.dev/commit-sha":   fmt.Sprintf("%040x", i),
				"ci.example.com/pipeline-url":   fmt.Sprintf("https://ci.example.com/shop/%s/pipelines/%d", name, 1000+i),
				"deployment.kubernetes.io/note": "created by k8sscale",
			},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "app",
					Image: fmt.Sprintf("registry.example.com/shop/%s:1.0.%d", name, i%7),
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
					Env: []corev1.EnvVar{
						{Name: "SERVICE_NAME", Value: name},
						{Name: "LOG_LEVEL", Value: "info"},
						{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://otel-collector.observability:4318"},
					},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
					},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstrHTTP}}},
					LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstrHTTP}}},
				}}},
			},
		},
	}
}

// newImage gives deps[i] a new image (a new pod-template revision) and
// keeps the object the apiserver returns, for its status write.
func newImage(ctx context.Context, client kubernetes.Interface, deps []*appsv1.Deployment, i int) error {
	d := deps[i]
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example.com/shop/%s:sha-%07x"}]}}}}`, d.Name, i+1)
	u, err := client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return err
	}
	deps[i] = u
	return nil
}

// completeRollout writes the status the Deployment controller writes when
// a rollout of d's generation has completed.
func completeRollout(ctx context.Context, client kubernetes.Interface, d *appsv1.Deployment) error {
	now := metav1.Now()
	replicas := *d.Spec.Replicas
	d = d.DeepCopy()
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           replicas,
		UpdatedReplicas:    replicas,
		ReadyReplicas:      replicas,
		AvailableReplicas:  replicas,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability.", LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", d.Name+"-5d9c7b8f4"), LastUpdateTime: now, LastTransitionTime: now},
		},
	}
	_, err := client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	return err
}

// forEach runs f for every index of items on workers goroutines and
// returns the first error.
func forEach[T any](items []T, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(len(items))) // stop the others
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// watchChild is a running `k8sscale watch` child.
type watchChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

func startWatch(variant, kubeconfig string, o options) (*watchChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "watch", "-variant", variant, "-kubeconfig", kubeconfig,
		"-expect", fmt.Sprint(o.deployments), "-rollout-timeout", o.rolloutTimeout.String())
	if o.profileDir != "" {
		cmd.Args = append(cmd.Args, "-heap-profile", filepath.Join(o.profileDir, variant+".heap.pprof"))
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &watchChild{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}, nil
}

// readLine decodes the child's next JSON line into v.
func (w *watchChild) readLine(v any) error {
	line, err := w.stdout.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("child ended early (%v): %w", err, w.wait())
	}
	return json.Unmarshal(line, v)
}

func (w *watchChild) wait() error {
	w.stdin.Close()
	return w.cmd.Wait()
}

// kill stops the child by its PID if it still runs.
func (w *watchChild) kill() {
	if w.cmd.ProcessState == nil {
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
	}
}
