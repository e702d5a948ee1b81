package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// sampleTimeout bounds the wait for one value on the endpoint.
const sampleTimeout = 15 * time.Second

// seriesSum scrapes a Prometheus text endpoint and sums the samples of
// metric whose label set contains every one of labels (`name="value"`).
func seriesSum(ctx context.Context, client *http.Client, url, metric string, labels ...string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return sumExposition(bufio.NewScanner(resp.Body), metric, labels...)
}

func sumExposition(sc *bufio.Scanner, metric string, labels ...string) (float64, error) {
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var sum float64
lines:
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, metric)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				continue lines
			}
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			return 0, fmt.Errorf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("value of %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// waitAtLeast scrapes url as fast as it answers until the sum reaches want,
// and returns when it did.
func waitAtLeast(ctx context.Context, client *http.Client, url string, timeout time.Duration, want float64, metric string, labels ...string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		v, err := seriesSum(ctx, client, url, metric, labels...)
		now := time.Now()
		if err == nil && v >= want {
			return now, nil
		}
		if ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("%s{%s} did not reach %g on %s within %s (last %g, %v)", metric, strings.Join(labels, ","), want, url, timeout, v, err)
		}
	}
}

// webhookFreshness sends samples GitHub deployment_status "success"
// deliveries to dora one at a time and measures, for each, the time from its
// 2xx answer to the new count on the Prometheus endpoint.
func webhookFreshness(ctx context.Context, dora *collector, root, secret string, samples int) ([]time.Duration, error) {
	client := newClient(2)
	defer client.CloseIdleConnections()
	const metric = "platform_deployments_total"
	var out []time.Duration
	for i := range samples {
		before, err := seriesSum(ctx, client, dora.metrics, metric, `status="success"`)
		if err != nil {
			return nil, err
		}
		req, err := deploymentStatusRequest(root, secret, i, time.Now())
		if err != nil {
			return nil, err
		}
		if err := send(ctx, client, dora.ingest+"/webhooks/github", req); err != nil {
			return nil, fmt.Errorf("deployment_status %d: %w", i, err)
		}
		answered := time.Now()
		seen, err := waitAtLeast(ctx, client, dora.metrics, sampleTimeout, before+1, metric, `status="success"`)
		if err != nil {
			return nil, err
		}
		out = append(out, seen.Sub(answered))
		time.Sleep(20 * time.Millisecond)
	}
	return out, nil
}

// rolloutFreshness starts a real kube-apiserver, an otelcol-dora watching
// it, and measures, samples times, the time from a Deployment's completed
// rollout (its status written through the status subresource, as the
// Deployment controller does) to the count on the Prometheus endpoint.
func rolloutFreshness(ctx context.Context, dir, bin, secret string, samples int, logf func(string, ...any)) ([]time.Duration, error) {
	cluster, err := localcluster.Start(ctx, localcluster.Options{Logf: logf})
	if err != nil {
		return nil, fmt.Errorf("local control plane (needs `make tools`): %w", err)
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			logf("stopping the control plane: %v", err)
		}
	}()
	dora, err := startDora(ctx, dir, "dora-kubernetes", bin, secret, "prometheus", cluster.Kubeconfig, false)
	if err != nil {
		return nil, err
	}
	defer dora.stop()

	k := cluster.Client()
	const ns = "doraload"
	if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	client := newClient(2)
	defer client.CloseIdleConnections()
	var out []time.Duration
	// Sample -1 waits for the receiver's informer to have synced; it is
	// not counted.
	for i := -1; i < samples; i++ {
		name := fmt.Sprintf("web-%d", i+1)
		if err := createDeployment(ctx, k, ns, name); err != nil {
			return nil, err
		}
		if err := completeRollout(ctx, k, ns, name); err != nil {
			return nil, err
		}
		completed := time.Now()
		timeout := sampleTimeout
		if i < 0 {
			timeout = 60 * time.Second
		}
		seen, err := waitAtLeast(ctx, client, dora.metrics, timeout, 1, "platform_deployments_total",
			fmt.Sprintf("namespace=%q", ns), fmt.Sprintf("deployment=%q", name), `status="success"`)
		if err != nil {
			return nil, fmt.Errorf("%w\n%s", err, dora.logTail())
		}
		if i >= 0 {
			out = append(out, seen.Sub(completed))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out, nil
}

func createDeployment(ctx context.Context, k kubernetes.Interface, ns, name string) error {
	replicas := int32(2)
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.local/" + name + ":1"}}},
			},
		},
	}
	_, err := k.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	return err
}

// completeRollout writes the status the Deployment controller writes when a
// rollout of the current generation has completed.
func completeRollout(ctx context.Context, k kubernetes.Interface, ns, name string) error {
	d, err := k.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	n := *d.Spec.Replicas
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, AvailableReplicas: n, ReadyReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
			LastUpdateTime: now, LastTransitionTime: now,
		}},
	}
	_, err = k.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	return err
}
