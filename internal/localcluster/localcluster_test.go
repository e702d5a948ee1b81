package localcluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

const rolloutTimeout = 60 * time.Second

func TestAPIServerOnly(t *testing.T) {
	c := localcluster.StartForTest(t, localcluster.Options{})
	ctx := t.Context()
	client := c.Client()

	require.FileExists(t, c.Kubeconfig)
	require.Contains(t, c.APIServerURL, "https://127.0.0.1:")

	version, err := client.Discovery().ServerVersion()
	require.NoError(t, err)
	require.Equal(t, "v1.37.2", version.GitVersion)

	ns := createNamespace(t, client, "apionly")
	created, err := client.AppsV1().Deployments(ns).Create(ctx, deployment("web", "example.invalid/web:v1", 1), metav1.CreateOptions{})
	require.NoError(t, err)

	got, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, created.UID, got.UID)
	require.Equal(t, "example.invalid/web:v1", got.Spec.Template.Spec.Containers[0].Image)
}

func TestRestartAPIServer(t *testing.T) {
	c := localcluster.StartForTest(t, localcluster.Options{})
	ctx := t.Context()
	client := c.Client()

	ns := createNamespace(t, client, "restart")
	created, err := client.AppsV1().Deployments(ns).Create(ctx, deployment("web", "example.invalid/web:v1", 1), metav1.CreateOptions{})
	require.NoError(t, err)

	start := time.Now()
	require.NoError(t, c.StopAPIServer())
	t.Logf("kube-apiserver stopped in %v", time.Since(start).Round(time.Millisecond))
	_, err = client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	require.Error(t, err, "the apiserver should be down")

	start = time.Now()
	require.NoError(t, c.StartAPIServer(ctx))
	t.Logf("kube-apiserver restarted in %v", time.Since(start).Round(time.Millisecond))
	require.Error(t, c.StartAPIServer(ctx), "a second start must be refused")

	got, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, created.UID, got.UID)
}

func TestFakeKubeletRollout(t *testing.T) {
	c := localcluster.StartForTest(t, localcluster.Options{FakeKubelet: true})
	ctx := t.Context()
	client := c.Client()
	ns := createNamespace(t, client, "rollout")
	deployments := client.AppsV1().Deployments(ns)

	node, err := client.CoreV1().Nodes().Get(ctx, localcluster.FakeNodeName, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, corev1.ConditionTrue, nodeReady(node))

	start := time.Now()
	_, err = deployments.Create(ctx, deployment("web", "example.invalid/web:v1", 2), metav1.CreateOptions{})
	require.NoError(t, err)
	waitRolledOut(t, client, ns, "web", "example.invalid/web:v1")
	t.Logf("first rollout complete in %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	setImage(t, client, ns, "web", "example.invalid/web:v2")
	waitRolledOut(t, client, ns, "web", "example.invalid/web:v2")
	t.Logf("image change rolled out in %v", time.Since(start).Round(time.Millisecond))

	t.Run("pods held back from Ready stall the rollout", func(t *testing.T) {
		updateDeployment(t, client, ns, "web", func(d *appsv1.Deployment) {
			d.Spec.ProgressDeadlineSeconds = new(int32(2))
		})

		c.SetPodsBecomeReady(false)
		start := time.Now()
		setImage(t, client, ns, "web", "example.invalid/web:v3")
		waitDeployment(t, client, ns, "web", func(d *appsv1.Deployment) error {
			if p := progressing(d); p == nil || p.Reason != "ProgressDeadlineExceeded" {
				return fmt.Errorf("progressing %+v", p)
			}
			return nil
		})
		t.Logf("ProgressDeadlineExceeded after %v", time.Since(start).Round(time.Millisecond))

		c.SetPodsBecomeReady(true)
		waitRolledOut(t, client, ns, "web", "example.invalid/web:v3")
	})
}

func createNamespace(t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	_, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	return name
}

func deployment(name, image string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func setImage(t *testing.T, client kubernetes.Interface, ns, name, image string) {
	t.Helper()
	updateDeployment(t, client, ns, name, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = image
	})
}

// updateDeployment applies change to the latest Deployment, retrying when the
// controller-manager's status writes make our copy stale.
func updateDeployment(t *testing.T, client kubernetes.Interface, ns, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	deployments := client.AppsV1().Deployments(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := deployments.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = deployments.Update(t.Context(), d, metav1.UpdateOptions{})
		return err
	})
	require.NoError(t, err)
}

// waitRolledOut waits until the Deployment reports a complete rollout of
// image and checks that a ReplicaSet with that image owns every replica.
func waitRolledOut(t *testing.T, client kubernetes.Interface, ns, name, image string) {
	t.Helper()
	d := waitDeployment(t, client, ns, name, func(d *appsv1.Deployment) error {
		want := *d.Spec.Replicas
		st := d.Status
		p := progressing(d)
		switch {
		case st.ObservedGeneration < d.Generation:
			return fmt.Errorf("generation %d not observed yet (%d)", d.Generation, st.ObservedGeneration)
		case p == nil || p.Reason != "NewReplicaSetAvailable":
			return fmt.Errorf("progressing %+v", p)
		case st.Replicas != want || st.UpdatedReplicas != want || st.AvailableReplicas != want:
			return fmt.Errorf("replicas %d updated %d available %d, want %d", st.Replicas, st.UpdatedReplicas, st.AvailableReplicas, want)
		}
		return nil
	})

	selector := metav1.FormatLabelSelector(d.Spec.Selector)
	rss, err := client.AppsV1().ReplicaSets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	var current int
	for _, rs := range rss.Items {
		if rs.Spec.Template.Spec.Containers[0].Image == image {
			current++
			require.Equal(t, *d.Spec.Replicas, rs.Status.AvailableReplicas, "ReplicaSet %s", rs.Name)
		} else {
			require.Zero(t, *rs.Spec.Replicas, "old ReplicaSet %s should be scaled down", rs.Name)
		}
	}
	require.Equal(t, 1, current, "exactly one ReplicaSet should run %s", image)
}

func waitDeployment(t *testing.T, client kubernetes.Interface, ns, name string, done func(*appsv1.Deployment) error) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, rolloutTimeout, true, func(ctx context.Context) (bool, error) {
		var err error
		if d, err = client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			last = err
			return false, nil
		}
		last = done(d)
		return last == nil, nil
	})
	require.NoError(t, err, "deployment %s/%s: %v", ns, name, last)
	return d
}

func progressing(d *appsv1.Deployment) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}
