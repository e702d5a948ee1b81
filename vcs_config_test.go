package dorareceiver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
)

// The Bitbucket Cloud, Bitbucket Data Center and Azure DevOps sources are
// webhook sources like the others: on by their key, on their own path,
// their config errors naming the key.
func TestVCSSourcesConfig(t *testing.T) {
	load := func(webhooks map[string]any) (*Config, error) {
		cfg := NewFactory().CreateDefaultConfig().(*Config)
		if err := confmap.NewFromStringMap(map[string]any{"webhooks": webhooks}).Unmarshal(cfg); err != nil {
			return cfg, err
		}
		return cfg, confmap.Validate(cfg)
	}
	_, err := load(map[string]any{
		"bitbucket":    map[string]any{"deployment_statuses": []any{"["}},
		"bitbucket_dc": map[string]any{"secret": "s", "max_age": "-1s"},
		"azuredevops":  map[string]any{"header": "Authorization"},
	})
	require.Error(t, err)
	for _, want := range []string{
		"webhooks: bitbucket: secret: required to verify deliveries",
		`deployment_statuses[0]: "[" is not a valid pattern`,
		"bitbucket_dc: max_age: -1s is negative",
		"azuredevops: token: required to authenticate deliveries",
		`header: "Authorization" is not a header name`,
	} {
		assert.Contains(t, err.Error(), want)
	}

	cfg, err := load(map[string]any{
		"bitbucket":    map[string]any{"secret": "a"},
		"bitbucket_dc": map[string]any{"secret": "b"},
		"azuredevops":  map[string]any{"token": "c"},
	})
	require.NoError(t, err)
	paths := map[string]string{}
	for _, s := range cfg.Webhooks.Get().sources() {
		paths[s.key] = s.path
		assert.False(t, s.insecure, s.key)
		assert.NotEmpty(t, s.secret, s.key)
	}
	assert.Equal(t, map[string]string{
		"bitbucket": "/webhooks/bitbucket", "bitbucket_dc": "/webhooks/bitbucket-dc", "azuredevops": "/webhooks/azuredevops",
	}, paths)
}
