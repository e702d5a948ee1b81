package github

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const (
	secret   = "It's a Secret to Everybody"
	guid     = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	repoName = "acme/api"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// patched returns the fixture with edit applied to its decoded JSON.
func patched(t testing.TB, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(fixture(t, name), &m))
	edit(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func delivered(kind, delivery string, body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(EventHeader, kind)
	h.Set(DeliveryHeader, delivery)
	h.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, body))
	return &webhook.Request{Header: h, Body: body, Received: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func signed(kind string, body []byte) *webhook.Request { return delivered(kind, guid, body) }

func provider(edit ...func(*Config)) *Provider {
	cfg := DefaultConfig()
	cfg.Secret = secret
	cfg.DeploymentWorkflows = []string{"deploy.yml"}
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
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestConfig(t *testing.T) {
	cfg := DefaultConfig()
	assert.Equal(t, "/webhooks/github", cfg.Path)
	assert.Equal(t, "production", cfg.WorkflowEnvironment)
	assert.Equal(t, "incident", cfg.IncidentLabel)
	assert.Empty(t, cfg.DeploymentWorkflows)
	assert.ErrorContains(t, cfg.Validate(), "secret: required")

	cfg.InsecureSkipVerify = true
	assert.NoError(t, cfg.Validate())
	cfg.InsecureSkipVerify = false
	cfg.Secret = secret
	assert.NoError(t, cfg.Validate())

	tests := map[string]func(*Config){
		`path: "webhooks" must start with /`:      func(c *Config) { c.Path = "webhooks" },
		"deployment_workflows[1]: empty workflow": func(c *Config) { c.DeploymentWorkflows = []string{"deploy.yml", " "} },
		"workflow_environment: must not be empty": func(c *Config) { c.WorkflowEnvironment = "" },
		"incident_label: must not be empty":       func(c *Config) { c.IncidentLabel = "" },
	}
	for want, edit := range tests {
		t.Run(want, func(t *testing.T) {
			c := DefaultConfig()
			c.Secret = secret
			edit(&c)
			assert.ErrorContains(t, c.Validate(), want)
		})
	}
}

func TestConfigUnmarshal(t *testing.T) {
	cfg := DefaultConfig()
	err := confmap.NewFromStringMap(map[string]any{
		"secret":               "s3cr3t",
		"deployment_workflows": []any{"deploy.yml", "Release"},
		"incident_label":       "sev1",
	}).Unmarshal(&cfg)
	require.NoError(t, err)
	assert.Equal(t, "s3cr3t", string(cfg.Secret))
	assert.False(t, cfg.InsecureSkipVerify)
	assert.Equal(t, []string{"deploy.yml", "Release"}, cfg.DeploymentWorkflows)
	assert.Equal(t, "sev1", cfg.IncidentLabel)
	assert.Equal(t, DefaultPath, cfg.Path, "unset keys keep their defaults")
	assert.Equal(t, "production", cfg.WorkflowEnvironment)
	assert.NoError(t, cfg.Validate())
}

func TestPush(t *testing.T) {
	res := parse(t, provider(), signed("push", fixture(t, "push.json")))
	assert.Equal(t, []event.Event{
		{
			Kind: event.ChangeCommitted, Source: event.SourceGitHub, ID: guid + "/2f22765d04931a078909145ca628d2264c852d7d",
			Time: ts("2026-11-02T09:12:44+01:00"), Repository: repoName,
			Revision: "2f22765d04931a078909145ca628d2264c852d7d", ParentRevision: "51de2b835bd35a67eb32dbcd3d77d4b96e5aa39d",
			Paths: []string{"internal/export/orders.go", "cmd/api/routes.go"},
		},
		{
			Kind: event.ChangeCommitted, Source: event.SourceGitHub, ID: guid + "/6b1f53303a732ccc8c6aae6640399827c15250e3",
			Time: ts("2026-11-02T09:40:03+01:00"), Repository: repoName,
			Revision: "6b1f53303a732ccc8c6aae6640399827c15250e3", ParentRevision: "2f22765d04931a078909145ca628d2264c852d7d",
			Paths: []string{"internal/export/orders_test.go"},
		},
		{
			Kind: event.ChangeCommitted, Source: event.SourceGitHub, ID: guid + "/a625406f6977d45c1391b078f4d3656e0b75bfcb",
			Time: ts("2026-11-02T08:55:31Z"), Repository: repoName,
			Revision: "a625406f6977d45c1391b078f4d3656e0b75bfcb", ParentRevision: "6b1f53303a732ccc8c6aae6640399827c15250e3",
			Paths: []string{"docs/api.md"},
		},
	}, res.Events)
}

func TestPushNewBranchAndCase(t *testing.T) {
	body := patched(t, "push.json", func(m map[string]any) {
		m["created"] = true
		m["before"] = "0000000000000000000000000000000000000000"
		c := m["commits"].([]any)[0].(map[string]any)
		c["id"] = strings.ToUpper(c["id"].(string))
	})
	res := parse(t, provider(), signed("push", body))
	require.Len(t, res.Events, 3)
	assert.Empty(t, res.Events[0].ParentRevision, "a new branch has no parent in the push")
	assert.Equal(t, "2f22765d04931a078909145ca628d2264c852d7d", res.Events[0].Revision, "SHAs are lower-cased")
	assert.Equal(t, "2f22765d04931a078909145ca628d2264c852d7d", res.Events[1].ParentRevision)
}

func TestPushIgnored(t *testing.T) {
	tests := map[string]func(m map[string]any){
		"push of a tag (refs/tags/v1.4.0)": func(m map[string]any) { m["ref"] = "refs/tags/v1.4.0" },
		"branch refs/heads/main deleted": func(m map[string]any) {
			m["deleted"] = true
			m["after"] = "0000000000000000000000000000000000000000"
			m["commits"] = []any{}
			m["head_commit"] = nil
		},
		"push without new commits":                          func(m map[string]any) { m["commits"] = []any{} },
		"push to refs/notes/commits, which is not a branch": func(m map[string]any) { m["ref"] = "refs/notes/commits" },
	}
	for want, edit := range tests {
		t.Run(want, func(t *testing.T) {
			res := parse(t, provider(), signed("push", patched(t, "push.json", edit)))
			assert.Empty(t, res.Events)
			assert.Equal(t, want, res.Ignored)
		})
	}
}

func TestPullRequestMerged(t *testing.T) {
	res := parse(t, provider(), signed("pull_request", fixture(t, "pull_request_merged.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.ChangeMerged, Source: event.SourceGitHub, ID: guid,
		Time: ts("2026-11-02T09:03:16Z"), Repository: repoName,
		Revision: "14091a9f2461267ee7e02525b4f1f2923f1c9849", ChangeID: "github/acme/api/pull/1287",
	}}, res.Events)

	t.Run("closed without merging", func(t *testing.T) {
		body := patched(t, "pull_request_merged.json", func(m map[string]any) {
			pr := obj(m, "pull_request")
			pr["merged"], pr["merged_at"], pr["merge_commit_sha"] = false, nil, nil
		})
		res := parse(t, provider(), signed("pull_request", body))
		assert.Empty(t, res.Events)
		assert.Equal(t, "pull request closed without merging", res.Ignored)
	})
	t.Run("opened", func(t *testing.T) {
		body := patched(t, "pull_request_merged.json", func(m map[string]any) { m["action"] = "opened" })
		res := parse(t, provider(), signed("pull_request", body))
		assert.Empty(t, res.Events)
		assert.Equal(t, `pull_request action "opened"`, res.Ignored)
	})
}

func TestDeployment(t *testing.T) {
	res := parse(t, provider(), signed("deployment", fixture(t, "deployment.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.DeploymentStarted, Source: event.SourceGitHub, ID: guid,
		Time:       ts("2026-11-02T09:10:02Z"),
		Service:    event.Service{Environment: "production"},
		Repository: repoName, DeploymentID: "github/acme/api/deployment/1874460921",
		Revision: "14091a9f2461267ee7e02525b4f1f2923f1c9849",
	}}, res.Events)
}

func TestDeploymentStatus(t *testing.T) {
	res := parse(t, provider(), signed("deployment_status", fixture(t, "deployment_status.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.DeploymentSucceeded, Source: event.SourceGitHub, ID: guid,
		Time:       ts("2026-11-02T09:14:47Z"),
		Service:    event.Service{Environment: "production"},
		Repository: repoName, DeploymentID: "github/acme/api/deployment/1874460921",
		Revision: "14091a9f2461267ee7e02525b4f1f2923f1c9849",
	}}, res.Events)

	tests := []struct {
		state   string
		kind    event.Kind
		reason  string
		ignored string
	}{
		{state: "failure", kind: event.DeploymentFailed, reason: "failure"},
		{state: "error", kind: event.DeploymentFailed, reason: "error"},
		{state: "in_progress", kind: event.DeploymentStarted},
		{state: "queued", ignored: `deployment status "queued" is not an outcome`},
		{state: "pending", ignored: `deployment status "pending" is not an outcome`},
		{state: "inactive", ignored: `deployment status "inactive" is not an outcome`},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			body := patched(t, "deployment_status.json", func(m map[string]any) { obj(m, "deployment_status")["state"] = tt.state })
			res := parse(t, provider(), signed("deployment_status", body))
			if tt.ignored != "" {
				assert.Empty(t, res.Events)
				assert.Equal(t, tt.ignored, res.Ignored)
				return
			}
			require.Len(t, res.Events, 1)
			assert.Equal(t, tt.kind, res.Events[0].Kind)
			assert.Equal(t, tt.reason, res.Events[0].Reason)
			assert.Equal(t, "github/acme/api/deployment/1874460921", res.Events[0].DeploymentID)
		})
	}

	t.Run("environment falls back to the deployment's", func(t *testing.T) {
		body := patched(t, "deployment_status.json", func(m map[string]any) {
			delete(obj(m, "deployment_status"), "environment")
			obj(m, "deployment")["environment"] = "staging"
		})
		res := parse(t, provider(), signed("deployment_status", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, "staging", res.Events[0].Service.Environment)
	})
}

func TestWorkflowRun(t *testing.T) {
	res := parse(t, provider(), signed("workflow_run", fixture(t, "workflow_run_completed.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.DeploymentSucceeded, Source: event.SourceGitHub, ID: guid,
		Time:       ts("2026-11-02T09:15:12Z"),
		Service:    event.Service{Environment: "production"},
		Repository: repoName, DeploymentID: "github/acme/api/workflow_run/11845023871/2",
		Revision: "a625406f6977d45c1391b078f4d3656e0b75bfcb",
	}}, res.Events)

	for _, c := range []string{"failure", "timed_out"} {
		t.Run(c, func(t *testing.T) {
			body := patched(t, "workflow_run_completed.json", func(m map[string]any) { obj(m, "workflow_run")["conclusion"] = c })
			res := parse(t, provider(), signed("workflow_run", body))
			require.Len(t, res.Events, 1)
			assert.Equal(t, event.DeploymentFailed, res.Events[0].Kind)
			assert.Equal(t, c, res.Events[0].Reason)
		})
	}
	for _, c := range []string{"cancelled", "skipped", "neutral", "action_required", "stale", "startup_failure"} {
		t.Run(c, func(t *testing.T) {
			body := patched(t, "workflow_run_completed.json", func(m map[string]any) { obj(m, "workflow_run")["conclusion"] = c })
			res := parse(t, provider(), signed("workflow_run", body))
			assert.Empty(t, res.Events)
			assert.Contains(t, res.Ignored, "not a deployment outcome")
		})
	}
	t.Run("matched by name, path or file name", func(t *testing.T) {
		for _, w := range []string{"Deploy", ".github/workflows/deploy.yml", "deploy.yml"} {
			p := provider(func(c *Config) { c.DeploymentWorkflows = []string{"ci.yml", w} })
			res := parse(t, p, signed("workflow_run", fixture(t, "workflow_run_completed.json")))
			assert.Len(t, res.Events, 1, w)
		}
	})
	t.Run("run name empty: workflow name used", func(t *testing.T) {
		body := patched(t, "workflow_run_completed.json", func(m map[string]any) {
			run := obj(m, "workflow_run")
			run["name"], run["path"] = "", ""
		})
		p := provider(func(c *Config) { c.DeploymentWorkflows = []string{"Deploy"}; c.WorkflowEnvironment = "prod" })
		res := parse(t, p, signed("workflow_run", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, "prod", res.Events[0].Service.Environment)
	})
	t.Run("not a deployment workflow", func(t *testing.T) {
		p := provider(func(c *Config) { c.DeploymentWorkflows = []string{"release.yml"} })
		res := parse(t, p, signed("workflow_run", fixture(t, "workflow_run_completed.json")))
		assert.Empty(t, res.Events)
		assert.Equal(t, `workflow "Deploy" (.github/workflows/deploy.yml) is not one of deployment_workflows`, res.Ignored)

		res = parse(t, provider(func(c *Config) { c.DeploymentWorkflows = nil }), signed("workflow_run", fixture(t, "workflow_run_completed.json")))
		assert.Empty(t, res.Events)
	})
	t.Run("not completed", func(t *testing.T) {
		body := patched(t, "workflow_run_completed.json", func(m map[string]any) {
			m["action"] = "in_progress"
			run := obj(m, "workflow_run")
			run["status"], run["conclusion"] = "in_progress", nil
		})
		res := parse(t, provider(), signed("workflow_run", body))
		assert.Empty(t, res.Events)
		assert.Equal(t, `workflow_run action "in_progress"`, res.Ignored)
	})
}

func TestIssues(t *testing.T) {
	incident := "github/acme/api/issues/1290"
	res := parse(t, provider(), signed("issues", fixture(t, "issues_opened.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.IncidentOpened, Source: event.SourceGitHub, ID: incident + "/opened",
		Time:       ts("2026-11-02T09:41:20Z"),
		Service:    event.Service{Environment: "production"},
		Repository: repoName, IncidentID: incident,
	}}, res.Events)

	res = parse(t, provider(), signed("issues", fixture(t, "issues_closed.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.IncidentResolved, Source: event.SourceGitHub, ID: guid,
		Time:       ts("2026-11-02T10:02:53Z"),
		Service:    event.Service{Environment: "production"},
		Repository: repoName, IncidentID: incident,
	}}, res.Events)

	t.Run("labeled with the incident label: the same opening", func(t *testing.T) {
		body := patched(t, "issues_opened.json", func(m map[string]any) {
			m["action"] = "labeled"
			m["label"] = map[string]any{"id": 7011223344, "name": "Incident", "color": "b60205"}
		})
		labeled := parse(t, provider(), delivered("issues", "another-guid", body))
		opened := parse(t, provider(), signed("issues", fixture(t, "issues_opened.json")))
		assert.Equal(t, opened.Events, labeled.Events, "opened and labeled deliveries of one issue are one event")
	})
	t.Run("reopened", func(t *testing.T) {
		body := patched(t, "issues_closed.json", func(m map[string]any) {
			m["action"] = "reopened"
			iss := obj(m, "issue")
			iss["state"], iss["closed_at"], iss["updated_at"] = "open", nil, "2026-11-02T12:00:00Z"
		})
		res := parse(t, provider(), signed("issues", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, event.IncidentOpened, res.Events[0].Kind)
		assert.Equal(t, guid, res.Events[0].ID)
		assert.Equal(t, ts("2026-11-02T12:00:00Z"), res.Events[0].Time)
	})
	t.Run("custom label", func(t *testing.T) {
		p := provider(func(c *Config) { c.IncidentLabel = "sev2" })
		res := parse(t, p, signed("issues", fixture(t, "issues_opened.json")))
		assert.Len(t, res.Events, 1)
	})

	ignored := map[string]func(m map[string]any){
		`issue without the "incident" label`: func(m map[string]any) { obj(m, "issue")["labels"] = []any{} },
		`label other than "incident" added`: func(m map[string]any) {
			m["action"] = "labeled"
			m["label"] = map[string]any{"name": "sev2"}
		},
		`"incident" label added to a closed issue`: func(m map[string]any) {
			m["action"] = "labeled"
			m["label"] = map[string]any{"name": "incident"}
			obj(m, "issue")["state"] = "closed"
		},
		`issues action "edited"`: func(m map[string]any) { m["action"] = "edited" },
	}
	for want, edit := range ignored {
		t.Run(want, func(t *testing.T) {
			res := parse(t, provider(), signed("issues", patched(t, "issues_opened.json", edit)))
			assert.Empty(t, res.Events)
			assert.Equal(t, want, res.Ignored)
		})
	}
}

func TestIgnoredEventTypes(t *testing.T) {
	res := parse(t, provider(), signed("ping", fixture(t, "ping.json")))
	assert.Equal(t, webhook.Result{Ignored: "ping"}, res)

	for _, kind := range []string{"star", "check_run", "workflow_job", "release", "create"} {
		res := parse(t, provider(), signed(kind, []byte(`{"action":"created"}`)))
		assert.Empty(t, res.Events)
		assert.Equal(t, `GitHub event "`+kind+`" is not used`, res.Ignored)
	}
}

func TestSignature(t *testing.T) {
	body := fixture(t, "deployment.json")
	base := func() http.Header {
		h := http.Header{}
		h.Set(EventHeader, "deployment")
		h.Set(DeliveryHeader, guid)
		return h
	}
	with := func(k, v string) http.Header {
		h := base()
		h.Set(k, v)
		return h
	}
	tests := map[string]struct {
		header http.Header
		want   string
	}{
		"missing":       {base(), "missing X-Hub-Signature-256"},
		"SHA-1 only":    {with("X-Hub-Signature", "sha1=0123456789abcdef0123456789abcdef01234567"), "SHA-1 X-Hub-Signature is not accepted"},
		"no prefix":     {with(SignatureHeader, webhook.SignHMACSHA256(secret, body)), "must start with sha256="},
		"sha1 prefix":   {with(SignatureHeader, "sha1="+webhook.SignHMACSHA256(secret, body)), "must start with sha256="},
		"wrong secret":  {with(SignatureHeader, "sha256="+webhook.SignHMACSHA256("other", body)), "does not match the body"},
		"not hex":       {with(SignatureHeader, "sha256=zz"), "does not match the body"},
		"empty digest":  {with(SignatureHeader, "sha256="), "does not match the body"},
		"on ping, too":  {func() http.Header { h := base(); h.Set(EventHeader, "ping"); return h }(), "missing X-Hub-Signature-256"},
		"upper-case ok": {nil, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if tt.header == nil {
				h := with(SignatureHeader, "sha256="+strings.ToUpper(webhook.SignHMACSHA256(secret, body)))
				_, err := provider().Parse(&webhook.Request{Header: h, Body: body})
				assert.NoError(t, err)
				return
			}
			_, err := provider().Parse(&webhook.Request{Header: tt.header, Body: body})
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusUnauthorized, herr.Status)
			assert.Contains(t, herr.Message, tt.want)
		})
	}
	t.Run("tampered body", func(t *testing.T) {
		req := signed("deployment", body)
		req.Body = []byte(strings.Replace(string(body), `"production"`, `"staging"`, 1))
		_, err := provider().Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
	t.Run("insecure_skip_verify accepts unsigned", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.InsecureSkipVerify = true
		res, err := New(cfg).Parse(&webhook.Request{Header: base(), Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
	t.Run("a configured secret is checked even with insecure_skip_verify", func(t *testing.T) {
		p := provider(func(c *Config) { c.InsecureSkipVerify = true })
		_, err := p.Parse(&webhook.Request{Header: base(), Body: body})
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
}

// TestRedelivery: GitHub keeps X-GitHub-Delivery on a redelivery, so the
// same delivery gives the same IDs and another delivery different ones.
func TestRedelivery(t *testing.T) {
	for kind, name := range map[string]string{
		"push":              "push.json",
		"pull_request":      "pull_request_merged.json",
		"deployment":        "deployment.json",
		"deployment_status": "deployment_status.json",
		"workflow_run":      "workflow_run_completed.json",
		"issues":            "issues_closed.json",
	} {
		t.Run(kind, func(t *testing.T) {
			first := parse(t, provider(), delivered(kind, guid, fixture(t, name)))
			again := parse(t, provider(), delivered(kind, guid, fixture(t, name)))
			other := parse(t, provider(), delivered(kind, "9a1b6e5c-cc79-11e3-8c2f-1d3a4c5e6f70", fixture(t, name)))
			require.NotEmpty(t, first.Events)
			assert.Equal(t, first.Events, again.Events)
			ids := map[string]bool{}
			for i, ev := range first.Events {
				assert.False(t, ids[ev.ID], "IDs are distinct within a delivery")
				ids[ev.ID] = true
				assert.NotEqual(t, ev.ID, other.Events[i].ID, "another delivery has other IDs")
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	sha := "14091a9f2461267ee7e02525b4f1f2923f1c9849"
	tests := []struct {
		kind, body, want string
	}{
		{"push", `{`, "malformed JSON"},
		{"push", ``, "empty body"},
		{"push", `{"ref":"refs/heads/main","commits":"many"}`, `field "commits": expected`},
		{"push", `{"commits":[{"id":"` + sha + `"}]}`, `missing required field "ref"`},
		{"push", `{"ref":"refs/heads/main","commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}]}`, `missing required field "repository.full_name"`},
		{"push", `{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"abc","timestamp":"2026-11-02T09:00:00Z"}]}`, `field "commits[0].id": "abc" is not a full commit SHA`},
		{"push", `{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"yesterday"}]}`, `field "commits[0].timestamp": "yesterday" is not an RFC 3339 time`},
		{"push", `{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `"}]}`, `missing required field "commits[0].timestamp"`},
		{"push", `{"ref":"refs/heads/main","before":"nope","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}]}`, `field "before": "nope"`},
		{"pull_request", `{"action":"closed","pull_request":{"merged":true,"merged_at":"2026-11-02T09:00:00Z"},"repository":{"full_name":"a/b"}}`, `missing required field "pull_request.merge_commit_sha"`},
		{"pull_request", `{"action":"closed","pull_request":{"merged":true,"merge_commit_sha":"` + sha + `"},"repository":{"full_name":"a/b"}}`, `missing required field "pull_request.merged_at"`},
		{"pull_request", `{"action":"closed","pull_request":{"merged":"yes"}}`, `field "pull_request.merged": expected bool`},
		{"deployment", `{"action":"created","deployment":{"sha":"` + sha + `"},"repository":{"full_name":"a/b"}}`, `missing required field "deployment.id"`},
		{"deployment", `{"action":"created","deployment":{"id":"7"},"repository":{"full_name":"a/b"}}`, `field "deployment.id": expected int64`},
		{"deployment", `{"action":"created","deployment":{"id":7,"sha":"` + sha + `","created_at":"2026-11-02T09:00:00Z"},"repository":{"full_name":"a/b"}}`, `missing required field "deployment.environment"`},
		{"deployment", `{"action":"created","deployment":{"id":7,"sha":"` + sha + `","environment":"production"},"repository":{"full_name":"a/b"}}`, `missing required field "deployment.created_at"`},
		{"deployment", `{"action":"created","deployment":{"id":7,"environment":"production","created_at":"2026-11-02T09:00:00Z"},"repository":{"full_name":"a/b"}}`, `missing required field "deployment.sha"`},
		{"deployment_status", `{"action":"created","deployment_status":{},"deployment":{"id":7}}`, `missing required field "deployment_status.state"`},
		{"deployment_status", `{"action":"created","deployment_status":{"state":"success","created_at":"2026-11-02T09:00:00Z"},"deployment":{"id":7,"sha":"` + sha + `"},"repository":{"full_name":"a/b"}}`, `missing required field "deployment_status.environment" (or "deployment.environment")`},
		{"deployment_status", `{"action":"created","deployment_status":{"state":"success","environment":"production","created_at":"0001-01-01T00:00:00Z"},"deployment":{"id":7,"sha":"` + sha + `"},"repository":{"full_name":"a/b"}}`, `field "deployment_status.created_at"`},
		{"workflow_run", `{"action":"completed","workflow_run":{"path":".github/workflows/deploy.yml"}}`, `missing required field "workflow_run.conclusion"`},
		{"workflow_run", `{"action":"completed","workflow_run":{"path":".github/workflows/deploy.yml","conclusion":"success","head_sha":"` + sha + `","updated_at":"2026-11-02T09:00:00Z"},"repository":{"full_name":"a/b"}}`, `missing required field "workflow_run.id"`},
		{"workflow_run", `{"action":"completed","workflow_run":{"id":1,"path":".github/workflows/deploy.yml","conclusion":"success","updated_at":"2026-11-02T09:00:00Z"},"repository":{"full_name":"a/b"}}`, `missing required field "workflow_run.head_sha"`},
		{"issues", `{"action":"opened","issue":{"number":3,"labels":[{"name":"incident"}]},"repository":{"full_name":"a/b"}}`, `missing required field "issue.created_at"`},
		{"issues", `{"action":"opened","issue":{"labels":[{"name":"incident"}],"created_at":"2026-11-02T09:00:00Z"},"repository":{"full_name":"a/b"}}`, `missing required field "issue.number"`},
		{"issues", `{"action":"closed","issue":{"number":3,"labels":[{"name":"incident"}]},"repository":{"full_name":"a/b"}}`, `missing required field "issue.updated_at"`},
		{"issues", `{"action":"opened","issue":{"labels":{"name":"incident"}}}`, `field "issue.labels": expected`},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.want, func(t *testing.T) {
			_, err := provider().Parse(signed(tt.kind, []byte(tt.body)))
			require.Error(t, err)
			assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	t.Run("missing X-GitHub-Event", func(t *testing.T) {
		req := signed("", fixture(t, "push.json"))
		req.Header.Del(EventHeader)
		_, err := provider().Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusBadRequest, herr.Status)
		assert.Equal(t, "missing X-GitHub-Event header", herr.Message)
	})
	t.Run("missing X-GitHub-Delivery", func(t *testing.T) {
		req := signed("push", fixture(t, "push.json"))
		req.Header.Del(DeliveryHeader)
		_, err := provider().Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusBadRequest, herr.Status)
		assert.Equal(t, "missing X-GitHub-Delivery header", herr.Message)
	})
}

// TestHandler runs deliveries through the webhook front, as the receiver
// does: status codes and the content type rule come from there.
func TestHandler(t *testing.T) {
	var got []event.Event
	h := webhook.NewHandler(webhook.Options{
		Routes: []webhook.Route{{Path: DefaultPath, Provider: provider()}},
		Sink: func(_ context.Context, source string, events []event.Event) (webhook.SinkResult, error) {
			assert.Equal(t, event.SourceGitHub, source)
			got = append(got, events...)
			return webhook.SinkResult{Accepted: len(events)}, nil
		},
	})
	post := func(req *webhook.Request, contentType string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, DefaultPath, strings.NewReader(string(req.Body)))
		for k, v := range req.Header {
			r.Header[k] = v
		}
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	w := post(signed("push", fixture(t, "push.json")), "application/json")
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.JSONEq(t, `{"status":"accepted","accepted":3}`, w.Body.String())
	assert.Len(t, got, 3)

	w = post(signed("ping", fixture(t, "ping.json")), "application/json")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, `{"status":"ignored","accepted":0,"ignored":"ping"}`, w.Body.String())

	w = post(signed("push", fixture(t, "push.json")), "application/x-www-form-urlencoded")
	assert.Equal(t, http.StatusUnsupportedMediaType, w.Code)
	// GitHub shows this body in the webhook's Recent Deliveries: it says
	// which setting to change.
	var answer struct{ Error string }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &answer), w.Body.String())
	assert.Equal(t, `content type "application/x-www-form-urlencoded" is not accepted by the github source: send application/json; `+
		`set the webhook's Content type to application/json (Settings > Webhooks > Edit; GitHub's default, application/x-www-form-urlencoded, is not read)`, answer.Error)

	req := signed("push", fixture(t, "push.json"))
	req.Header.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256("wrong", req.Body))
	w = post(req, "application/json")
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Contains(t, w.Body.String(), "does not match the body")
}

func FuzzParse(f *testing.F) {
	for kind, name := range map[string]string{
		"push":              "push.json",
		"pull_request":      "pull_request_merged.json",
		"deployment":        "deployment.json",
		"deployment_status": "deployment_status.json",
		"workflow_run":      "workflow_run_completed.json",
		"issues":            "issues_opened.json",
		"ping":              "ping.json",
		"release":           "release_published.json",
	} {
		f.Add(kind, fixture(f, name))
	}
	f.Add("push", fixture(f, "push_tag.json"))
	f.Add("issues", fixture(f, "issues_closed.json"))
	f.Add("push", []byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]`))
	p := provider(func(c *Config) {
		c.ReleaseDeployments = []gitpush.ReleaseDeployment{{Repository: "*/*", Trigger: "tag"}, {Repository: "*"}}
	})
	f.Fuzz(func(t *testing.T, kind string, body []byte) {
		res, err := p.Parse(signed(kind, body))
		if err != nil {
			// Refused as the sender's fault, never a 5xx or a panic.
			status := webhook.StatusOf(err)
			require.True(t, status == http.StatusBadRequest || status == http.StatusUnauthorized, status)
			return
		}
		if len(res.Events) == 0 {
			require.NotEmpty(t, res.Ignored, "an empty result says why")
		}
		for _, ev := range res.Events {
			require.True(t, ev.Kind.Valid())
			require.Equal(t, event.SourceGitHub, ev.Source)
			require.NotEmpty(t, ev.ID)
			require.False(t, ev.Time.IsZero())
			require.NotEmpty(t, ev.Repository)
			switch ev.Kind {
			case event.ChangeCommitted, event.ChangeMerged:
				require.True(t, gitpush.IsSHA(ev.Revision) && ev.Revision == strings.ToLower(ev.Revision))
			case event.IncidentOpened, event.IncidentResolved:
				require.NotEmpty(t, ev.IncidentID)
			default:
				require.NotEmpty(t, ev.DeploymentID)
				require.NotEmpty(t, ev.Service.Environment)
			}
		}
	})
}

// TestDocExample keeps the example of docs/sources/github.md working.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "sources", "github.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "cat > deployment_status.json <<'JSON'\n")
	require.True(t, ok, "the doc has the example body")
	body, _, ok := strings.Cut(rest, "\nJSON\n")
	require.True(t, ok)
	res := parse(t, provider(), delivered("deployment_status", "5f0e8a52-9b8e-11f0-8d7a-3c1e2b4a6d90", []byte(body+"\n")))
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.DeploymentSucceeded, res.Events[0].Kind)
	assert.Equal(t, "github/acme/api/deployment/1874460921", res.Events[0].DeploymentID)
}
