package k8s

import (
	"testing"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// The team key is looked up like the environment key: the Deployment's
// annotations, labels, then its pod template's; the transform keeps only
// its value.
func TestTeamKeyLookup(t *testing.T) {
	cfg := DefaultConfig()
	assert.Equal(t, "dora.otelcol.dev/team", cfg.TeamKey, "default")
	base := fakeDeployment("api", "registry.local/api:1.0", 1)
	tests := map[string]struct {
		edit func(d *appsv1.Deployment)
		want string
	}{
		"none":               {func(*appsv1.Deployment) {}, ""},
		"label":              {func(d *appsv1.Deployment) { d.Labels = map[string]string{DefaultTeamKey: "payments"} }, "payments"},
		"annotation":         {func(d *appsv1.Deployment) { d.Annotations = map[string]string{DefaultTeamKey: "payments"} }, "payments"},
		"pod template label": {func(d *appsv1.Deployment) { d.Spec.Template.Labels[DefaultTeamKey] = "checkout" }, "checkout"},
		"annotation before template": {func(d *appsv1.Deployment) {
			d.Annotations = map[string]string{DefaultTeamKey: "payments"}
			d.Spec.Template.Labels[DefaultTeamKey] = "checkout"
		}, "payments"},
		"blank is none":               {func(d *appsv1.Deployment) { d.Labels = map[string]string{DefaultTeamKey: "  "} }, ""},
		"another key is not the team": {func(d *appsv1.Deployment) { d.Labels = map[string]string{"team": "payments"} }, ""},
	}
	for name, tt := range tests {
		c := compact(with(base, tt.edit), &cfg)
		assert.Equal(t, tt.want, c.Team, name)
		assert.Nil(t, c.GetLabels(), "%s: labels are not kept", name)
		assert.Nil(t, c.GetAnnotations(), "%s: annotations are not kept", name)
	}

	// A configured key; an empty one turns the lookup off.
	custom := cfg
	custom.TeamKey = "team"
	assert.Equal(t, "payments", compact(with(base, tests["another key is not the team"].edit), &custom).Team)
	off := cfg
	off.TeamKey = ""
	assert.Empty(t, compact(with(base, tests["label"].edit), &off).Team)

	// The transform (what the informer stores) carries it too.
	obj, err := transformer(&cfg)(with(base, tests["label"].edit))
	assert.NoError(t, err)
	assert.Equal(t, "payments", obj.(*Deployment).Team)
}

// Every event of a rollout carries the Deployment's team; a team changed
// with the next rollout is on that rollout's events.
func TestTrackerEventsCarryTheTeam(t *testing.T) {
	team := func(d *appsv1.Deployment, name string) *appsv1.Deployment {
		return with(d, func(d *appsv1.Deployment) { d.Labels = map[string]string{DefaultTeamKey: name} })
	}
	v1 := team(fakeDeployment("api", "registry.local/api:1.0", 1), "payments")
	v2 := team(fakeDeployment("api", "registry.local/api:2.0", 2), "payments")
	v3 := team(fakeDeployment("api", "registry.local/api:3.0", 3), "checkout")
	evs := runSteps(t, []step{
		{"initial list", v1, true, nil},
		{"v2", v2, false, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}},
		{"v3, moved to another team", v3, false, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}},
	})
	var teams []string
	for _, ev := range evs {
		teams = append(teams, ev.Team)
		assert.False(t, ev.TeamFallback, "a label names the team, it is no guess")
	}
	assert.Equal(t, []string{"payments", "payments", "checkout", "checkout"}, teams)
}

func TestTeamKeyValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TeamKey = "bad key"
	assert.ErrorContains(t, cfg.Validate(), `team_key: "bad key" is not a label or annotation key`)
	cfg.TeamKey = ""
	assert.NoError(t, cfg.Validate(), "empty turns the lookup off")
}
