package dorareceiver

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
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
			Commit:        k8s.CommitConfig{SHAKeys: []string{"example.com/sha"}, TimeKeys: []string{"example.com/time"}},
			TeamKey:       k8s.DefaultTeamKey,
			ImportHistory: true,
		}, *kc)
		assert.Equal(t, 30*time.Second, cfg.EmitInterval)
		assert.Equal(t, []time.Duration{10 * time.Minute, time.Hour, 24 * time.Hour}, cfg.LeadTimeBuckets)
		assert.Equal(t, []time.Duration{5 * time.Minute, time.Hour}, cfg.RecoveryTimeBuckets)
		assert.Equal(t, 12*time.Hour, cfg.IncidentWindow)
		assert.Equal(t, 48*time.Hour, cfg.DedupWindow)
		assert.Equal(t, 60*24*time.Hour, cfg.PendingChangeMaxAge)
		assert.False(t, cfg.Metrics.PlatformDeploymentFailures.Enabled)
		assert.True(t, cfg.Metrics.PlatformDeployments.Enabled)

		ec := cfg.engineConfig()
		assert.Equal(t, []float64{600, 3600, 86400}, ec.LeadTimeBounds)
		assert.Equal(t, 12*time.Hour, ec.IncidentWindow)
		assert.Equal(t, 60*24*time.Hour, ec.PendingChangeMaxAge)

		assert.Equal(t, 720*time.Hour, ec.MaxLeadTime)
		assert.Equal(t, engine.RecoverySignals{Rollback: true, IncidentResolved: true}, ec.RecoveryOn)
		assert.Equal(t, engine.HotfixSignals{Flag: true}, ec.Hotfix)
		assert.Equal(t, []time.Duration{12 * time.Hour, 24 * time.Hour, 90 * 24 * time.Hour}, ec.RollingWindows)
		require.Len(t, ec.TierSets, 2)
		assert.Equal(t, "dora-2023", ec.TierSets[0].Name)
		assert.Equal(t, 0.25, ec.MinWindowCoverage)
		// Only the keys given change; the others keep the team defaults.
		elite, high, medium := engine.DefaultCustomTiers()
		elite.DeploymentsPerDay, elite.LeadTime = 5, time.Hour
		medium.RecoveryTime = 48 * time.Hour
		assert.Equal(t, engine.CustomTierSet("payments", elite, high, medium), ec.TierSets[1])
	})

	t.Run("dora defaults", func(t *testing.T) {
		cfg, err := loadConfig(t, "")
		require.NoError(t, err)
		assert.Equal(t, 90*24*time.Hour, cfg.MaxLeadTime)
		assert.Equal(t, []string{"deployment", "rollback", "incident_resolved"}, cfg.RecoveryOn)
		assert.Equal(t, []string{"flag", "revert"}, cfg.HotfixSignals)
		assert.Equal(t, []time.Duration{24 * time.Hour, 168 * time.Hour, 720 * time.Hour}, cfg.RollingWindows)
		assert.Equal(t, 2024, cfg.PerformanceLevels.Report)
		assert.Equal(t, "team", cfg.PerformanceLevels.Custom.Name)
		assert.Equal(t, 0.5, cfg.PerformanceLevels.MinWindowCoverage)
		// The team's targets (BRIEF.md): more than 10 a day, under 2 h,
		// under 5 %, under 30 min.
		assert.Equal(t, LevelThresholdsConfig{DeploymentFrequency: 10, LeadTime: 2 * time.Hour, ChangeFailureRate: 0.05, RecoveryTime: 30 * time.Minute},
			cfg.PerformanceLevels.Custom.Elite)
		// The defaults are the engine's.
		assert.Equal(t, engine.DefaultConfig(), withoutBuckets(cfg.engineConfig()))
	})
}

func TestLoadWebhooksConfig(t *testing.T) {
	cfg, err := loadConfig(t, "webhooks")
	require.NoError(t, err)
	assert.False(t, cfg.Kubernetes.HasValue(), "kubernetes is off unless its key is present")
	wc := cfg.Webhooks.Get()
	require.NotNil(t, wc)
	assert.Equal(t, "127.0.0.1:9099", wc.ServerConfig.NetAddr.Endpoint)
	assert.Equal(t, "/healthz", wc.HealthPath)
	assert.EqualValues(t, 10<<20, wc.ServerConfig.MaxRequestBodySize)
	g := wc.Generic.Get()
	require.NotNil(t, g)
	assert.Equal(t, "/events", g.Path)
	assert.EqualValues(t, "s3cr3t", g.Secret)
	assert.Equal(t, []ServiceMapping{{Repository: "acme/api", Namespace: "shop", Deployment: "api"}}, cfg.Services)
	assert.Equal(t, []string{"production", "prod-*"}, cfg.engineConfig().Production)

	insecure, err := loadConfig(t, "webhook_insecure")
	require.NoError(t, err, "insecure_skip_verify makes the secret optional")
	assert.True(t, insecure.Webhooks.Get().Generic.Get().InsecureSkipVerify)
}

func TestLoadStorageConfig(t *testing.T) {
	cfg, err := loadConfig(t, "storage")
	require.NoError(t, err)
	require.NotNil(t, cfg.Storage)
	assert.Equal(t, component.MustNewIDWithName("file_storage", "dora"), *cfg.Storage)
	assert.Equal(t, 50, cfg.SnapshotEvery)

	def, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Nil(t, def.Storage, "in memory unless storage is set")
	assert.Equal(t, 1000, def.SnapshotEvery)
}

func TestInvalidConfigNamesTheKey(t *testing.T) {
	tests := map[string]string{
		"no_source":              "no source configured: add a kubernetes or a webhooks section",
		"bad_auth":               `kubernetes: auth_type: "token" is not one of serviceAccount, kubeConfig`,
		"bad_namespace":          `kubernetes: namespaces[0]: "Shop" is not a namespace name`,
		"bad_buckets":            "lead_time_buckets: bounds must increase (10m0s after 1h0m0s)",
		"bad_interval":           "emit_interval: must be positive",
		"empty_environment":      "kubernetes: environment::default: must not be empty",
		"unknown_key":            "has invalid keys: namespace",
		"webhook_without_secret": "webhooks: generic: secret: required to verify deliveries (set insecure_skip_verify: true",
		"webhooks_no_source":     "webhooks: no webhook source configured",
		"github_history_bad":     `webhooks: github: history::repositories[1]: "nope" is not owner/name`,
		"webhook_bad_path":       `generic::path: "/events" is already used by health_path`,
		"bad_services":           `services[0]::deployment: must not be empty`,
		"bad_dora_settings": "max_lead_time: must be positive, got 0s\n" +
			`recovery_on[0]: "deploy" is not one of deployment, rollback, incident_resolved` + "\n" +
			`hotfix_signals[0]: "label" is not one of flag, revert` + "\n" +
			"rolling_windows[1]: 1d is listed twice\n" +
			"rolling_windows[2]: -1h0m0s is not between 0 and 8784h0m0s",
		"no_recovery_signal":         "recovery_on: at least one of deployment, rollback, incident_resolved is required",
		"bad_snapshot_every":         "snapshot_every: must be positive, got 0",
		"bad_pending_change_max_age": "pending_change_max_age: must be positive, got -1h0m0s",
		"bad_storage_id":             "storage",
		"bad_levels": "performance_levels::report: no DORA report table for 2022 (have [2023 2024])\n" +
			"performance_levels::custom::name: must not be empty\n" +
			"performance_levels::custom::high::change_failure_rate: must be a ratio above 0 and at most 1, got 1.5\n" +
			"performance_levels::custom::high::lead_time: 1h0m0s is below elite's 2h0m0s\n" +
			"performance_levels::custom::medium::change_failure_rate: 0.15 is below high's 1.5\n" +
			"performance_levels::min_window_coverage: must be between 0 and 1, got 1.5",
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			require.Error(t, err)
			assert.Contains(t, err.Error(), want)
		})
	}
}

// withoutBuckets resets what the receiver config gives in other units
// (durations for bucket bounds), so that the rest compares with the
// engine's defaults.
func withoutBuckets(ec engine.Config) engine.Config {
	d := engine.DefaultConfig()
	ec.LeadTimeBounds, ec.RecoveryTimeBounds = d.LeadTimeBounds, d.RecoveryTimeBounds
	return ec
}

func TestSemanticConventionsConfig(t *testing.T) {
	cfg := createDefaultConfig()
	assert.False(t, cfg.SemanticConventions.Enabled, "off by default: the Prometheus contract")
	cfg.SemanticConventions = SemanticConventionsConfig{Cluster: "eu-1"}
	assert.ErrorContains(t, cfg.Validate(), "semantic_conventions::cluster")
	cfg.SemanticConventions = SemanticConventionsConfig{Enabled: true, Cluster: strings.Repeat("a", 254)}
	assert.ErrorContains(t, cfg.Validate(), "semantic_conventions::cluster")
	cfg.SemanticConventions = SemanticConventionsConfig{Enabled: true, Cluster: "eu-1"}
	assert.NoError(t, cfg.SemanticConventions.validate())
}

// The cluster setting: bounded, printable, and one name with
// semantic_conventions::cluster.
func TestClusterConfig(t *testing.T) {
	cfg := createDefaultConfig()
	assert.Empty(t, cfg.Cluster, "a single-cluster installation by default")
	cfg.Kubernetes = configoptional.Some(k8s.DefaultConfig())
	cfg.Cluster = "eu-1"
	assert.NoError(t, cfg.Validate())
	cfg.SemanticConventions = SemanticConventionsConfig{Enabled: true, Cluster: "eu-1"}
	assert.NoError(t, cfg.Validate())
	cfg.SemanticConventions.Cluster = "us-1"
	assert.ErrorContains(t, cfg.Validate(), "semantic_conventions::cluster: \"us-1\" differs from cluster")
	cfg.SemanticConventions.Cluster = ""
	cfg.Cluster = strings.Repeat("a", 254)
	assert.ErrorContains(t, cfg.Validate(), "cluster: longer than 253 bytes")
	cfg.Cluster = "eu 1"
	assert.ErrorContains(t, cfg.Validate(), "cluster: \"eu 1\" contains a space")
}
