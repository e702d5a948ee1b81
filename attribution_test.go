package dorareceiver

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// loadYAML unmarshals and validates a receiver configuration given as YAML.
func loadYAML(t *testing.T, yaml string) (*Config, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o600))
	cm, err := confmaptest.LoadConf(file)
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := cm.Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

const monorepoYAML = `
webhooks:
  generic:
    secret: s3cr3t
services:
  - repository: acme/mono
    namespace: shop
    deployment: api
    team: payments
    paths: ["services/api/**", "libs/shared/**"]
  - repository: acme/mono
    namespace: shop
    deployment: web
    paths: ["services/web/"]
  - repository: acme/web-config
    namespace: shop
    deployment: web
teams:
  static:
    shop/cart: checkout
    search: discovery
  from_repository_owner: true
`

func TestTeamsAndPathsConfig(t *testing.T) {
	cfg, err := loadYAML(t, monorepoYAML)
	require.NoError(t, err)
	assert.Equal(t, ServiceMapping{Repository: "acme/mono", Namespace: "shop", Deployment: "api", Team: "payments", Paths: []string{"services/api/**", "libs/shared/**"}}, cfg.Services[0])
	assert.Equal(t, TeamsConfig{Static: map[string]string{"shop/cart": "checkout", "search": "discovery"}, FromRepositoryOwner: true}, cfg.Teams)
	// web is also deployed from a repository without paths: all of that
	// repository's commits are its changes, so it has no filter.
	assert.Equal(t, map[engine.ServiceKey][]string{{Namespace: "shop", Name: "api"}: {"services/api/**", "libs/shared/**"}}, cfg.engineConfig().ServicePaths)

	def := createDefaultConfig()
	assert.Equal(t, TeamsConfig{}, def.Teams, "no team unless configured")
	assert.Nil(t, def.engineConfig().ServicePaths)
	assert.Equal(t, k8s.DefaultTeamKey, def.Kubernetes.GetOrInsertDefault().TeamKey)
}

func TestTeamsAndPathsConfigNamesBadKeys(t *testing.T) {
	const head = "webhooks:\n  generic:\n    secret: s3cr3t\n"
	tests := map[string]struct{ yaml, want string }{
		"bad path pattern": {
			"services:\n  - {repository: acme/mono, deployment: api, paths: [\"services/api/**\", \"svc-[a/**\"]}\n",
			`services[0]::paths[1]: "svc-[a/**" is not a valid pattern`,
		},
		"empty path": {
			"services:\n  - {repository: acme/mono, deployment: api, paths: [\"\"]}\n",
			`services[0]::paths[0]: "" is empty`,
		},
		"monorepo entry without paths": {
			"services:\n  - {repository: acme/mono, deployment: api, paths: [\"services/api/**\"]}\n  - {repository: Acme/Mono, deployment: web}\n",
			`services[1]::repository: "Acme/Mono" is mapped twice; a repository with several services (a monorepo) needs paths on each of its entries`,
		},
		"same service twice in a monorepo": {
			"services:\n  - {repository: acme/mono, deployment: web, paths: [w/**]}\n  - {repository: acme/mono, deployment: api, paths: [a/**]}\n  - {repository: acme/mono, deployment: api, paths: [b/**]}\n",
			`services[2]::deployment: "api" is mapped twice for "acme/mono"`,
		},
		"two teams for one service": {
			"services:\n  - {repository: acme/api, namespace: shop, deployment: api, team: payments}\n  - {repository: acme/api-config, namespace: shop, deployment: api, team: checkout}\n",
			`services[1]::team: "checkout", but services[0] gives shop/api the team "payments"`,
		},
		"static key with two slashes": {
			"teams:\n  static:\n    a/b/c: payments\n",
			`teams::static::a/b/c: the key must be <namespace>/<deployment> or <deployment>`,
		},
		"static key without namespace": {
			"teams:\n  static:\n    /api: payments\n",
			`teams::static::/api: the key must be <namespace>/<deployment> or <deployment>`,
		},
		"static empty team": {
			"teams:\n  static:\n    api: \"\"\n",
			`teams::static::api: the team must not be empty`,
		},
		"unknown teams key": {
			"teams:\n  from_owner: true\n",
			`'teams' has invalid keys: from_owner`,
		},
		"bad team key": {
			"kubernetes:\n  team_key: \"not a key!\"\n",
			`kubernetes: team_key: "not a key!" is not a label or annotation key`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := loadYAML(t, head+tt.yaml)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// The team of an event: the services entry's team, else the static map (by
// namespace/deployment, then deployment), else what the source gave (a
// Kubernetes label or annotation), else the repository owner when enabled
// (a fallback the engine never lets replace another team).
func TestDefinition_Team_ResolutionOrder(t *testing.T) {
	cfg, err := loadYAML(t, monorepoYAML)
	require.NoError(t, err)
	m := newServiceMap(cfg.Services, cfg.Teams)
	svc := func(ns, name string) event.Service {
		return event.Service{Namespace: ns, Name: name, Environment: "production"}
	}
	tests := []struct {
		name         string
		ev           event.Event
		team         string
		fallback     bool
		wantServiceN string
	}{
		{"services entry, over the label", event.Event{Service: svc("shop", "api"), Team: "from-label"}, "payments", false, "api"},
		{"an unmapped repository: its owner", event.Event{Repository: "acme/api-unmapped"}, "acme", true, "api-unmapped"},
		{"a mapped repository's service, with the source's team", event.Event{Repository: "acme/web-config", Team: "x"}, "x", false, "web"},
		{"static by namespace/deployment, over the label", event.Event{Service: svc("shop", "cart"), Team: "from-label"}, "checkout", false, "cart"},
		{"static by namespace/deployment needs the namespace", event.Event{Service: svc("other", "cart")}, "", false, "cart"},
		{"static by deployment, any namespace", event.Event{Service: svc("any", "search")}, "discovery", false, "search"},
		{"the source's team (Kubernetes label)", event.Event{Service: svc("shop", "orders"), Team: "from-label"}, "from-label", false, "orders"},
		{"repository owner, a fallback", event.Event{Service: svc("shop", "orders"), Repository: "acme/orders"}, "acme", true, "orders"},
		{"GitLab group path as owner", event.Event{Repository: "acme/platform/billing"}, "acme/platform", true, "billing"},
		{"the label wins over the owner", event.Event{Service: svc("shop", "orders"), Repository: "acme/orders", Team: "from-label"}, "from-label", false, "orders"},
		{"a repository without owner", event.Event{Repository: "orders"}, "", false, "orders"},
		{"nothing known", event.Event{Service: svc("shop", "orders")}, "", false, "orders"},
	}
	for _, tt := range tests {
		ev := tt.ev
		m.resolve(&ev)
		assert.Equal(t, tt.team, ev.Team, tt.name)
		assert.Equal(t, tt.fallback, ev.TeamFallback, tt.name)
		assert.Equal(t, tt.wantServiceN, ev.Service.Name, tt.name)
	}

	cfg.Teams.FromRepositoryOwner = false
	m = newServiceMap(cfg.Services, cfg.Teams)
	ev := event.Event{Repository: "acme/orders"}
	m.resolve(&ev)
	assert.Empty(t, ev.Team, "from_repository_owner: false (the default)")
}

// Events that name only a monorepo's repository cannot tell which of its
// services they are about: they are the repository's own service, as for
// an unmapped repository. A repository with one service maps to it.
func TestDefinition_Monorepo_RepositoryOnlyEvents(t *testing.T) {
	cfg, err := loadYAML(t, monorepoYAML)
	require.NoError(t, err)
	m := newServiceMap(cfg.Services, cfg.Teams)
	ev := event.Event{Repository: "Acme/Mono"}
	m.resolve(&ev)
	assert.Equal(t, event.Service{Name: "Mono"}, ev.Service)
	ev = event.Event{Repository: "acme/web-config"}
	m.resolve(&ev)
	assert.Equal(t, event.Service{Namespace: "shop", Name: "web"}, ev.Service)
}

// Through the receiver: changes of a monorepo with their paths, two
// services deploying the same head; each records the lead times of its own
// commits, under its team.
func TestDefinition_Monorepo_ThroughTheReceiver(t *testing.T) {
	next := &flakyConsumer{}
	base := startWebhookReceiver(t, next, func(cfg *Config) {
		cfg.Services = []ServiceMapping{
			{Repository: "acme/mono", Namespace: "shop", Deployment: "api", Team: "payments", Paths: []string{"services/api/**"}},
			{Repository: "acme/mono", Namespace: "shop", Deployment: "web", Paths: []string{"services/web/**"}},
		}
		cfg.Teams = TeamsConfig{Static: map[string]string{"shop/web": "frontend"}, FromRepositoryOwner: true}
	})
	now := time.Now().UTC().Truncate(time.Second)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	body := fmt.Appendf(nil, `[
		{"type":"deployment","id":"api-0","time":%q,"namespace":"shop","service":"api","environment":"production","status":"success","revision":"m0"},
		{"type":"deployment","id":"web-0","time":%q,"namespace":"shop","service":"web","environment":"production","status":"success","revision":"m0"},
		{"type":"change","id":"m1","time":%q,"repository":"acme/mono","revision":"m1","parent_revision":"m0","paths":["services/api/main.go"]},
		{"type":"change","id":"m2","time":%q,"repository":"acme/mono","revision":"m2","parent_revision":"m1","paths":["services/web/app.ts"]},
		{"type":"change","id":"m3","time":%q,"repository":"acme/mono","revision":"m3","parent_revision":"m2","paths":["services/api/x.go","services/web/y.ts"]},
		{"type":"change","id":"m4","time":%q,"repository":"acme/mono","revision":"m4","parent_revision":"m3","paths":["README.md"]},
		{"type":"deployment","id":"api-1","time":%q,"namespace":"shop","service":"api","environment":"production","status":"success","revision":"m4"},
		{"type":"deployment","id":"web-1","time":%q,"namespace":"shop","service":"web","environment":"production","status":"success","revision":"m4"},
		{"type":"deployment","id":"other-1","time":%q,"repository":"acme/other","environment":"production","status":"success","revision":"o1"}]`,
		ts(-4*time.Hour), ts(-4*time.Hour), ts(-3*time.Hour), ts(-150*time.Minute), ts(-2*time.Hour), ts(-90*time.Minute), ts(-time.Hour), ts(-time.Hour), ts(-time.Hour))
	r := post(t, base+"/events", "application/json", body, true)
	require.Equal(t, http.StatusOK, r.status, r.body)

	md := latest(next)
	// api: m1 and m3; web: m2 and m3; m4 (README.md) belongs to neither.
	assert.EqualValues(t, 2, histogramCount(md, "platform.lead_time", map[string]string{"deployment": "api", "team": "payments"}))
	assert.EqualValues(t, 2, histogramCount(md, "platform.lead_time", map[string]string{"deployment": "web", "team": "frontend"}))
	v, ok := counterValue(md, "platform.deployments", map[string]string{"deployment": "other", "team": "acme"})
	assert.True(t, ok, "a repository's owner as the team")
	assert.EqualValues(t, 1, v)
	_, dropped := counterValue(md, "platform.lead_time.dropped", map[string]string{"deployment": "api"})
	assert.False(t, dropped, "commits of other services are not dropped lead times")
}

// Against a real kube-apiserver: the team label on a Deployment is the team
// attribute of its series; the services mapping overrides it.
func TestTeamLabelAgainstAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries; run through make test")
	}
	cp := localcluster.StartForTest(t, localcluster.Options{})
	c := cluster{t: t, client: cp.Client()}
	c.namespace("teams")
	r := startReceiver(t, cp.Kubeconfig, nil)
	labelled := func(team string) func(*appsv1.Deployment) {
		return func(d *appsv1.Deployment) { d.Labels[k8s.DefaultTeamKey] = team }
	}
	c.create("teams", "api", "registry.local/api:1.0", labelled("payments"))
	c.complete("teams", "api")
	c.create("teams", "web", "registry.local/web:1.0")
	c.complete("teams", "web")
	r.waitValue("platform.deployments", map[string]string{"namespace": "teams", "deployment": "api", "status": "success", "team": "payments"}, 1)
	r.waitValue("platform.deployments", map[string]string{"namespace": "teams", "deployment": "web", "status": "success"}, 1)
	all := r.sink.AllMetrics()
	forEachMetric(all[len(all)-1], "platform.deployments", func(m pmetric.Metric) {
		for i := range m.Sum().DataPoints().Len() {
			attrs := m.Sum().DataPoints().At(i).Attributes().AsRaw()
			if attrs["deployment"] == "web" {
				assert.NotContains(t, attrs, "team", "no label, no team attribute")
			}
		}
	})

	// The team moves with the label, on the same series' values.
	c.update("teams", "api", func(d *appsv1.Deployment) {
		d.Labels[k8s.DefaultTeamKey] = "checkout"
		d.Spec.Template.Spec.Containers[0].Image = "registry.local/api:2.0"
	})
	c.complete("teams", "api")
	r.waitValue("platform.deployments", map[string]string{"namespace": "teams", "deployment": "api", "status": "success", "team": "checkout"}, 2)
}
