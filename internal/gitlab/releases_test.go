package gitlab

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

func releases(rs ...gitpush.ReleaseDeployment) func(*Config) {
	return func(c *Config) { c.ReleaseDeployments = rs }
}

// GitLab's Release Hook example: the release's commit is the revision, its
// creation the deployment's time; a resend has the same id.
func TestReleaseHook(t *testing.T) {
	p := provider(releases(gitpush.ReleaseDeployment{Repository: "gitlab-org/*", Tags: "v*"}))
	res := parse(t, p, hooked("Release Hook", fixture(t, "release.json")))
	want := []event.Event{{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitLab,
		ID:           "gitlab/gitlab-org/release-webhook-example/release/v1.1",
		Time:         time.Date(2020, 11, 2, 12, 55, 12, 0, time.UTC),
		Service:      event.Service{Environment: "production"},
		Repository:   "gitlab-org/release-webhook-example",
		DeploymentID: "gitlab/gitlab-org/release-webhook-example/release/v1.1",
		Revision:     "ee0a3fb31ac16e11b9dbb596ad16d4af654d08f8",
	}}
	assert.Equal(t, want, res.Events)
	again := parse(t, p, hooked("Release Hook", fixture(t, "release.json")))
	assert.Equal(t, want, again.Events, "a resend counts once")

	for name, body := range map[string][]byte{
		"update":    patched(t, "release.json", func(m map[string]any) { m["action"] = "update" }),
		"other tag": patched(t, "release.json", func(m map[string]any) { m["tag"] = "nightly-1" }),
	} {
		res := parse(t, p, hooked("Release Hook", body))
		assert.Empty(t, res.Events, name)
		assert.NotEmpty(t, res.Ignored, name)
	}
	res = parse(t, provider(releases(gitpush.ReleaseDeployment{Repository: "acme/*"})), hooked("Release Hook", fixture(t, "release.json")))
	assert.Contains(t, res.Ignored, "not deployments (see release_deployments)")
}

// GitLab's Tag Push Hook example: a deployment of checkout_sha when a
// trigger-tag entry matches, at its arrival (the hook carries no time).
func TestTagPushHook(t *testing.T) {
	p := provider(releases(gitpush.ReleaseDeployment{Repository: "jsmith/example", Trigger: "tag", Tags: "v*", Environment: "prod"}))
	res := parse(t, p, hooked("Tag Push Hook", fixture(t, "tag_push.json")))
	assert.Equal(t, []event.Event{{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitLab,
		ID:           "gitlab/jsmith/example/tag/v1.0.0/82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
		Time:         received,
		Service:      event.Service{Environment: "prod"},
		Repository:   "jsmith/example",
		DeploymentID: "gitlab/jsmith/example/tag/v1.0.0",
		Revision:     "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
	}}, res.Events)

	deleted := patched(t, "tag_push.json", func(m map[string]any) { m["checkout_sha"] = nil })
	res = parse(t, p, hooked("Tag Push Hook", deleted))
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "deleted")

	res = parse(t, provider(releases(gitpush.ReleaseDeployment{Repository: "jsmith/example"})), hooked("Tag Push Hook", fixture(t, "tag_push.json")))
	assert.Equal(t, webhook.Result{Ignored: "tag push"}, res, "trigger release: the tag push is not the deployment")
}

func TestReleaseHookMalformed(t *testing.T) {
	p := provider(releases(gitpush.ReleaseDeployment{Repository: "*/*"}, gitpush.ReleaseDeployment{Repository: "*/*", Trigger: "tag"}))
	for name, c := range map[string]struct {
		hook, field string
		body        []byte
	}{
		"no commit":    {"Release Hook", "commit.id", patched(t, "release.json", func(m map[string]any) { delete(m, "commit") })},
		"bad time":     {"Release Hook", "created_at", patched(t, "release.json", func(m map[string]any) { m["created_at"] = "yesterday" })},
		"no tag":       {"Release Hook", "tag", patched(t, "release.json", func(m map[string]any) { delete(m, "tag") })},
		"bad checkout": {"Tag Push Hook", "checkout_sha", patched(t, "tag_push.json", func(m map[string]any) { m["checkout_sha"] = "v1" })},
	} {
		_, err := p.Parse(hooked(c.hook, c.body))
		require.Error(t, err, name)
		assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err), name)
		assert.Contains(t, err.Error(), c.field, name)
	}
}
