package dorareceiver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProgressiveConfig(t *testing.T) {
	cfg, err := loadConfig(t, "progressive")
	require.NoError(t, err)
	ac := cfg.ArgoRollouts.Get()
	require.NotNil(t, ac, "argo_rollouts: present turns the source on")
	assert.Equal(t, []string{"shop"}, ac.Namespaces)
	assert.Equal(t, "team=payments", ac.LabelSelector)
	require.NotNil(t, cfg.Flagger.Get(), "flagger: with no keys turns the source on")

	cfg, err = loadConfig(t, "")
	require.NoError(t, err)
	assert.Nil(t, cfg.ArgoRollouts.Get(), "off unless configured")
	assert.Nil(t, cfg.Flagger.Get())
}

func TestProgressiveConfigNamesTheKey(t *testing.T) {
	for name, want := range map[string][]string{
		"progressive_without_kubernetes": {
			"argo_rollouts: needs the kubernetes section",
			"flagger: needs the kubernetes section",
		},
		"progressive_bad_filters": {
			`argo_rollouts: namespaces[0]: "Shop" is not a namespace name`,
			"flagger: label_selector:",
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			require.Error(t, err)
			for _, w := range want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
