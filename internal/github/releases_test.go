package github

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

// A pushed tag matching a trigger-tag entry is a deployment of its
// tagged commit (head_commit), at the push.
func TestTagPushIsADeployment(t *testing.T) {
	p := provider(releases(gitpush.ReleaseDeployment{Repository: "acme/*", Trigger: "tag", Tags: "v*"}))
	res := parse(t, p, delivered("push", "tag-1", fixture(t, "push_tag.json")))
	assert.Equal(t, []event.Event{{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitHub,
		ID:           "tag-1/tag",
		Time:         time.Unix(1793612400, 0).UTC(),
		Service:      event.Service{Environment: "production"},
		Repository:   repoName,
		DeploymentID: "github/acme/api/tag/v1.4.0",
		Revision:     "a625406f6977d45c1391b078f4d3656e0b75bfcb",
	}}, res.Events)

	// A redelivery keeps X-GitHub-Delivery: the same id, counted once.
	again := parse(t, p, delivered("push", "tag-1", fixture(t, "push_tag.json")))
	assert.Equal(t, res.Events, again.Events)

	for name, p := range map[string]*Provider{
		"no entry":          provider(),
		"other tag pattern": provider(releases(gitpush.ReleaseDeployment{Repository: "acme/api", Trigger: "tag", Tags: "release-*"})),
		"other repository":  provider(releases(gitpush.ReleaseDeployment{Repository: "acme/web", Trigger: "tag"})),
		"trigger release":   provider(releases(gitpush.ReleaseDeployment{Repository: "acme/api"})),
	} {
		res := parse(t, p, delivered("push", "tag-1", fixture(t, "push_tag.json")))
		assert.Empty(t, res.Events, name)
		assert.Contains(t, res.Ignored, "push of a tag", name)
	}

	deleted := patched(t, "push_tag.json", func(m map[string]any) { m["deleted"] = true; m["head_commit"] = nil })
	res = parse(t, p, delivered("push", "tag-2", deleted))
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "deleted")
}

// GitHub's published-release example names a branch (target_commitish
// master), not the commit: the commit comes from the tag's push, when it
// was seen; else the release is a deployment without a revision.
func TestReleasePublished(t *testing.T) {
	const repo = "Codertocat/Hello-World"
	p := provider(releases(gitpush.ReleaseDeployment{Repository: repo, Environment: "prod"}))
	want := event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitHub,
		ID:           "rel-1/release",
		Time:         ts("2019-05-15T15:20:53Z"),
		Service:      event.Service{Environment: "prod"},
		Repository:   repo,
		DeploymentID: "github/" + repo + "/release/0.0.1",
	}
	res := parse(t, p, delivered("release", "rel-1", fixture(t, "release_published.json")))
	assert.Equal(t, []event.Event{want}, res.Events, "no tag push seen: no revision")

	// The tag's push (ignored as a deployment) tells its commit.
	tagPush := patched(t, "push_tag.json", func(m map[string]any) {
		m["ref"] = "refs/tags/0.0.1"
		obj(m, "repository")["full_name"] = repo
	})
	res = parse(t, p, delivered("push", "tag-0.0.1", tagPush))
	assert.Empty(t, res.Events)
	res = parse(t, p, delivered("release", "rel-1", fixture(t, "release_published.json")))
	want.Revision = "a625406f6977d45c1391b078f4d3656e0b75bfcb"
	assert.Equal(t, []event.Event{want}, res.Events)

	// A commit SHA as target_commitish is the revision itself.
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"
	bySHA := patched(t, "release_published.json", func(m map[string]any) { obj(m, "release")["target_commitish"] = sha })
	res = parse(t, provider(releases(gitpush.ReleaseDeployment{Repository: "codertocat/*"})), delivered("release", "rel-2", bySHA))
	require.Len(t, res.Events, 1)
	assert.Equal(t, sha, res.Events[0].Revision)
	assert.Equal(t, "production", res.Events[0].Service.Environment)
}

func TestReleaseIgnored(t *testing.T) {
	p := provider(releases(gitpush.ReleaseDeployment{Repository: "Codertocat/Hello-World", Tags: "0.*"}))
	for name, body := range map[string][]byte{
		"created":     patched(t, "release_published.json", func(m map[string]any) { m["action"] = "created" }),
		"draft":       patched(t, "release_published.json", func(m map[string]any) { obj(m, "release")["draft"] = true }),
		"pre-release": patched(t, "release_published.json", func(m map[string]any) { obj(m, "release")["prerelease"] = true }),
		"other tag":   patched(t, "release_published.json", func(m map[string]any) { obj(m, "release")["tag_name"] = "1.0.0" }),
	} {
		res := parse(t, p, delivered("release", "r", body))
		assert.Empty(t, res.Events, name)
		assert.NotEmpty(t, res.Ignored, name)
	}
	res := parse(t, provider(releases(gitpush.ReleaseDeployment{Repository: "acme/*"})), delivered("release", "r", fixture(t, "release_published.json")))
	assert.Contains(t, res.Ignored, "not deployments (see release_deployments)")

	// prereleases: true counts them.
	pre := patched(t, "release_published.json", func(m map[string]any) { obj(m, "release")["prerelease"] = true })
	res = parse(t, provider(releases(gitpush.ReleaseDeployment{Repository: "Codertocat/Hello-World", Prereleases: true})), delivered("release", "r", pre))
	assert.Len(t, res.Events, 1)
}

func TestReleaseMalformed(t *testing.T) {
	p := provider(releases(gitpush.ReleaseDeployment{Repository: "*/*"}, gitpush.ReleaseDeployment{Repository: "*/*", Trigger: "tag"}))
	for name, c := range map[string]struct {
		kind  string
		body  []byte
		field string
	}{
		"no tag":          {"release", patched(t, "release_published.json", func(m map[string]any) { delete(obj(m, "release"), "tag_name") }), "release.tag_name"},
		"bad time":        {"release", patched(t, "release_published.json", func(m map[string]any) { obj(m, "release")["published_at"] = "soon" }), "release.published_at"},
		"bad head commit": {"push", patched(t, "push_tag.json", func(m map[string]any) { obj(m, "head_commit")["id"] = "v1" }), "head_commit.id"},
		"bad pushed_at":   {"push", patched(t, "push_tag.json", func(m map[string]any) { obj(m, "repository")["pushed_at"] = true }), "repository.pushed_at"},
	} {
		_, err := p.Parse(delivered(c.kind, "m", c.body))
		require.Error(t, err, name)
		assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err), name)
		assert.Contains(t, err.Error(), c.field, name)
	}
}

func TestReleaseConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Secret = secret
	cfg.ReleaseDeployments = []gitpush.ReleaseDeployment{{Repository: ""}, {Repository: "a/b", Trigger: "deploy"}, {Repository: "a/[", Tags: "["}}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"release_deployments[0].repository: must not be empty",
		`release_deployments[1].trigger: "deploy" must be release or tag`,
		"release_deployments[2].repository",
		"release_deployments[2].tags",
	} {
		assert.ErrorContains(t, err, want)
	}
}
