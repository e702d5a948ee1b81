package dorareceiver

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

func loadLeaderConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "leader_election.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

// outsidePod makes the test independent of the machine: no namespace to
// default to unless the test sets one.
func outsidePod(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	old := serviceAccountNamespaceFile
	serviceAccountNamespaceFile = filepath.Join(t.TempDir(), "absent")
	t.Cleanup(func() { serviceAccountNamespaceFile = old })
}

func TestLeaderElectionConfig(t *testing.T) {
	outsidePod(t)

	def, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.False(t, def.LeaderElection.HasValue(), "no election unless the key is present")

	t.Run("defaults in a pod", func(t *testing.T) {
		t.Setenv("POD_NAMESPACE", "observability")
		cfg, err := loadLeaderConfig(t, "defaults")
		require.NoError(t, err)
		le := cfg.LeaderElection.Get()
		require.NotNil(t, le)
		assert.Equal(t, LeaderElectionConfig{LeaseName: "otelcol-dora", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}, *le)
		assert.Equal(t, cfg.Kubernetes.Get(), cfg.electionConnection(), "the kubernetes section's connection")
		assert.Equal(t, "observability", podNamespace())
	})
	t.Run("namespace from the service account file", func(t *testing.T) {
		require.NoError(t, os.WriteFile(serviceAccountNamespaceFile, []byte("dora-system\n"), 0o600))
		defer os.Remove(serviceAccountNamespaceFile)
		_, err := loadLeaderConfig(t, "defaults")
		require.NoError(t, err)
		assert.Equal(t, "dora-system", podNamespace())
	})
	t.Run("defaults outside a pod", func(t *testing.T) {
		_, err := loadLeaderConfig(t, "defaults")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "leader_election::lease_namespace: required outside a pod")
	})
	t.Run("custom", func(t *testing.T) {
		cfg, err := loadLeaderConfig(t, "custom")
		require.NoError(t, err)
		assert.Equal(t, LeaderElectionConfig{LeaseName: "dora-prod", LeaseNamespace: "observability", Identity: "replica-a",
			LeaseDuration: 30 * time.Second, RenewDeadline: 20 * time.Second, RetryPeriod: 5 * time.Second}, *cfg.LeaderElection.Get())
		assert.Equal(t, "replica-a", electionIdentity(cfg.LeaderElection.Get()))
	})
	t.Run("webhooks only", func(t *testing.T) {
		cfg, err := loadLeaderConfig(t, "webhooks_only")
		require.NoError(t, err)
		assert.Equal(t, &k8s.Config{AuthType: k8s.AuthTypeKubeConfig, KubeConfig: "/etc/dora/kubeconfig", Context: "prod-eu"}, cfg.electionConnection())
		t.Setenv("HOSTNAME", "otelcol-dora-7d9f-abcde")
		assert.Equal(t, "otelcol-dora-7d9f-abcde", electionIdentity(cfg.LeaderElection.Get()), "the pod name by default")
	})

	for name, want := range map[string]string{
		"no_connection":   "leader_election::auth_type: required without a kubernetes section",
		"two_connections": "leader_election::auth_type: the kubernetes section's connection settings are used",
		"bad_timings": "leader_election: lease_name: must not be empty\n" +
			"lease_duration: 10s must be longer than renew_deadline 10s\n" +
			"renew_deadline: 10s must be longer than retry_period 0s",
		"bad_ready_path":  `ready_path: "ready" must start with /`,
		"ready_is_health": `ready_path: "/health" is already used by health_path`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadLeaderConfig(t, name)
			require.Error(t, err)
			assert.Contains(t, err.Error(), want)
		})
	}
}
