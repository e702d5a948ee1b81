package crdwatch

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// podinfo is Flagger's example target Deployment (internal/flagger/testdata).
func podinfo(t *testing.T) *unstructured.Unstructured {
	data, err := os.ReadFile("../flagger/testdata/podinfo-deployment.yaml")
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(data, &m))
	return &unstructured.Unstructured{Object: m}
}

func TestReadWorkload(t *testing.T) {
	kc := k8s.DefaultConfig()
	u := podinfo(t)
	assert.Equal(t, Workload{}, ReadWorkload(&kc, u), "a version tag is no commit, and no key is set")

	// The keys on the pod template, as CI tools set them; the object's own
	// annotations first.
	require.NoError(t, unstructured.SetNestedStringMap(u.Object, map[string]string{
		"org.opencontainers.image.revision": "ABCDEF0123",
		"dora.otelcol.dev/commit-time":      "2026-05-04T10:00:00Z",
		"dora.otelcol.dev/environment":      "staging",
	}, "spec", "template", "metadata", "annotations"))
	u.SetLabels(map[string]string{"dora.otelcol.dev/team": "payments", "dora.otelcol.dev/environment": "canary"})
	w := ReadWorkload(&kc, u)
	assert.Equal(t, Workload{
		CommitSHA:   "abcdef0123",
		CommitTime:  time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC),
		Environment: "canary",
		Team:        "payments",
	}, w)

	// The image tag fallback.
	u = podinfo(t)
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["image"] = "ghcr.io/stefanprodan/podinfo:sha-1f3c9a2"
	require.NoError(t, unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"))
	assert.Equal(t, "1f3c9a2", ReadWorkload(&kc, u).CommitSHA)
	kc.Commit.ImageTagFallback = false
	assert.Empty(t, ReadWorkload(&kc, u).CommitSHA)
}

func TestEnvironmentFor(t *testing.T) {
	env := k8s.EnvironmentConfig{Default: "production", Namespaces: []k8s.NamespaceRule{{Pattern: "*-staging", Environment: "staging"}}}
	assert.Equal(t, "staging", EnvironmentFor(&env, "shop-staging", ""))
	assert.Equal(t, "production", EnvironmentFor(&env, "shop", ""))
	assert.Equal(t, "canary", EnvironmentFor(&env, "shop-staging", "canary"))
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	c := Config{Namespaces: []string{"ok", "Not_OK"}, LabelSelector: "a in (b"}
	err := c.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `namespaces[1]: "Not_OK" is not a namespace name`)
	assert.Contains(t, err.Error(), "label_selector:")
	assert.NoError(t, (&Config{Namespaces: []string{"shop"}, LabelSelector: "team=payments"}).Validate())
}
