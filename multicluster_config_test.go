package dorareceiver

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

func loadMulticlusterConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "multicluster.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestMulticlusterConfig(t *testing.T) {
	cfg, err := loadMulticlusterConfig(t, "two")
	require.NoError(t, err)
	kc := cfg.Kubernetes.Get()
	require.NotNil(t, kc)
	watched := kc.WatchedClusters()
	require.Len(t, watched, 2)

	eu, us := watched[0], watched[1]
	assert.Equal(t, "eu-1", eu.Name)
	assert.Equal(t, k8s.AuthTypeKubeConfig, eu.Config.AuthType, "a list entry defaults to a kubeconfig")
	assert.Equal(t, "testdata/clusters.kubeconfig", eu.Config.KubeConfig)
	assert.Equal(t, "eu-1", eu.Config.Context)
	assert.Equal(t, []string{"shop"}, eu.Config.Namespaces, "the section's settings apply to every cluster")
	assert.Equal(t, "production", eu.Config.Environment.Default)
	assert.Empty(t, eu.Config.Clusters)

	assert.Equal(t, "us-1", us.Name)
	assert.Equal(t, "us-1", us.Config.Context)
	assert.Equal(t, []string{"shop", "payments"}, us.Config.Namespaces, "per-cluster namespaces replace the section's")
	assert.Equal(t, "tier!=batch", us.Config.LabelSelector)
	assert.Equal(t, "staging", us.Config.Environment.Default)
	assert.Equal(t, kc.Environment.Namespaces, us.Config.Environment.Namespaces, "the namespace rules stay the section's")
	assert.Equal(t, "production", kc.Environment.Default, "the section is not changed by a cluster's override")

	// Each cluster's client is built from its own connection.
	for _, w := range watched {
		_, err := k8s.NewClient(w.Config)
		require.NoError(t, err, w.Name)
	}

	mixed, err := loadMulticlusterConfig(t, "in_cluster_and_remote")
	require.NoError(t, err)
	assert.Equal(t, k8s.AuthTypeServiceAccount, mixed.Kubernetes.Get().WatchedClusters()[0].Config.AuthType)

	single, err := loadConfig(t, "custom")
	require.NoError(t, err)
	w := single.Kubernetes.Get().WatchedClusters()
	require.Len(t, w, 1, "the single-cluster form is one unnamed cluster")
	assert.Empty(t, w[0].Name)
	assert.Same(t, single.Kubernetes.Get(), w[0].Config)
}

func TestMulticlusterConfigErrorsNameTheKey(t *testing.T) {
	outsidePod(t)
	tests := map[string][]string{
		"duplicate_name":  {`kubernetes: clusters[1]::name: "eu-1" is also clusters[0]'s name`},
		"empty_name":      {"kubernetes: clusters[0]::name: must not be empty"},
		"bad_name":        {`kubernetes: clusters[0]::name: "eu/1" is not a cluster name`},
		"missing_file":    {"kubernetes: clusters[1]::kubeconfig: stat testdata/absent.kubeconfig: no such file or directory"},
		"unknown_context": {`kubernetes: clusters[0]::context: "ap-1" is not a context of testdata/clusters.kubeconfig`},
		"same_api_server": {"kubernetes: clusters[1]::context: clusters[0] already uses this kubeconfig and context"},
		"two_in_cluster":  {"kubernetes: clusters[1]::auth_type: only one cluster is the one the receiver runs in"},
		"section_connection": {
			"kubernetes: kubeconfig: with clusters, each cluster's connection is set in its entry",
		},
		"bad_cluster_settings": {
			`kubernetes: clusters[0]::auth_type: "token" is not one of serviceAccount, kubeConfig`,
			`clusters[1]::namespaces[0]: "Shop" is not a namespace name`,
			"clusters[1]::label_selector: ",
		},
		"cluster_setting_too":        {`cluster: "eu-1" is set with kubernetes::clusters, whose entries name each cluster`},
		"lease_context_without_auth": {"leader_election::auth_type: kubeconfig and context are set without auth_type"},
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := loadMulticlusterConfig(t, name)
			require.Error(t, err)
			for _, w := range want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestMulticlusterLeaseConnection(t *testing.T) {
	outsidePod(t)
	own, err := loadMulticlusterConfig(t, "lease_on_its_own")
	require.NoError(t, err)
	assert.Equal(t, &k8s.Config{AuthType: k8s.AuthTypeKubeConfig, KubeConfig: "testdata/clusters.kubeconfig", Context: "us-1"}, own.electionConnection())

	first, err := loadMulticlusterConfig(t, "lease_on_first")
	require.NoError(t, err)
	c := first.electionConnection()
	assert.Equal(t, "eu-1", c.Context, "the first cluster listed holds the Lease")

	in, err := loadMulticlusterConfig(t, "lease_in_cluster")
	require.NoError(t, err)
	assert.Equal(t, k8s.AuthTypeServiceAccount, in.electionConnection().AuthType, "the cluster the receiver runs in holds the Lease")
}
