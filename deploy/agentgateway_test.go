package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// TestAgentAndGatewayManifests applies the agent's and the gateway's
// kustomizations (deploy/kubernetes/agent, deploy/kubernetes/gateway) to a
// real API server without a warning, and checks least privilege: the
// agent's service account reads Deployments (and lists and watches
// Rollouts and Canaries) and nothing more; the gateway's, which watches no
// cluster, can do nothing. Each ConfigMap carries its config/*.yaml.
func TestAgentAndGatewayManifests(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	agent := decodeManifestsIn(t, filepath.Join(kubernetesDir, "agent"))
	gateway := decodeManifestsIn(t, filepath.Join(kubernetesDir, "gateway"))
	for name, c := range map[string]struct {
		objs []*unstructured.Unstructured
		file string
	}{"agent": {agent, "../config/agent.yaml"}, "gateway": {gateway, "../config/gateway.yaml"}} {
		cm := findObject(t, c.objs, "ConfigMap", "otelcol-dora-"+name)
		text, _, err := unstructured.NestedString(cm.Object, "data", "config.yaml")
		require.NoError(t, err)
		want, err := os.ReadFile(c.file)
		require.NoError(t, err)
		assert.Equal(t, string(want), text, "the %s ConfigMap carries %s", name, c.file)
	}
	for _, o := range gateway {
		assert.NotContains(t, []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}, o.GetKind(), "the gateway needs no RBAC")
	}

	c := localcluster.StartForTest(t, localcluster.Options{})
	ctx := t.Context()
	cfg := c.RESTConfig()
	warn := &warnings{}
	cfg.WarningHandler = warn
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	for _, o := range append(agent, gateway...) {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, "%s %s", gvk, o.GetName())
		var res dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			require.NotEmpty(t, o.GetNamespace(), "%s %s has no namespace", o.GetKind(), o.GetName())
			res = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		data, err := json.Marshal(o.Object)
		require.NoError(t, err)
		force := true
		_, err = res.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: fieldManager, Force: &force})
		require.NoError(t, err, "apply %s %s", o.GetKind(), o.GetName())
		assert.Empty(t, warn.take(), "warnings applying %s %s", o.GetKind(), o.GetName())
	}

	can := func(sa, verb, group, res, ns string) bool {
		t.Helper()
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:otelcol-dora:" + sa,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:otelcol-dora", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: res},
		}}
		got, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		require.NoError(t, err)
		return got.Status.Allowed
	}
	for _, ns := range []string{"", "shop"} {
		for _, verb := range []string{"get", "list", "watch"} {
			assert.True(t, can("otelcol-dora-agent", verb, "apps", "deployments", ns), "agent: %s deployments in %q", verb, ns)
			assert.False(t, can("otelcol-dora-gateway", verb, "apps", "deployments", ns), "gateway: %s deployments in %q", verb, ns)
		}
		for _, gr := range [][2]string{{"argoproj.io", "rollouts"}, {"flagger.app", "canaries"}} {
			for _, verb := range []string{"list", "watch"} {
				assert.True(t, can("otelcol-dora-agent", verb, gr[0], gr[1], ns), "agent: %s %s in %q", verb, gr[1], ns)
			}
		}
	}
	for _, d := range []struct{ verb, group, res, ns string }{
		{"get", "", "secrets", "otelcol-dora"},
		{"list", "", "secrets", ""},
		{"update", "apps", "deployments", "shop"},
		{"create", "apps", "deployments", "shop"},
		{"list", "", "pods", ""},
		{"update", "argoproj.io", "rollouts", "shop"},
		{"create", "coordination.k8s.io", "leases", "otelcol-dora"},
		{"list", "", "namespaces", ""},
	} {
		for _, sa := range []string{"otelcol-dora-agent", "otelcol-dora-gateway"} {
			assert.False(t, can(sa, d.verb, d.group, d.res, d.ns), "%s: %s %s/%s in %q must be denied", sa, d.verb, d.group, d.res, d.ns)
		}
	}
}
