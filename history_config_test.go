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

	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

func loadHistoryConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "history.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

// TestHistoryConfig: the history settings' defaults (a 30-day window,
// import on a first start, no trigger), every key read, and errors that
// name the key.
func TestHistoryConfig(t *testing.T) {
	cfg, err := loadHistoryConfig(t, "defaults")
	require.NoError(t, err)
	assert.Equal(t, 30*24*time.Hour, cfg.History.Window)
	assert.True(t, cfg.History.OnStart)
	assert.Equal(t, 500, cfg.History.BatchSize)
	assert.False(t, cfg.History.Trigger.HasValue(), "no trigger unless configured")
	g := cfg.Webhooks.Get().Generic.Get()
	assert.True(t, g.History.Enabled)
	assert.False(t, g.History.HasToken())

	cfg, err = loadHistoryConfig(t, "custom")
	require.NoError(t, err)
	assert.Equal(t, 90*24*time.Hour, cfg.History.Window)
	assert.False(t, cfg.History.OnStart)
	assert.Equal(t, 100, cfg.History.BatchSize)
	tc := cfg.History.Trigger.Get()
	require.NotNil(t, tc)
	assert.Equal(t, "/import", tc.Path)
	assert.EqualValues(t, "t0ken", tc.Token)
	pd := cfg.Webhooks.Get().PagerDuty.Get()
	assert.Equal(t, "/var/run/secrets/pagerduty/token", pd.History.TokenFile)
	assert.Equal(t, 500, pd.History.RequestBudget)
	assert.Equal(t, "https://api.eu.pagerduty.com", pd.History.Endpoint)

	_, err = loadHistoryConfig(t, "window_too_long")
	require.ErrorContains(t, err, "history::window: 1440h0m0s is longer than the longest rolling window (720h0m0s)")

	_, err = loadHistoryConfig(t, "trigger_without_webhooks")
	require.ErrorContains(t, err, "history::trigger: needs a webhooks section")

	_, err = loadHistoryConfig(t, "bad_history")
	require.Error(t, err)
	for _, want := range []string{
		"history::batch_size: must be between 1 and 10000, got 0",
		`history::trigger::path: "import" must start with /`,
		"history::trigger::token: required",
		"history::token_file: set either token or token_file, not both",
		"history::request_budget: must not be negative",
		`history::endpoint: "ftp://x" must be an http:// or https:// URL`,
	} {
		assert.Contains(t, err.Error(), want)
	}
}
