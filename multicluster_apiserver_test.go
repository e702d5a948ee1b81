package dorareceiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/otelcol-dora/dorareceiver/internal/argorollouts"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
)

// A central receiver watching three real API servers (etcd and
// kube-apiserver each, 127.0.0.1), with a Deployment of the same namespace
// and name in each, and the GitHub webhook: every series carries its
// cluster, one push meets the rollouts of every cluster, an API server
// stopped and restarted stops only its cluster's counting and nothing is
// counted twice when it returns, and a restart of the receiver keeps each
// cluster's rollout state apart.

// watchedCluster is one of the test's clusters: its control plane and
// its name in kubernetes::clusters.
type watchedCluster struct {
	name string
	cp   *localcluster.Cluster
	// kubeconfig is the receiver's: the admin one unless set.
	kubeconfig string
	cluster
}

// multiReceiver is a running receiver watching the clusters.
type multiReceiver struct {
	*testReceiver
	url string
	rcv *shared
}

func startMulticlusterReceiver(t *testing.T, clusters []watchedCluster, host component.Host, configure ...func(*Config)) *multiReceiver {
	t.Helper()
	cfg := createDefaultConfig()
	kc := cfg.Kubernetes.GetOrInsertDefault()
	for _, c := range clusters {
		kubeconfig := c.kubeconfig
		if kubeconfig == "" {
			kubeconfig = c.cp.Kubeconfig
		}
		kc.Clusters = append(kc.Clusters, k8s.ClusterConfig{Name: c.name, KubeConfig: kubeconfig, Context: localcluster.ContextName})
	}
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.GitHub.GetOrInsertDefault().Secret = testSecret
	cfg.Services = []ServiceMapping{{Repository: "acme/api", Namespace: "shop", Deployment: "api"}}
	id := storageID
	cfg.Storage = &id
	for _, c := range configure {
		c(cfg)
	}
	require.NoError(t, cfg.Validate())

	sink := new(consumertest.MetricsSink)
	rcv, err := NewFactory().CreateMetrics(context.Background(), storedSettings(), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host))
	// With leader_election, the sources start once this replica leads.
	dr := rcv.(*shared).doraReceiver
	require.Eventually(t, dr.isLeader.Load, waitFor, 20*time.Millisecond, "never led")
	dr.leadMu.Lock()
	sources := append([]source(nil), dr.sources...)
	dr.leadMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	n := 0
	for _, src := range sources {
		if ps, ok := src.(interface{ WaitForSync(context.Context) bool }); ok {
			require.True(t, ps.WaitForSync(ctx), "a source never synced")
		}
		if _, ok := src.(*k8s.Source); ok {
			n++
		}
	}
	require.Equal(t, len(clusters), n, "one Kubernetes source per cluster")
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			require.NoError(t, rcv.Shutdown(context.Background()))
		}
	}
	t.Cleanup(stop)
	return &multiReceiver{testReceiver: &testReceiver{t: t, sink: sink, stop: stop}, url: "http://" + wc.ServerConfig.NetAddr.Endpoint, rcv: rcv.(*shared)}
}

// in selects the series of shop/api in cluster, with extra attributes.
func in(cluster string, extra ...string) map[string]string {
	m := map[string]string{"cluster": cluster, "namespace": "shop", "deployment": "api"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// clusterSentinel rolls out a fresh Deployment in c and waits until r
// counts it in c's cluster: every earlier change of c was applied then
// (see cluster.sentinel).
func clusterSentinel(r *testReceiver, c watchedCluster) {
	c.t.Helper()
	name := fmt.Sprintf("sentinel-%d", time.Now().UnixNano())
	c.create("shop", name, "registry.local/sentinel:1")
	c.complete("shop", name)
	r.waitValue("platform.deployments", map[string]string{"cluster": c.name, "namespace": "shop", "deployment": name, "status": "success"}, 1)
}

// rolloutOf starts a rollout of shop/api: a new image, with the commit
// annotation when sha is set.
func (c watchedCluster) rolloutOf(image, sha string) {
	c.t.Helper()
	c.update("shop", "api", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = image
		d.Annotations = map[string]string{}
		if sha != "" {
			d.Annotations["dora.otelcol.dev/commit-sha"] = sha
		}
	})
	c.progressing("shop", "api")
}

func TestMulticlusterAgainstAPIServers(t *testing.T) {
	if testing.Short() {
		t.Skip("three control planes; run through make test")
	}
	var clusters []watchedCluster
	for _, name := range []string{"eu-1", "us-1", "ap-1"} {
		cp := localcluster.StartForTest(t, localcluster.Options{})
		clusters = append(clusters, watchedCluster{name: name, cp: cp, cluster: cluster{t: t, client: cp.Client()}})
	}
	eu, us, ap := clusters[0], clusters[1], clusters[2]
	// ap-1 is watched with the least-privilege identity of
	// deploy/multicluster/watched-cluster.yaml.
	clusters[2].kubeconfig = readerKubeconfig(t, ap.cp)
	ap = clusters[2]
	// The same namespace and name in every cluster, existing before the
	// receiver starts: not counted.
	for _, c := range clusters {
		c.namespace("shop")
		c.create("shop", "api", "registry.local/api:1")
		c.complete("shop", "api")
	}
	// Created in an earlier second than the receiver starts tracking
	// (creation times have whole seconds): after a restart, a Deployment
	// the saved state does not know is then one that existed before, not
	// one created while the receiver was down (tracker.observe).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	ext := persisttest.NewExtension()
	host := &statusHost{extensionHost: extensionHost{storageID: ext}}
	r := startMulticlusterReceiver(t, clusters, host)

	// A first rollout in each cluster starts each one's history of shop/api.
	for _, c := range clusters {
		c.rolloutOf("registry.local/api:2", "")
		c.complete("shop", "api")
	}
	for _, c := range clusters {
		r.waitValue("platform.deployments", in(c.name, "status", "success"), 1)
	}

	// One signed push at the receiver; its head then rolls out in every
	// cluster: a success in eu-1 and us-1, a failure in ap-1.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	committed := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	commits := 0
	postGitHub(t, r.url, "push", "push-1", githubFixture(t, "push.json", func(m map[string]any) {
		commits = len(m["commits"].([]any))
		for _, c := range m["commits"].([]any) {
			c.(map[string]any)["timestamp"] = committed
		}
		m["head_commit"].(map[string]any)["timestamp"] = committed
	}))
	for _, c := range clusters {
		c.rolloutOf("registry.local/api:3", pushedHead)
	}
	eu.complete("shop", "api")
	us.complete("shop", "api")
	ap.deadlineExceeded("shop", "api")
	r.waitValue("platform.deployments", in("eu-1", "status", "success"), 2)
	r.waitValue("platform.deployments", in("us-1", "status", "success"), 2)
	r.waitValue("platform.deployments", in("ap-1", "status", "failure"), 1)
	for _, c := range clusters {
		clusterSentinel(r.testReceiver, c)
	}
	// A lead time per commit of the push that reached production.
	require.Positive(t, commits)
	assert.EqualValues(t, commits, r.histogramCount("platform.lead_time", in("eu-1")), "the push met eu-1's rollout")
	assert.EqualValues(t, commits, r.histogramCount("platform.lead_time", in("us-1")), "the push met us-1's rollout")
	assert.EqualValues(t, 0, r.histogramCount("platform.lead_time", in("ap-1")), "ap-1's rollout failed")
	assert.EqualValues(t, 1, r.value("platform.deployments", in("ap-1", "status", "success")))
	assert.EqualValues(t, 1, r.value("platform.deployment.failures", in("ap-1", "reason", "ProgressDeadlineExceeded")))
	assert.EqualValues(t, 0, r.value("platform.deployment.failures", in("eu-1")))
	assert.EqualValues(t, 0, r.value("platform.deployments", in("eu-1", "status", "failure")))

	// us-1's API server stops: eu-1 and ap-1 go on counting, and the
	// status names us-1.
	statusesBefore := host.count()
	require.NoError(t, us.cp.StopAPIServer())
	eu.rolloutOf("registry.local/api:4", "")
	eu.complete("shop", "api")
	ap.rolloutOf("registry.local/api:4", "")
	ap.complete("shop", "api")
	r.waitValue("platform.deployments", in("eu-1", "status", "success"), 3)
	r.waitValue("platform.deployments", in("ap-1", "status", "success"), 2)
	require.Eventually(t, func() bool { return r.histogramCount("platform.recovery_time", in("ap-1")) == 1 },
		waitFor, 20*time.Millisecond, "ap-1 recovered from its failure")
	require.Eventually(t, func() bool {
		for _, e := range host.since(statusesBefore) {
			if e.Status() == componentstatus.StatusRecoverableError && strings.Contains(e.Err().Error(), `"us-1"`) {
				return true
			}
		}
		return false
	}, waitFor, 50*time.Millisecond, "no recoverable error naming us-1")
	for _, e := range host.since(statusesBefore) {
		if e.Err() != nil {
			assert.NotContains(t, e.Err().Error(), `"eu-1"`, "eu-1 answers")
			assert.NotContains(t, e.Err().Error(), `"ap-1"`, "ap-1 answers")
		}
	}

	// Back: us-1 counts again, and nothing it counted before is counted
	// twice (its informer lists every Deployment again).
	require.NoError(t, us.cp.StartAPIServer(context.Background()))
	us.rolloutOf("registry.local/api:4", "")
	us.complete("shop", "api")
	require.Eventually(t, func() bool { return r.value("platform.deployments", in("us-1", "status", "success")) == 3 },
		recoverWithin, 50*time.Millisecond, "us-1's rollout after its API server returned: last %d", r.value("platform.deployments", in("us-1", "status", "success")))
	for _, c := range clusters {
		clusterSentinel(r.testReceiver, c)
	}
	want := map[string][2]int64{"eu-1": {3, 0}, "us-1": {3, 0}, "ap-1": {2, 1}}
	for name, n := range want {
		assert.EqualValues(t, n[0], r.value("platform.deployments", in(name, "status", "success")), name)
		assert.EqualValues(t, n[1], r.value("platform.deployments", in(name, "status", "failure")), name)
	}
	assert.EqualValues(t, commits, r.histogramCount("platform.lead_time", in("us-1")), "us-1's lead times not recorded twice")
	assert.EqualValues(t, commits, r.histogramCount("platform.lead_time", in("eu-1")))
	require.Eventually(t, func() bool {
		ev := host.since(statusesBefore)
		return len(ev) > 0 && ev[len(ev)-1].Status() == componentstatus.StatusOK
	}, waitFor, 50*time.Millisecond, "the status is OK again once us-1 answers")

	// The receiver restarts on its storage; meanwhile shop/api rolls out
	// in eu-1 and us-1. Each cluster's saved state is its own: each
	// rollout is counted once, in its cluster, and nothing else again.
	r.stop()
	eu.rolloutOf("registry.local/api:5", "")
	eu.complete("shop", "api")
	us.rolloutOf("registry.local/api:5", "")
	us.complete("shop", "api")
	second := startMulticlusterReceiver(t, clusters, &statusHost{extensionHost: extensionHost{storageID: ext}})
	second.waitValue("platform.deployments", in("eu-1", "status", "success"), 4)
	second.waitValue("platform.deployments", in("us-1", "status", "success"), 4)
	for _, c := range clusters {
		clusterSentinel(second.testReceiver, c)
	}
	want = map[string][2]int64{"eu-1": {4, 0}, "us-1": {4, 0}, "ap-1": {2, 1}}
	for name, n := range want {
		assert.EqualValues(t, n[0], second.value("platform.deployments", in(name, "status", "success")), name)
		assert.EqualValues(t, n[1], second.value("platform.deployments", in(name, "status", "failure")), name)
	}
}

// readerKubeconfig applies deploy/multicluster/watched-cluster.yaml to cp
// and returns a kubeconfig (context localcluster.ContextName) with a token
// of its service account, after checking that it can read Deployments and
// nothing more of what the test asks.
func readerKubeconfig(t *testing.T, cp *localcluster.Cluster) string {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile("deploy/multicluster/watched-cluster.yaml")
	require.NoError(t, err)
	client := cp.Client()
	decode := scheme.Codecs.UniversalDeserializer().Decode
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		obj, _, err := decode([]byte(doc), nil, nil)
		require.NoError(t, err)
		switch o := obj.(type) {
		case *corev1.Namespace:
			_, err = client.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			_, err = client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = client.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("unexpected object %T in watched-cluster.yaml", obj)
		}
		require.NoError(t, err)
	}
	tok, err := client.CoreV1().ServiceAccounts("otelcol-dora").CreateToken(ctx, "otelcol-dora-reader", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	require.NoError(t, err)
	rc := cp.RESTConfig()
	caData := rc.CAData
	if len(caData) == 0 {
		caData, err = os.ReadFile(rc.CAFile)
		require.NoError(t, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["watched"] = &clientcmdapi.Cluster{Server: cp.APIServerURL, CertificateAuthorityData: caData}
	kc.AuthInfos["reader"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts[localcluster.ContextName] = &clientcmdapi.Context{Cluster: "watched", AuthInfo: "reader"}
	kc.CurrentContext = localcluster.ContextName
	path := filepath.Join(t.TempDir(), "reader.kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))

	// What the identity may do: read Deployments everywhere, list and
	// watch Rollouts and Canaries; not read Secrets or Pods, not write.
	reader, err := k8s.NewClient(&k8s.Config{AuthType: k8s.AuthTypeKubeConfig, KubeConfig: path})
	require.NoError(t, err)
	can := func(verb, group, resource string) bool {
		t.Helper()
		r, err := reader.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "shop", Verb: verb, Group: group, Resource: resource},
		}}, metav1.CreateOptions{})
		require.NoError(t, err)
		return r.Status.Allowed
	}
	for _, verb := range []string{"get", "list", "watch"} {
		assert.True(t, can(verb, "apps", "deployments"), verb)
	}
	assert.True(t, can("watch", "argoproj.io", "rollouts"))
	assert.True(t, can("watch", "flagger.app", "canaries"))
	for _, denied := range [][3]string{{"get", "", "secrets"}, {"list", "", "pods"}, {"update", "apps", "deployments"}, {"patch", "apps", "deployments"}, {"create", "coordination.k8s.io", "leases"}} {
		assert.False(t, can(denied[0], denied[1], denied[2]), "%v", denied)
	}
	return path
}

// TestMulticlusterArgoRollouts: each cluster has its own Argo Rollouts
// source. A Rollout's events carry its cluster, and a Rollout that rolls
// out shop/checkout in eu-1 (workloadRef) leaves eu-1's Deployment to it,
// not us-1's Deployment of the same name.
func TestMulticlusterArgoRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("two control planes; run through make test")
	}
	var clusters []watchedCluster
	var ros []crs
	for _, name := range []string{"eu-1", "us-1"} {
		cp := localcluster.StartForTest(t, localcluster.Options{})
		dyn, err := dynamic.NewForConfig(cp.RESTConfig())
		require.NoError(t, err)
		applyCRDs(t, dyn, "internal/argorollouts/testdata/rollout-crd.yaml")
		c := watchedCluster{name: name, cp: cp, cluster: cluster{t: t, client: cp.Client()}}
		c.namespace("shop")
		clusters = append(clusters, c)
		ros = append(ros, crs{t: t, dyn: dyn, gvr: argorollouts.GVR})
	}
	eu, us := clusters[0], clusters[1]
	r := startMulticlusterReceiver(t, clusters, extensionHost{storageID: persisttest.NewExtension()}, func(cfg *Config) {
		cfg.ArgoRollouts.GetOrInsertDefault()
	})
	require.Len(t, r.rcv.claimers, 2, "one Argo Rollouts source per cluster")

	// A Rollout in us-1 only: its rollout is us-1's.
	example := readObjects(t, "internal/argorollouts/testdata/rollout-analysis-step.yaml")[0]
	const name = "rollout-analysis-step"
	ros[1].create("shop", example)
	ros[1].status("shop", name, func(u *unstructured.Unstructured) map[string]any {
		return argoStatus(u.GetGeneration(), "6b7f8c5d4", "6b7f8c5d4", "Healthy", 4, "", false, time.Now())
	})
	r.waitValue("platform.deployments", map[string]string{"cluster": "us-1", "namespace": "shop", "deployment": name, "status": "success"}, 1)

	// shop/checkout: a Rollout's workload in eu-1, a plain Deployment in
	// us-1.
	wl := example.DeepCopy()
	wl.SetName("checkout")
	unstructured.RemoveNestedField(wl.Object, "spec", "template")
	unstructured.RemoveNestedField(wl.Object, "spec", "selector")
	require.NoError(t, unstructured.SetNestedMap(wl.Object, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"}, "spec", "workloadRef"))
	ros[0].create("shop", wl)
	progressiveReceiver{testReceiver: r.testReceiver, rcv: r.rcv}.waitClaimed("shop", "checkout")
	for _, c := range clusters {
		c.create("shop", "checkout", "registry.local/checkout:1", func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32) })
		c.complete("shop", "checkout")
	}
	checkout := func(cluster string) map[string]string {
		return map[string]string{"cluster": cluster, "namespace": "shop", "deployment": "checkout", "status": "success"}
	}
	r.waitValue("platform.deployments", checkout("us-1"), 1)
	clusterSentinel(r.testReceiver, eu)
	clusterSentinel(r.testReceiver, us)
	assert.EqualValues(t, 0, r.value("platform.deployments", checkout("eu-1")), "eu-1's checkout is its Rollout's")
	assert.EqualValues(t, 1, r.value("platform.deployments", checkout("us-1")), "us-1's checkout is a Deployment of its own")
	assert.EqualValues(t, 0, r.value("platform.deployments", map[string]string{"cluster": "eu-1", "deployment": name}), "the Rollout is us-1's only")
}

// TestMulticlusterOneLease: with leader_election and no connection of its
// own, the one Lease is on the first cluster listed, none on the others,
// and the leader watches every cluster.
func TestMulticlusterOneLease(t *testing.T) {
	if testing.Short() {
		t.Skip("two control planes; run through make test")
	}
	var clusters []watchedCluster
	for _, name := range []string{"eu-1", "us-1"} {
		cp := localcluster.StartForTest(t, localcluster.Options{})
		c := watchedCluster{name: name, cp: cp, cluster: cluster{t: t, client: cp.Client()}}
		c.namespace("shop")
		clusters = append(clusters, c)
	}
	r := startMulticlusterReceiver(t, clusters, extensionHost{storageID: persisttest.NewExtension()}, func(cfg *Config) {
		le := testElection
		le.Identity = "replica-a"
		cfg.LeaderElection = configoptional.Some(le)
	})
	lease, err := clusters[0].client.CoordinationV1().Leases(testElection.LeaseNamespace).Get(context.Background(), testElection.LeaseName, metav1.GetOptions{})
	require.NoError(t, err, "the Lease is on the first cluster")
	require.NotNil(t, lease.Spec.HolderIdentity)
	assert.Equal(t, "replica-a", *lease.Spec.HolderIdentity)
	_, err = clusters[1].client.CoordinationV1().Leases(testElection.LeaseNamespace).Get(context.Background(), testElection.LeaseName, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "no Lease on the second cluster: %v", err)
	for _, c := range clusters {
		clusterSentinel(r.testReceiver, c)
	}
}
