package dorareceiver

import (
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

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	id := component.NewIDWithName(metadata.Type, name)
	if name == "" {
		id = component.NewID(metadata.Type)
	}
	sub, err := cm.Sub(id.String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestLoadConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := loadConfig(t, "")
		require.NoError(t, err)
		want := createDefaultConfig()
		want.Kubernetes.GetOrInsertDefault()
		assert.Equal(t, want, cfg)
		kc := cfg.Kubernetes.Get()
		require.NotNil(t, kc)
		assert.Equal(t, k8s.AuthTypeServiceAccount, kc.AuthType)
		assert.Equal(t, "production", kc.Environment.Default)
		assert.Equal(t, k8s.DefaultCommitSHAKeys, kc.Commit.SHAKeys)
	})

	t.Run("custom", func(t *testing.T) {
		cfg, err := loadConfig(t, "custom")
		require.NoError(t, err)
		kc := cfg.Kubernetes.Get()
		require.NotNil(t, kc)
		assert.Equal(t, k8s.Config{
			AuthType:      k8s.AuthTypeKubeConfig,
			KubeConfig:    "/etc/dora/kubeconfig",
			Context:       "prod-eu",
			Namespaces:    []string{"shop", "payments"},
			LabelSelector: "dora.otelcol.dev/track=true",
			Environment: k8s.EnvironmentConfig{
				Key:        "env",
				Namespaces: []k8s.NamespaceRule{{Pattern: "*-staging", Environment: "staging"}},
				Default:    "prod",
			},
			Commit: k8s.CommitConfig{SHAKeys: []string{"example.com/sha"}, TimeKeys: []string{"example.com/time"}},
		}, *kc)
		assert.Equal(t, 30*time.Second, cfg.EmitInterval)
		assert.Equal(t, []time.Duration{10 * time.Minute, time.Hour, 24 * time.Hour}, cfg.LeadTimeBuckets)
		assert.Equal(t, []time.Duration{5 * time.Minute, time.Hour}, cfg.RecoveryTimeBuckets)
		assert.Equal(t, 12*time.Hour, cfg.IncidentWindow)
		assert.Equal(t, 48*time.Hour, cfg.DedupWindow)
		assert.False(t, cfg.Metrics.PlatformDeploymentFailures.Enabled)
		assert.True(t, cfg.Metrics.PlatformDeployments.Enabled)

		ec := cfg.engineConfig()
		assert.Equal(t, []float64{600, 3600, 86400}, ec.LeadTimeBounds)
		assert.Equal(t, 12*time.Hour, ec.IncidentWindow)
	})
}

func TestInvalidConfigNamesTheKey(t *testing.T) {
	tests := map[string]string{
		"no_source":         "no source configured: add a kubernetes section",
		"bad_auth":          `kubernetes: auth_type: "token" is not one of serviceAccount, kubeConfig`,
		"bad_namespace":     `kubernetes: namespaces[0]: "Shop" is not a namespace name`,
		"bad_buckets":       "lead_time_buckets: bounds must increase (10m0s after 1h0m0s)",
		"bad_interval":      "emit_interval: must be positive",
		"empty_environment": "kubernetes: environment::default: must not be empty",
		"unknown_key":       "has invalid keys: namespace",
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			require.Error(t, err)
			assert.Contains(t, err.Error(), want)
		})
	}
}
