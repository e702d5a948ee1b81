package azuredevops

import (
	"bytes"
	"encoding/base64"
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

const token = "azure-devops-token"

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// sent is a delivery as a service hook with basic authentication sends it.
func sent(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Authorization", basic("dora", token))
	return &webhook.Request{Header: h, Body: body, Received: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func provider(edit ...func(*Config)) *Provider {
	cfg := DefaultConfig()
	cfg.Token = token
	cfg.Pipelines = []PipelineConfig{{Name: "TEST-CI", Repository: "Fabrikam/api"}}
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
	assert.Equal(t, "/webhooks/azuredevops", cfg.Path)
	assert.ErrorContains(t, cfg.Validate(), "token: required")
	cfg.Token = token
	assert.NoError(t, cfg.Validate())
	for want, edit := range map[string]func(*Config){
		`header: "Authorization" is not a header name`: func(c *Config) { c.Header = "Authorization" },
		`header: "X Token" is not a header name`:       func(c *Config) { c.Header = "X Token" },
		"pipelines[0]::name: must not be empty":        func(c *Config) { c.Pipelines = []PipelineConfig{{}} },
		`pipelines[0]::stages[0]: "[" is not a valid`:  func(c *Config) { c.Pipelines = []PipelineConfig{{Name: "a", Stages: []string{"["}}} },
	} {
		c := DefaultConfig()
		c.Token = token
		edit(&c)
		assert.ErrorContains(t, c.Validate(), want)
	}
	c := DefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"token": "t", "header": "X-Dora-Token",
		"pipelines": []any{map[string]any{"name": "api-cd", "stages": []any{"Deploy*"}, "environment": "production"}},
	}).Unmarshal(&c))
	assert.Equal(t, []PipelineConfig{{Name: "api-cd", Stages: []string{"Deploy*"}, Environment: "production"}}, c.Pipelines)
	assert.Equal(t, "X-Dora-Token", c.Header)
	assert.NoError(t, c.Validate())
}

func TestAuthentication(t *testing.T) {
	body := webhooktest.Fixture(t, "git.push.json")
	p := provider()

	req := sent(body)
	req.Header.Set("Authorization", basic("dora", "wrong"))
	_, err := p.Parse(req)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, webhook.StatusOf(err))

	req.Header.Del("Authorization")
	_, err = p.Parse(req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing basic authentication")

	req.Header.Set("Authorization", "Bearer "+token)
	_, err = p.Parse(req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "must be Basic")

	// A custom header, as "HTTP headers" subscriptions send it.
	hp := provider(func(c *Config) { c.Header = "X-Dora-Token" })
	req = sent(body)
	req.Header.Del("Authorization")
	req.Header.Set("X-Dora-Token", token)
	parse(t, hp, req)
	req.Header.Set("X-Dora-Token", "wrong")
	_, err = hp.Parse(req)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, webhook.StatusOf(err))
	parse(t, hp, sent(body)) // basic authentication still works
}

// Microsoft's documented git.push example: one commit on main.
func TestPush(t *testing.T) {
	res := parse(t, provider(), sent(webhooktest.Fixture(t, "git.push.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.ChangeCommitted, Source: event.SourceAzureDevOps,
		ID:   "03c164c2-8912-4d5e-8009-3707d5f83734/33b55f7cb7e7e245323987634f960cf4a6e6bc74",
		Time: ts("2015-02-25T19:01:00Z"), Repository: "Fabrikam-Fiber-Git/Fabrikam-Fiber-Git",
		Revision: "33b55f7cb7e7e245323987634f960cf4a6e6bc74", ParentRevision: "aad331d8d3b131fa9ae03cf5e53965b51942618a",
	}}, res.Events)
}

// Commits carry no parents: they are linked newest first unless the list
// ends with the branch's new head.
func TestPushOrder(t *testing.T) {
	const older = "1111111111111111111111111111111111111111"
	head := "33b55f7cb7e7e245323987634f960cf4a6e6bc74"
	withOlder := func(first bool) []byte {
		return webhooktest.Patched(t, "git.push.json", func(m map[string]any) {
			r := obj(m, "resource")
			c := r["commits"].([]any)[0].(map[string]any)
			o := map[string]any{"commitId": older, "comment": "older", "committer": map[string]any{"date": "2015-02-25T18:00:00Z"}}
			if first {
				r["commits"] = []any{o, c}
			} else {
				r["commits"] = []any{c, o}
			}
		})
	}
	for name, body := range map[string][]byte{"newest first": withOlder(false), "oldest first": withOlder(true)} {
		res := parse(t, provider(), sent(body))
		require.Len(t, res.Events, 2, name)
		assert.Equal(t, older, res.Events[0].Revision, name)
		assert.Equal(t, "aad331d8d3b131fa9ae03cf5e53965b51942618a", res.Events[0].ParentRevision, name)
		assert.Equal(t, head, res.Events[1].Revision, name)
		assert.Equal(t, older, res.Events[1].ParentRevision, name)
	}
}

func TestPushIgnoredAndMalformed(t *testing.T) {
	p := provider()
	res := parse(t, p, sent(webhooktest.Patched(t, "git.push.json", func(m map[string]any) {
		obj(m, "resource")["refUpdates"].([]any)[0].(map[string]any)["name"] = "refs/tags/v1"
	})))
	assert.Equal(t, "push without a branch created or updated (tags or deletions only)", res.Ignored)

	for want, body := range map[string][]byte{
		`missing required field "resource.repository.name"`: webhooktest.Patched(t, "git.push.json", func(m map[string]any) { obj(obj(m, "resource"), "repository")["name"] = "" }),
		`"resource.commits[0].commitId"`: webhooktest.Patched(t, "git.push.json", func(m map[string]any) {
			obj(m, "resource")["commits"].([]any)[0].(map[string]any)["commitId"] = "33b55f7"
		}),
		`missing required field "resource.commits[0].committer.date"`: webhooktest.Patched(t, "git.push.json", func(m map[string]any) {
			delete(obj(m, "resource")["commits"].([]any)[0].(map[string]any), "committer")
		}),
		`missing required field "eventType"`: []byte(`{"id":"x"}`),
		`missing required field "id"`:        []byte(`{"eventType":"git.push"}`),
		"malformed JSON":                     []byte(`{"eventType":`),
	} {
		_, err := p.Parse(sent(body))
		require.Error(t, err, want)
		assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
		assert.Contains(t, err.Error(), want)
	}
}

// Microsoft's documented git.pullrequest.merged example.
func TestPullRequestMerged(t *testing.T) {
	res := parse(t, provider(func(c *Config) { c.HotfixBranches = []string{"mytopic"} }), sent(webhooktest.Fixture(t, "git.pullrequest.merged.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.ChangeMerged, Source: event.SourceAzureDevOps, ID: "6872ee8c-b333-4eff-bfb9-0d5274943566",
		Time: ts("2014-06-30T18:59:12.3660573Z"), Repository: "Fabrikam/Fabrikam",
		Revision: "eef717f69257a6333f221566c1c987dc94cc0d72", ChangeID: "azure_devops/Fabrikam/Fabrikam/pullrequest/1", Hotfix: true,
	}}, res.Events)

	res = parse(t, provider(), sent(webhooktest.Patched(t, "git.pullrequest.merged.json", func(m map[string]any) { obj(m, "resource")["status"] = "active" })))
	assert.Equal(t, `pull request "active", not completed`, res.Ignored)
}

// Microsoft's documented run-state-changed example: a run of TEST-CI.
func TestRunStateChanged(t *testing.T) {
	res := parse(t, provider(), sent(webhooktest.Fixture(t, "run-state-changed.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.DeploymentSucceeded, Source: event.SourceAzureDevOps, ID: "62e4351f-1c24-40f9-8510-7af03692ab45",
		Time: ts("2019-12-13T04:46:13.613Z"), Service: event.Service{Environment: "production"}, ServiceHint: "TEST-CI",
		Repository: "Fabrikam/api", DeploymentID: "azure_devops/be9b3917-87e6-42a4-a549-2bc06a7a878f/run/11",
	}}, res.Events)

	sha := "eef717f69257a6333f221566c1c987dc94cc0d72"
	res = parse(t, provider(), sent(webhooktest.Patched(t, "run-state-changed.json", func(m map[string]any) {
		run := obj(obj(m, "resource"), "run")
		run["result"] = "failed"
		run["resources"] = map[string]any{"repositories": map[string]any{"self": map[string]any{"refName": "refs/heads/main", "version": sha}}}
	})))
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.DeploymentFailed, res.Events[0].Kind)
	assert.Equal(t, "failed", res.Events[0].Reason)
	assert.Equal(t, sha, res.Events[0].Revision, "the run's commit, where the payload gives it")

	res = parse(t, provider(), sent(webhooktest.Patched(t, "run-state-changed.json", func(m map[string]any) {
		obj(obj(m, "resource"), "run")["result"] = "canceled"
	})))
	assert.Contains(t, res.Ignored, `result "canceled" is not a deployment's start or outcome`)

	res = parse(t, provider(func(c *Config) { c.Pipelines = nil }), sent(webhooktest.Fixture(t, "run-state-changed.json")))
	assert.Equal(t, `runs of pipeline "TEST-CI" are not deployments (pipelines)`, res.Ignored)
}

// Microsoft's documented stage-state-changed example: stage __default.
func TestStageStateChanged(t *testing.T) {
	stages := func(c *Config) { c.Pipelines = []PipelineConfig{{Name: "TEST-*", Stages: []string{"__default"}}} }
	res := parse(t, provider(stages), sent(webhooktest.Fixture(t, "stage-state-changed.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.DeploymentSucceeded, Source: event.SourceAzureDevOps, ID: "ac1dd6da-af30-43cb-8434-e1005864b0a3",
		Time: ts("2019-12-13T06:10:10.186Z"), Service: event.Service{Environment: "__default"}, ServiceHint: "TEST-CI",
		DeploymentID: "azure_devops/be9b3917-87e6-42a4-a549-2bc06a7a878f/run/2/stage/__default",
	}}, res.Events)

	res = parse(t, provider(), sent(webhooktest.Fixture(t, "stage-state-changed.json")))
	assert.Contains(t, res.Ignored, "is not a deployment")
	res = parse(t, provider(stages), sent(webhooktest.Patched(t, "stage-state-changed.json", func(m map[string]any) {
		st := obj(obj(m, "resource"), "stage")
		st["state"], st["result"] = "running", nil
	})))
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.DeploymentStarted, res.Events[0].Kind)
}

// Microsoft's documented release deployment-completed example.
func TestReleaseDeploymentCompleted(t *testing.T) {
	res := parse(t, provider(), sent(webhooktest.Fixture(t, "release-deployment-completed.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.DeploymentSucceeded, Source: event.SourceAzureDevOps, ID: "c3e52c57-187a-45c4-abe2-184a48291bad",
		Time: ts("2016-09-19T13:03:28.5345098Z"), Service: event.Service{Environment: "Dev"}, ServiceHint: "Fabrikam",
		DeploymentID: "azure_devops/Fabrikam/release/1/environment/5",
	}}, res.Events)

	res = parse(t, provider(), sent(webhooktest.Patched(t, "release-deployment-completed.json", func(m map[string]any) {
		obj(obj(m, "resource"), "environment")["status"] = "rejected"
	})))
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.DeploymentFailed, res.Events[0].Kind)
	assert.Equal(t, "rejected", res.Events[0].Reason)

	res = parse(t, provider(), sent(webhooktest.Patched(t, "release-deployment-completed.json", func(m map[string]any) {
		obj(obj(m, "resource"), "environment")["status"] = "canceled"
	})))
	assert.Equal(t, `release deployment status "canceled" is not an outcome`, res.Ignored)

	_, err := provider().Parse(sent(webhooktest.Patched(t, "release-deployment-completed.json", func(m map[string]any) {
		obj(obj(m, "resource"), "environment")["name"] = ""
	})))
	assert.ErrorContains(t, err, `missing required field "resource.environment.name"`)
}

func TestIgnoredEvents(t *testing.T) {
	res := parse(t, provider(), sent([]byte(`{"id":"1","eventType":"workitem.updated","resource":{}}`)))
	assert.Equal(t, `Azure DevOps event "workitem.updated" is not used`, res.Ignored)
}

// A retried notification keeps its id: the same event IDs.
func TestRedeliverySameIDs(t *testing.T) {
	p := provider()
	a := parse(t, p, sent(webhooktest.Fixture(t, "git.push.json")))
	b := parse(t, p, sent(webhooktest.Fixture(t, "git.push.json")))
	assert.Equal(t, a.Events, b.Events)
}

func TestEventsOwnTheirData(t *testing.T) {
	webhooktest.CheckEventsOwnTheirData(t, provider(),
		sent(webhooktest.Fixture(t, "git.push.json")),
		sent(webhooktest.Fixture(t, "git.pullrequest.merged.json")),
		sent(webhooktest.Fixture(t, "run-state-changed.json")),
		sent(webhooktest.Fixture(t, "release-deployment-completed.json")),
	)
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"git.push.json", "git.pullrequest.merged.json", "run-state-changed.json", "stage-state-changed.json", "release-deployment-completed.json"} {
		f.Add(webhooktest.Fixture(f, name))
	}
	p := provider(func(c *Config) { c.Pipelines = []PipelineConfig{{Name: "*", Stages: []string{"*"}}, {Name: "TEST-CI"}} })
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := p.Parse(sent(body))
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
			require.Equal(t, event.SourceAzureDevOps, ev.Source)
			require.NotEmpty(t, ev.ID)
			require.False(t, ev.Time.IsZero())
			require.True(t, ev.Revision == "" || gitpush.IsSHA(ev.Revision) && ev.Revision == strings.ToLower(ev.Revision))
			switch ev.Kind {
			case event.ChangeCommitted, event.ChangeMerged:
				require.NotEmpty(t, ev.Revision)
				require.NotEmpty(t, ev.Repository)
			default:
				require.NotEmpty(t, ev.DeploymentID)
				require.NotEmpty(t, ev.Service.Environment)
				require.NotEmpty(t, ev.ServiceHint)
			}
		}
	})
}

// Benchmarks for scripts/bench.sh: parse+authenticate a push against the
// floor of the other sources (read the same bytes, check an HMAC).
func BenchmarkAzureDevOpsPushParseVerify(b *testing.B) {
	body := webhooktest.Fixture(b, "git.push.json")
	h := sent(body).Header
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

func BenchmarkAzureDevOpsPushFloor(b *testing.B) {
	body := webhooktest.Fixture(b, "git.push.json")
	sig := webhook.SignHMACSHA256(token, body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		read, _ := io.ReadAll(bytes.NewReader(body))
		if !webhook.ValidHMACSHA256(token, read, sig) {
			b.Fatal("signature")
		}
	}
}
