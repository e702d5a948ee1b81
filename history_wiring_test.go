package dorareceiver

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// TestHistorySourcesWiring: the importers whose history block is enabled
// are the ones the import runs (GitHub, GitLab, Argo CD through the
// kubernetes section's connection, PagerDuty with a token), and none
// without; in agent mode the Argo CD import is not built.
func TestHistorySourcesWiring(t *testing.T) {
	names := func(r *doraReceiver) []string {
		var out []string
		for _, s := range r.historySources() {
			out = append(out, s.Name())
		}
		return out
	}
	cfg := createDefaultConfig()
	kc := cfg.Kubernetes.GetOrInsertDefault()
	kc.AuthType, kc.KubeConfig = k8s.AuthTypeKubeConfig, filepath.Join("testdata", "unreachable.kubeconfig")
	wc := cfg.Webhooks.GetOrInsertDefault()
	gh := wc.GitHub.GetOrInsertDefault()
	gh.Secret = "s"
	gl := wc.GitLab.GetOrInsertDefault()
	gl.Secret = "s"
	ac := wc.ArgoCD.GetOrInsertDefault()
	ac.Token = "t"
	pd := wc.PagerDuty.GetOrInsertDefault()
	pd.Secret = "s"
	r := &doraReceiver{cfg: cfg, logger: zap.NewNop()}
	assert.Empty(t, names(r), "history blocks off: no importer")

	gh.History.Enabled, gh.History.Repositories = true, []string{"acme/api"}
	gl.History.Enabled, gl.History.Projects, gl.History.TokenEnv = true, []string{"acme/api"}, "GITLAB_TOKEN"
	ac.History.Enabled = true
	pd.History.Enabled, pd.History.Token = true, "pd-token"
	assert.ElementsMatch(t, []string{"github", "gitlab", "argocd", "pagerduty"}, names(r))

	cfg.Mode = ModeAgent
	assert.NotContains(t, names(r), "argocd", "an agent does not import Argo CD's history")
}
