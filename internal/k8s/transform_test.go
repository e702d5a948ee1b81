package k8s

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/tools/cache"
)

func TestShaFromImage(t *testing.T) {
	tests := map[string]string{
		"registry.local/api:3f2a9c1":                       "3f2a9c1",
		"registry.local:5000/team/api:sha-3F2A9C1D":        "3f2a9c1d",
		"api:git-0123456789abcdef0123456789abcdef01234567": "0123456789abcdef0123456789abcdef01234567",
		"registry.local/api:1.2.3":                         "",
		"registry.local/api:latest":                        "",
		"registry.local:5000/api":                          "",
		"registry.local/api@sha256:0123456789abcdef":       "",
		"registry.local/api:abc123":                        "", // six digits: too short for a SHA
		"registry.local/api:20261102":                      "20261102",
	}
	for image, want := range tests {
		assert.Equal(t, want, shaFromImage(image), image)
	}
}

func TestParseCommitTime(t *testing.T) {
	want := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for _, v := range []string{"2026-11-02T08:00:00Z", "2026-11-02T09:00:00+01:00", "1793606400", "Mon Nov 2 09:00:00 2026 +0100"} {
		got, ok := parseCommitTime(v)
		assert.True(t, ok, v)
		assert.True(t, want.Equal(got), "%s gave %s", v, got)
	}
	// "1793606400000" is the same time in milliseconds: unknown, not a
	// commit 55,000 years ahead.
	for _, v := range []string{"yesterday", "-5", "", "1793606400000"} {
		_, ok := parseCommitTime(v)
		assert.False(t, ok, v)
	}
}

func TestCompactKeepsOnlyWhatIsUsed(t *testing.T) {
	cfg := DefaultConfig()
	d := with(fakeDeployment("api", "registry.local/api:3f2a9c1", 4), func(d *appsv1.Deployment) {
		d.Labels = map[string]string{"team": "payments"}
		d.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"}
		d.ResourceVersion = "12345"
	})
	c := compact(d, &cfg)
	assert.Equal(t, "api", c.Name)
	assert.Equal(t, "shop", c.Namespace)
	assert.Equal(t, int64(4), c.Generation)
	assert.Equal(t, int32(2), c.Replicas)
	assert.Equal(t, "3f2a9c1", c.CommitSHA, "image tag fallback")
	assert.Nil(t, c.GetLabels())
	assert.Nil(t, c.GetAnnotations())
	assert.Empty(t, c.GetResourceVersion())
	assert.Equal(t, reasonNewReplicaSetAvailable, c.Progressing.Reason)

	// The transform is idempotent and leaves tombstones alone.
	tf := transformer(&cfg)
	again, err := tf(c)
	assert.NoError(t, err)
	assert.Same(t, c, again)
	tomb := cache.DeletedFinalStateUnknown{Key: "shop/api", Obj: c}
	got, err := tf(tomb)
	assert.NoError(t, err)
	assert.Equal(t, tomb, got)
}

func TestTemplateHash(t *testing.T) {
	a := fakeDeployment("api", "registry.local/api:1.0", 1)
	b := fakeDeployment("api", "registry.local/api:1.0", 7)
	c := fakeDeployment("api", "registry.local/api:1.1", 1)
	assert.Equal(t, templateHash(&a.Spec.Template), templateHash(&b.Spec.Template))
	assert.NotEqual(t, templateHash(&a.Spec.Template), templateHash(&c.Spec.Template))

	restarted := a.DeepCopy()
	restarted.Spec.Template.Annotations = map[string]string{restartedAtAnnotation: "now"}
	assert.Equal(t, templateHash(&a.Spec.Template), templateHash(&restarted.Spec.Template))
	assert.NotContains(t, a.Spec.Template.Annotations, restartedAtAnnotation, "hashing does not modify the object")
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	assert.NoError(t, cfg.Validate())

	cfg.AuthType = "token"
	cfg.Namespaces = []string{"ok", "Not_OK"}
	cfg.LabelSelector = "app in (a"
	cfg.Environment.Default = ""
	cfg.Environment.Namespaces = []NamespaceRule{{Pattern: "[", Environment: ""}}
	cfg.Commit.SHAKeys = []string{"bad key"}
	err := cfg.Validate()
	for _, want := range []string{
		`auth_type: "token" is not one of`,
		`namespaces[1]: "Not_OK"`,
		"label_selector:",
		"environment::default: must not be empty",
		"environment::namespaces[0]::pattern",
		"environment::namespaces[0]::environment: must not be empty",
		`commit::sha_keys[0]: "bad key"`,
	} {
		assert.ErrorContains(t, err, want)
	}

	cfg = DefaultConfig()
	cfg.KubeConfig = "/etc/kubeconfig"
	assert.ErrorContains(t, cfg.Validate(), "set auth_type: kubeConfig")
}
