package bitbucket

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

const (
	secret = "bitbucket-cloud-secret"
	uuid   = "4c4a7a52-9f8b-4a55-9d55-0c2c0f37d0a1"
)

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func delivered(kind, id string, body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(EventHeader, kind)
	h.Set(DeliveryHeader, id)
	h.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, body))
	return &webhook.Request{Header: h, Body: body, Received: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func signed(kind string, body []byte) *webhook.Request { return delivered(kind, uuid, body) }

func provider(edit ...func(*Config)) *Provider {
	cfg := DefaultConfig()
	cfg.Secret = secret
	cfg.DeploymentStatuses = []string{"mybuildtool"}
	for _, e := range edit {
		e(&cfg)
	}
	return New(cfg)
}

func parse(t *testing.T, p *Provider, req *webhook.Request) webhook.Result {
	t.Helper()
	res, err := p.Parse(req)
	require.NoError(t, err)
	return res
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestConfig(t *testing.T) {
	cfg := DefaultConfig()
	assert.Equal(t, "/webhooks/bitbucket", cfg.Path)
	assert.Equal(t, "production", cfg.DeploymentEnvironment)
	assert.ErrorContains(t, cfg.Validate(), "secret: required")
	cfg.Secret = secret
	assert.NoError(t, cfg.Validate())
	for want, edit := range map[string]func(*Config){
		`path: "x" must start with /`:                func(c *Config) { c.Path = "x" },
		"deployment_statuses[1]: empty pattern":      func(c *Config) { c.DeploymentStatuses = []string{"a", " "} },
		`deployment_statuses[0]: "[" is not a valid`: func(c *Config) { c.DeploymentStatuses = []string{"["} },
		"deployment_environment: must not be empty":  func(c *Config) { c.DeploymentEnvironment = "" },
	} {
		c := DefaultConfig()
		c.Secret = secret
		edit(&c)
		assert.ErrorContains(t, c.Validate(), want)
	}
	c := DefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"secret": "s", "deployment_statuses": []any{"Pipeline #* for main"}, "deployment_environment": "prod",
	}).Unmarshal(&c))
	assert.Equal(t, []string{"Pipeline #* for main"}, c.DeploymentStatuses)
	assert.Equal(t, "prod", c.DeploymentEnvironment)
	assert.Equal(t, DefaultPath, c.Path)
}

func TestVerify(t *testing.T) {
	p := provider()
	body := webhooktest.Fixture(t, "repo-push.json")
	req := signed("repo:push", body)
	req.Header.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256("wrong", body))
	_, err := p.Parse(req)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, webhook.StatusOf(err))

	req.Header.Del(SignatureHeader)
	_, err = p.Parse(req)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, webhook.StatusOf(err))
	assert.Contains(t, err.Error(), "missing X-Hub-Signature")

	req.Header.Set(SignatureHeader, webhook.SignHMACSHA256(secret, body))
	_, err = p.Parse(req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "must start with sha256=")

	req = signed("repo:push", body)
	req.Header.Del(DeliveryHeader)
	_, err = p.Parse(req)
	require.Error(t, err)
	assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
	assert.Contains(t, err.Error(), "X-Request-UUID")
}

// The push Bitbucket Cloud sent for five commits on a branch (newest first,
// each with its parents), captured by the Jenkins Bitbucket plugin.
func TestPush(t *testing.T) {
	res := parse(t, provider(), signed("repo:push", webhooktest.Fixture(t, "repo-push.json")))
	want := []struct{ rev, parent, at string }{
		{"bf4f4ce8a3a8d5c7dbfe7d609973a81a6c6664cf", "8d0fa145bde5151f1d103ab1c3dc1033e6ec4ac1", "2018-09-21T14:07:25Z"},
		{"e43fdffe2def75053da30efa8204d0317a0b932a", "bf4f4ce8a3a8d5c7dbfe7d609973a81a6c6664cf", "2025-01-18T16:10:05Z"},
		{"5e13458e76a69ac3ed03925dc58d519f3bdc275f", "e43fdffe2def75053da30efa8204d0317a0b932a", "2025-02-03T18:26:00Z"},
		{"c1fa9a169b6053b135f400d042a32d3b4952adf9", "5e13458e76a69ac3ed03925dc58d519f3bdc275f", "2025-02-03T18:26:00Z"},
		{"5ecffa3874e96920f24a2b3c0d0038e47d5cd1a4", "c1fa9a169b6053b135f400d042a32d3b4952adf9", "2025-02-03T18:26:00Z"},
	}
	require.Len(t, res.Events, len(want))
	for i, w := range want {
		assert.Equal(t, event.Event{
			Kind: event.ChangeCommitted, Source: event.SourceBitbucket, ID: uuid + "/" + w.rev,
			Time: ts(w.at), Repository: "amuniz/test-repos", Revision: w.rev, ParentRevision: w.parent,
		}, res.Events[i], "commit %d, oldest first", i)
	}
}

// Bitbucket's own merge commit ("Merged in foo (pull request #2)") tells the
// merge with the full hash that pullrequest:fulfilled abbreviates; a tag in
// the same push is not a change.
func TestPushMergeAndTag(t *testing.T) {
	res := parse(t, provider(func(c *Config) { c.HotfixBranches = []string{"foo"} }), signed("repo:push", webhooktest.Fixture(t, "repo-push-multiple.json")))
	var merged []event.Event
	revs := map[string]int{}
	for _, ev := range res.Events {
		revs[ev.Revision]++
		if ev.Kind == event.ChangeMerged {
			merged = append(merged, ev)
		}
	}
	assert.Len(t, res.Events, 7, "6 commits (one listed under two branches once) and one merge")
	assert.Equal(t, 1, revs["fc4d1ce2853b6f1ac0d0dbad643d17ef4a6e0be7"], "a commit listed under two branches is one change")
	assert.Equal(t, []event.Event{{
		Kind: event.ChangeMerged, Source: event.SourceBitbucket, ID: uuid + "/1986c228494671574242f99b62d1a00a4bfb69a5/merged",
		Time: ts("2017-03-06T10:41:57Z"), Repository: "cloudbeers/temp", Revision: "1986c228494671574242f99b62d1a00a4bfb69a5",
		ChangeID: "bitbucket/cloudbeers/temp/pull/2", Hotfix: true,
	}}, merged)
}

func TestPushIgnoredAndMalformed(t *testing.T) {
	p := provider()
	res := parse(t, p, signed("repo:push", webhooktest.Patched(t, "repo-push.json", func(m map[string]any) {
		obj(obj(m, "push")["changes"].([]any)[0].(map[string]any), "new")["type"] = "tag"
	})))
	assert.Equal(t, "push without new commits on a branch", res.Ignored)
	res = parse(t, p, signed("repo:push", webhooktest.Patched(t, "repo-push.json", func(m map[string]any) {
		obj(m, "push")["changes"].([]any)[0].(map[string]any)["new"] = nil
	})))
	assert.Equal(t, "push without new commits on a branch", res.Ignored, "a deleted branch")

	for want, body := range map[string][]byte{
		`missing required field "repository.full_name"`: webhooktest.Patched(t, "repo-push.json", func(m map[string]any) { obj(m, "repository")["full_name"] = "" }),
		`"push.changes[0].commits[1].hash"`: webhooktest.Patched(t, "repo-push.json", func(m map[string]any) {
			obj(m, "push")["changes"].([]any)[0].(map[string]any)["commits"].([]any)[1].(map[string]any)["hash"] = "5ecffa3"
		}),
		// Atlassian's documented example has a commit without a date.
		`missing required field "push.changes[0].commits[0].date"`: webhooktest.Fixture(t, "repo-push-docs.json"),
		`missing required field "push.changes"`:                    []byte(`{"repository":{"full_name":"a/b"}}`),
		`field "push.changes.commits.date": expected string`:       []byte(`{"push":{"changes":[{"commits":[{"date":1}]}]}}`),
		"malformed JSON": []byte(`{"push":`),
	} {
		_, err := p.Parse(signed("repo:push", body))
		require.Error(t, err, want)
		assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
		assert.Contains(t, err.Error(), want)
	}
}

func TestPullRequestFulfilled(t *testing.T) {
	p := provider()
	// Bitbucket abbreviates the merge commit: not counted here (the push is).
	res := parse(t, p, signed("pullrequest:fulfilled", webhooktest.Fixture(t, "pullrequest-fulfilled.json")))
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, `"1986c2284946" is abbreviated`)

	full := "1986c228494671574242f99b62d1a00a4bfb69a5"
	body := webhooktest.Patched(t, "pullrequest-fulfilled.json", func(m map[string]any) {
		pr := obj(m, "pullrequest")
		obj(pr, "merge_commit")["hash"] = full
		pr["title"] = `Revert "feature"`
		pr["description"] = "This reverts commit 0123456789abcdef0123456789abcdef01234567."
	})
	res = parse(t, p, signed("pullrequest:fulfilled", body))
	assert.Equal(t, []event.Event{{
		Kind: event.ChangeMerged, Source: event.SourceBitbucket, ID: uuid, Time: ts("2017-03-06T10:41:59.551194Z"),
		Repository: "cloudbeers/temp", Revision: full, ChangeID: "bitbucket/cloudbeers/temp/pull/2",
		Reverts: "0123456789abcdef0123456789abcdef01234567",
	}}, res.Events)

	res = parse(t, p, signed("pullrequest:fulfilled", webhooktest.Patched(t, "pullrequest-fulfilled.json", func(m map[string]any) {
		obj(m, "pullrequest")["state"] = "DECLINED"
	})))
	assert.Equal(t, `pull request in state "DECLINED", not merged`, res.Ignored)

	_, err := p.Parse(signed("pullrequest:fulfilled", webhooktest.Patched(t, "pullrequest-fulfilled.json", func(m map[string]any) {
		obj(obj(m, "pullrequest"), "merge_commit")["hash"] = "not-a-sha"
	})))
	assert.ErrorContains(t, err, `"pullrequest.merge_commit.hash"`)
}

// Atlassian's documented repo:commit_status_updated example.
func TestCommitStatus(t *testing.T) {
	p := provider()
	rev := "9fec847784abb10b2fa567ee63b85bd238955d0e"
	res := parse(t, p, signed("repo:commit_status_updated", webhooktest.Fixture(t, "commit-status-updated.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.DeploymentSucceeded, Source: event.SourceBitbucket, ID: uuid, Time: ts("2015-11-20T08:01:16.433108Z"),
		Service: event.Service{Environment: "production"}, Repository: "team_name/repo_name",
		DeploymentID: "bitbucket/team_name/repo_name/commit_status/mybuildtool/" + rev, Revision: rev,
	}}, res.Events)

	state := func(s string) []byte {
		return webhooktest.Patched(t, "commit-status-updated.json", func(m map[string]any) { obj(m, "commit_status")["state"] = s })
	}
	res = parse(t, p, signed("repo:commit_status_created", state("INPROGRESS")))
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.DeploymentStarted, res.Events[0].Kind)
	assert.Equal(t, ts("2015-11-19T20:37:35.547563Z"), res.Events[0].Time, "a start is when the status was created")
	res = parse(t, p, signed("repo:commit_status_updated", state("FAILED")))
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.DeploymentFailed, res.Events[0].Kind)
	assert.Equal(t, "failed", res.Events[0].Reason)
	res = parse(t, p, signed("repo:commit_status_updated", state("STOPPED")))
	assert.Equal(t, `commit status state "STOPPED" is not a deployment outcome`, res.Ignored)

	res = parse(t, provider(func(c *Config) { c.DeploymentStatuses = []string{"Pipeline #*"} }), signed("repo:commit_status_updated", webhooktest.Fixture(t, "commit-status-updated.json")))
	assert.Contains(t, res.Ignored, "is not one of deployment_statuses")

	res = parse(t, provider(func(c *Config) { c.DeploymentStatuses = []string{"Unit Tests*"} }), signed("repo:commit_status_updated", webhooktest.Fixture(t, "commit-status-updated.json")))
	assert.Len(t, res.Events, 1, "a status matches by name as well as by key")

	_, err := p.Parse(signed("repo:commit_status_updated", webhooktest.Patched(t, "commit-status-updated.json", func(m map[string]any) {
		obj(obj(obj(m, "commit_status"), "links"), "commit")["href"] = "http://api.bitbucket.org/2.0/repositories/tk/test/commit/9fec84"
	})))
	assert.ErrorContains(t, err, `"commit_status.links.commit.href"`)
}

func TestIgnoredEvents(t *testing.T) {
	res := parse(t, provider(), signed("repo:fork", []byte(`{}`)))
	assert.Equal(t, `Bitbucket event "repo:fork" is not used`, res.Ignored)
}

// A retried delivery (same X-Request-UUID) yields the same event IDs, so the
// engine counts it once.
func TestRedeliverySameIDs(t *testing.T) {
	p := provider()
	a := parse(t, p, signed("repo:push", webhooktest.Fixture(t, "repo-push.json")))
	b := parse(t, p, signed("repo:push", webhooktest.Fixture(t, "repo-push.json")))
	assert.Equal(t, a.Events, b.Events)
}

func TestEventsOwnTheirData(t *testing.T) {
	webhooktest.CheckEventsOwnTheirData(t, provider(),
		signed("repo:push", webhooktest.Fixture(t, "repo-push.json")),
		delivered("repo:push", "other", webhooktest.Fixture(t, "repo-push-multiple.json")),
		signed("repo:commit_status_updated", webhooktest.Fixture(t, "commit-status-updated.json")),
	)
}

func FuzzParse(f *testing.F) {
	for name, kind := range map[string]string{
		"repo-push.json":                  "repo:push",
		"repo-push-multiple.json":         "repo:push",
		"repo-push-docs.json":             "repo:push",
		"pullrequest-fulfilled.json":      "pullrequest:fulfilled",
		"pullrequest-fulfilled-docs.json": "pullrequest:fulfilled",
		"commit-status-updated.json":      "repo:commit_status_updated",
	} {
		f.Add(kind, webhooktest.Fixture(f, name))
	}
	f.Add("repo:push", []byte(`{"push":{"changes":[{"new":{"type":"branch"},"commits":[{"hash":"9fec847784abb10b2fa567ee63b85bd238955d0e","date":"2020-01-01T00:00:00Z","message":"Merged in x (pull request #1)"}]}]},"repository":{"full_name":"a/b"}}`))
	p := provider(func(c *Config) { c.DeploymentStatuses = []string{"*"} })
	f.Fuzz(func(t *testing.T, kind string, body []byte) {
		res, err := p.Parse(delivered(kind, uuid, body))
		if err != nil {
			require.Error(t, err, "every parse error carries an HTTP status")
			require.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
			return
		}
		if len(res.Events) == 0 {
			require.NotEmpty(t, res.Ignored, "an empty result says why")
		}
		for _, ev := range res.Events {
			require.True(t, ev.Kind.Valid())
			require.Equal(t, event.SourceBitbucket, ev.Source)
			require.NotEmpty(t, ev.ID)
			require.False(t, ev.Time.IsZero())
			require.NotEmpty(t, ev.Repository)
			require.True(t, gitpush.IsSHA(ev.Revision) && ev.Revision == strings.ToLower(ev.Revision))
			if ev.Kind != event.ChangeCommitted && ev.Kind != event.ChangeMerged {
				require.NotEmpty(t, ev.DeploymentID)
				require.NotEmpty(t, ev.Service.Environment)
			}
		}
	})
}

// Benchmarks for scripts/bench.sh: parse+verify a Bitbucket Cloud push
// against the floor (read the same bytes, check the HMAC only).
func benchRequest(b *testing.B) (http.Header, []byte) {
	body := webhooktest.Fixture(b, "repo-push.json")
	return signed("repo:push", body).Header, body
}

func BenchmarkBitbucketPushParseVerify(b *testing.B) {
	h, body := benchRequest(b)
	p := provider()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		read, _ := io.ReadAll(bytes.NewReader(body))
		res, err := p.Parse(&webhook.Request{Header: h, Body: read})
		if err != nil || len(res.Events) == 0 {
			b.Fatal(err, res)
		}
	}
}

func BenchmarkBitbucketPushFloor(b *testing.B) {
	h, body := benchRequest(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		read, _ := io.ReadAll(bytes.NewReader(body))
		sig, _ := strings.CutPrefix(h.Get(SignatureHeader), "sha256=")
		if !webhook.ValidHMACSHA256(secret, read, sig) {
			b.Fatal("signature")
		}
	}
}
