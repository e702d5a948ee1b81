package gitlab

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
	token    = "glwht-9f2c4e1d7a"
	repoName = "acme/platform/billing"
	mergeSHA = "9d6fcbe347704e55e8adb18ed54e7ed7a3aa5204"
)

var received = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

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

// hooked is a delivery as GitLab sends it: the per-attempt UUIDs differ on
// every call, as they do between a delivery and its resend.
func hooked(hook string, body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitLab/18.5.1")
	h.Set(EventHeader, hook)
	h.Set(TokenHeader, token)
	h.Set("X-Gitlab-Instance", "https://gitlab.acme.example")
	h.Set("X-Gitlab-Webhook-UUID", time.Now().Format(time.RFC3339Nano))
	h.Set("X-Gitlab-Event-UUID", time.Now().Format(time.RFC3339Nano)+"e")
	return &webhook.Request{Header: h, Body: body, Received: received}
}

func provider(edit ...func(*Config)) *Provider {
	cfg := DefaultConfig()
	cfg.Secret = token
	for _, e := range edit {
		e(&cfg)
	}
	return New(cfg)
}

func withRefs(refs ...string) func(*Config) {
	return func(c *Config) { c.DeploymentRefs = refs }
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
	assert.Equal(t, "/webhooks/gitlab", cfg.Path)
	assert.Equal(t, []string{"deploy"}, cfg.DeploymentStages)
	assert.Empty(t, cfg.DeploymentRefs)
	assert.Equal(t, "production", cfg.PipelineEnvironment)
	assert.Equal(t, "incident", cfg.IncidentLabel)
	assert.ErrorContains(t, cfg.Validate(), "secret: required")
	cfg.Secret = token
	assert.NoError(t, cfg.Validate())

	tests := map[string]func(*Config){
		`path: "x" must start with /`:             func(c *Config) { c.Path = "x" },
		"deployment_refs[0]: empty ref":           func(c *Config) { c.DeploymentRefs = []string{""} },
		`deployment_refs[1]: "release/[" is not`:  func(c *Config) { c.DeploymentRefs = []string{"main", "release/["} },
		"deployment_stages: must name at least":   func(c *Config) { c.DeploymentRefs = []string{"main"}; c.DeploymentStages = nil },
		"deployment_stages[0]: empty stage":       func(c *Config) { c.DeploymentStages = []string{" "} },
		"pipeline_environment: must not be empty": func(c *Config) { c.PipelineEnvironment = "" },
		"incident_label: must not be empty":       func(c *Config) { c.IncidentLabel = "" },
	}
	for want, edit := range tests {
		t.Run(want, func(t *testing.T) {
			c := DefaultConfig()
			c.Secret = token
			edit(&c)
			assert.ErrorContains(t, c.Validate(), want)
		})
	}
}

func TestConfigUnmarshal(t *testing.T) {
	cfg := DefaultConfig()
	err := confmap.NewFromStringMap(map[string]any{
		"path":              "/hooks/gitlab",
		"secret":            "t0ken",
		"deployment_refs":   []any{"main", "v*"},
		"deployment_stages": []any{"release"},
		"revert_patterns":   []any{},
		"hotfix_labels":     []any{"hotfix"},
		"hotfix_branches":   []any{"hotfix/*"},
	}).Unmarshal(&cfg)
	require.NoError(t, err)
	assert.Equal(t, "/hooks/gitlab", cfg.Path)
	assert.Equal(t, "t0ken", string(cfg.Secret))
	assert.Equal(t, []string{"main", "v*"}, cfg.DeploymentRefs)
	assert.Equal(t, []string{"release"}, cfg.DeploymentStages)
	assert.Equal(t, "production", cfg.PipelineEnvironment, "unset keys keep their defaults")
	assert.Equal(t, "incident", cfg.IncidentLabel)
	assert.Empty(t, cfg.RevertPatterns, "an empty list turns revert patterns off")
	assert.Equal(t, []string{"hotfix"}, cfg.HotfixLabels)
	assert.Equal(t, []string{"hotfix/*"}, cfg.HotfixBranches)
	assert.NoError(t, cfg.Validate())
}

func TestPush(t *testing.T) {
	res := parse(t, provider(), hooked("Push Hook", fixture(t, "push.json")))
	key := "gitlab/acme/platform/billing/push/288f526ee9d476692139b697f829e4f71a78c983..d2d75d0a629f330208a3dd1e65620783162dd415/"
	assert.Equal(t, []event.Event{
		{
			Kind: event.ChangeCommitted, Source: event.SourceGitLab, ID: key + "c230131a59a1a699962d66f2e9ed4bab86ea812a",
			Time: ts("2026-11-02T09:12:44+01:00"), Repository: repoName,
			Revision: "c230131a59a1a699962d66f2e9ed4bab86ea812a", ParentRevision: "288f526ee9d476692139b697f829e4f71a78c983",
			Paths: []string{"invoice/total.go"},
		},
		{
			Kind: event.ChangeCommitted, Source: event.SourceGitLab, ID: key + "d2d75d0a629f330208a3dd1e65620783162dd415",
			Time: ts("2026-11-02T09:40:03+01:00"), Repository: repoName,
			Revision: "d2d75d0a629f330208a3dd1e65620783162dd415", ParentRevision: "c230131a59a1a699962d66f2e9ed4bab86ea812a",
			Paths: []string{"invoice/total_test.go"},
		},
	}, res.Events)

	t.Run("more commits than listed: the oldest listed has no known parent", func(t *testing.T) {
		body := patched(t, "push.json", func(m map[string]any) { m["total_commits_count"] = 45 })
		res := parse(t, provider(), hooked("Push Hook", body))
		require.Len(t, res.Events, 2)
		assert.Empty(t, res.Events[0].ParentRevision)
		assert.Equal(t, "c230131a59a1a699962d66f2e9ed4bab86ea812a", res.Events[1].ParentRevision)
	})
	t.Run("new branch", func(t *testing.T) {
		body := patched(t, "push.json", func(m map[string]any) { m["before"] = "0000000000000000000000000000000000000000" })
		res := parse(t, provider(), hooked("Push Hook", body))
		require.Len(t, res.Events, 2)
		assert.Empty(t, res.Events[0].ParentRevision)
	})
	t.Run("upper-case SHAs are lower-cased", func(t *testing.T) {
		body := patched(t, "push.json", func(m map[string]any) {
			c := m["commits"].([]any)[1].(map[string]any)
			c["id"] = strings.ToUpper(c["id"].(string))
		})
		res := parse(t, provider(), hooked("Push Hook", body))
		assert.Equal(t, "d2d75d0a629f330208a3dd1e65620783162dd415", res.Events[1].Revision)
	})

	ignored := map[string]func(m map[string]any){
		"branch refs/heads/main deleted": func(m map[string]any) {
			m["after"], m["checkout_sha"], m["commits"], m["total_commits_count"] = "0000000000000000000000000000000000000000", nil, []any{}, 0
		},
		"push without new commits": func(m map[string]any) { m["commits"], m["total_commits_count"] = []any{}, 0 },
	}
	for want, edit := range ignored {
		t.Run(want, func(t *testing.T) {
			res := parse(t, provider(), hooked("Push Hook", patched(t, "push.json", edit)))
			assert.Empty(t, res.Events)
			assert.Equal(t, want, res.Ignored)
		})
	}
	t.Run("tag push", func(t *testing.T) {
		body := patched(t, "push.json", func(m map[string]any) {
			m["object_kind"], m["event_name"], m["ref"] = "tag_push", "tag_push", "refs/tags/v2.4.0"
		})
		res := parse(t, provider(), hooked("Tag Push Hook", body))
		assert.Equal(t, webhook.Result{Ignored: "tag push"}, res)
	})
}

func TestMergeRequestMerged(t *testing.T) {
	res := parse(t, provider(), hooked("Merge Request Hook", fixture(t, "merge_request_merged.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.ChangeMerged, Source: event.SourceGitLab, ID: "gitlab/acme/platform/billing/merge_requests/57/merged",
		Time: ts("2026-11-02T09:03:16Z"), Repository: repoName, Revision: mergeSHA,
		ChangeID: "gitlab/acme/platform/billing/merge_requests/57",
	}}, res.Events)

	t.Run("RFC 3339 times, as in the documented example", func(t *testing.T) {
		body := patched(t, "merge_request_merged.json", func(m map[string]any) { obj(m, "object_attributes")["updated_at"] = "2026-11-02T09:03:16Z" })
		res := parse(t, provider(), hooked("Merge Request Hook", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, ts("2026-11-02T09:03:16Z"), res.Events[0].Time)
	})
	t.Run("fast-forward merge", func(t *testing.T) {
		body := patched(t, "merge_request_merged.json", func(m map[string]any) { obj(m, "object_attributes")["merge_commit_sha"] = nil })
		res := parse(t, provider(), hooked("Merge Request Hook", body))
		assert.Empty(t, res.Events)
		assert.Contains(t, res.Ignored, "without a merge commit")
	})
	t.Run("opened", func(t *testing.T) {
		body := patched(t, "merge_request_merged.json", func(m map[string]any) {
			oa := obj(m, "object_attributes")
			oa["action"], oa["state"], oa["merge_commit_sha"] = "open", "opened", nil
		})
		res := parse(t, provider(), hooked("Merge Request Hook", body))
		assert.Empty(t, res.Events)
		assert.Equal(t, `merge request action "open"`, res.Ignored)
	})
}

func TestDeployment(t *testing.T) {
	res := parse(t, provider(), hooked("Deployment Hook", fixture(t, "deployment.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.DeploymentSucceeded, Source: event.SourceGitLab, ID: "gitlab/acme/platform/billing/deployment/20931/success",
		Time:       ts("2026-11-02T09:14:47Z"),
		Service:    event.Service{Environment: "production"},
		Repository: repoName, DeploymentID: "gitlab/acme/platform/billing/deployment/20931",
		Revision: mergeSHA,
	}}, res.Events)

	tests := []struct {
		status  string
		kind    event.Kind
		reason  string
		ignored string
	}{
		{status: "running", kind: event.DeploymentStarted},
		{status: "failed", kind: event.DeploymentFailed, reason: "failed"},
		{status: "canceled", ignored: `deployment status "canceled" is not an outcome`},
		{status: "blocked", ignored: `deployment status "blocked" is not an outcome`},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			body := patched(t, "deployment.json", func(m map[string]any) { m["status"] = tt.status })
			res := parse(t, provider(), hooked("Deployment Hook", body))
			if tt.ignored != "" {
				assert.Empty(t, res.Events)
				assert.Equal(t, tt.ignored, res.Ignored)
				return
			}
			require.Len(t, res.Events, 1)
			assert.Equal(t, tt.kind, res.Events[0].Kind)
			assert.Equal(t, tt.reason, res.Events[0].Reason)
			assert.Equal(t, "gitlab/acme/platform/billing/deployment/20931/"+tt.status, res.Events[0].ID)
		})
	}
	t.Run("revision from commit_url only when it is the full SHA of short_sha", func(t *testing.T) {
		for url, want := range map[string]string{
			"https://gitlab.acme.example/acme/platform/billing/-/commit/" + strings.ToUpper(mergeSHA): mergeSHA,
			"https://gitlab.acme.example/acme/platform/billing/-/commit/" + mergeSHA + "/":            mergeSHA,
			"https://gitlab.acme.example/acme/platform/billing/-/commit/9d6fcbe3":                     "",
			"https://gitlab.acme.example/acme/platform/billing/-/commit/" + strings.Repeat("a", 40):   "",
			"": "",
		} {
			body := patched(t, "deployment.json", func(m map[string]any) { m["commit_url"] = url })
			res := parse(t, provider(), hooked("Deployment Hook", body))
			require.Len(t, res.Events, 1)
			assert.Equal(t, want, res.Events[0].Revision, url)
		}
	})
}

func TestPipeline(t *testing.T) {
	t.Run("ignored unless deployment_refs is set", func(t *testing.T) {
		res := parse(t, provider(), hooked("Pipeline Hook", fixture(t, "pipeline.json")))
		assert.Equal(t, webhook.Result{Ignored: "pipeline events are not used (deployment_refs is empty)"}, res)
	})

	res := parse(t, provider(withRefs("main")), hooked("Pipeline Hook", fixture(t, "pipeline.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.DeploymentSucceeded, Source: event.SourceGitLab, ID: "gitlab/acme/platform/billing/pipeline/99131/success",
		Time:       ts("2026-11-02T09:15:12Z"),
		Service:    event.Service{Environment: "production"},
		Repository: repoName, DeploymentID: "gitlab/acme/platform/billing/pipeline/99131",
		Revision: mergeSHA,
	}}, res.Events)

	deployJob := func(m map[string]any) map[string]any { return m["builds"].([]any)[0].(map[string]any) }
	t.Run("deploy job failed", func(t *testing.T) {
		body := patched(t, "pipeline.json", func(m map[string]any) {
			obj(m, "object_attributes")["status"] = "failed"
			deployJob(m)["status"] = "failed"
		})
		res := parse(t, provider(withRefs("main")), hooked("Pipeline Hook", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, event.DeploymentFailed, res.Events[0].Kind)
		assert.Equal(t, "failed", res.Events[0].Reason)
		assert.Equal(t, "gitlab/acme/platform/billing/pipeline/99131/failed", res.Events[0].ID)
	})
	// A deploy job with allow_failure: true that failed passes the
	// pipeline ("passed with warnings"), but the deployment failed; the
	// job retried and passing is its recovery, a second "success" pipeline
	// event that must not be taken for a redelivery of the first.
	t.Run("deploy job allowed to fail, then retried", func(t *testing.T) {
		body := patched(t, "pipeline.json", func(m map[string]any) {
			obj(m, "object_attributes")["detailed_status"] = "passed with warnings"
			deployJob(m)["status"] = "failed"
			deployJob(m)["allow_failure"] = true
			deployJob(m)["failure_reason"] = "script_failure"
		})
		p := provider(withRefs("main"))
		failed := parse(t, p, hooked("Pipeline Hook", body))
		require.Len(t, failed.Events, 1)
		assert.Equal(t, event.DeploymentFailed, failed.Events[0].Kind)
		assert.Equal(t, "failed", failed.Events[0].Reason)
		assert.Equal(t, "gitlab/acme/platform/billing/pipeline/99131/failed", failed.Events[0].ID)

		recovered := parse(t, p, hooked("Pipeline Hook", fixture(t, "pipeline.json")))
		require.Len(t, recovered.Events, 1)
		assert.Equal(t, event.DeploymentSucceeded, recovered.Events[0].Kind)
		assert.Equal(t, failed.Events[0].DeploymentID, recovered.Events[0].DeploymentID)
		assert.NotEqual(t, failed.Events[0].ID, recovered.Events[0].ID, "the recovery is not a redelivery")
	})
	t.Run("failed before the deploy job ran", func(t *testing.T) {
		body := patched(t, "pipeline.json", func(m map[string]any) {
			obj(m, "object_attributes")["status"] = "failed"
			deployJob(m)["status"] = "skipped"
			m["builds"].([]any)[1].(map[string]any)["status"] = "failed"
		})
		res := parse(t, provider(withRefs("main")), hooked("Pipeline Hook", body))
		assert.Empty(t, res.Events)
		assert.Equal(t, "no job of the deployment stages (deploy) ran", res.Ignored)
	})
	t.Run("manual deploy job not run", func(t *testing.T) {
		body := patched(t, "pipeline.json", func(m map[string]any) { deployJob(m)["status"] = "manual" })
		res := parse(t, provider(withRefs("main")), hooked("Pipeline Hook", body))
		assert.Empty(t, res.Events)
	})
	t.Run("other ref", func(t *testing.T) {
		res := parse(t, provider(withRefs("production")), hooked("Pipeline Hook", fixture(t, "pipeline.json")))
		assert.Empty(t, res.Events)
		assert.Equal(t, `pipeline of ref "main", which is not one of deployment_refs`, res.Ignored)
	})
	t.Run("tag pattern, custom stage, no environment on the job", func(t *testing.T) {
		body := patched(t, "pipeline.json", func(m map[string]any) {
			oa := obj(m, "object_attributes")
			oa["ref"], oa["tag"] = "v2.4.0", true
			deployJob(m)["stage"] = "release"
			deployJob(m)["environment"] = nil
		})
		p := provider(withRefs("main", "v*"), func(c *Config) {
			c.DeploymentStages = []string{"release"}
			c.PipelineEnvironment = "prod"
		})
		res := parse(t, p, hooked("Pipeline Hook", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, "prod", res.Events[0].Service.Environment)
	})
	t.Run("not finished", func(t *testing.T) {
		for _, st := range []string{"pending", "running", "canceled", "skipped", "manual"} {
			body := patched(t, "pipeline.json", func(m map[string]any) { obj(m, "object_attributes")["status"] = st })
			res := parse(t, provider(withRefs("main")), hooked("Pipeline Hook", body))
			assert.Empty(t, res.Events)
			assert.Equal(t, `pipeline status "`+st+`" is not an outcome`, res.Ignored)
		}
	})
	t.Run("time falls back to the deploy job's, then to arrival", func(t *testing.T) {
		body := patched(t, "pipeline.json", func(m map[string]any) { obj(m, "object_attributes")["finished_at"] = nil })
		res := parse(t, provider(withRefs("main")), hooked("Pipeline Hook", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, ts("2026-11-02T09:14:47Z"), res.Events[0].Time)

		body = patched(t, "pipeline.json", func(m map[string]any) {
			obj(m, "object_attributes")["finished_at"] = nil
			deployJob(m)["finished_at"] = nil
		})
		res = parse(t, provider(withRefs("main")), hooked("Pipeline Hook", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, received, res.Events[0].Time)
	})
}

func TestIssue(t *testing.T) {
	res := parse(t, provider(), hooked("Issue Hook", fixture(t, "issue_incident_opened.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.IncidentOpened, Source: event.SourceGitLab, ID: "gitlab/acme/platform/billing/issues/318/opened",
		Time:       ts("2026-11-02T09:41:20Z"),
		Service:    event.Service{Environment: "production"},
		Repository: repoName, IncidentID: "gitlab/acme/platform/billing/issues/318",
	}}, res.Events)

	res = parse(t, provider(), hooked("Issue Hook", fixture(t, "issue_closed.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.IncidentResolved, Source: event.SourceGitLab, ID: "gitlab/acme/platform/billing/issues/319/closed/1793613773",
		Time:       ts("2026-11-02T10:02:53Z"),
		Service:    event.Service{Environment: "production"},
		Repository: repoName, IncidentID: "gitlab/acme/platform/billing/issues/319",
	}}, res.Events)

	t.Run("incident as a work item, confidential", func(t *testing.T) {
		body := patched(t, "issue_incident_opened.json", func(m map[string]any) {
			m["object_kind"], m["event_type"] = "work_item", "work_item"
			obj(m, "object_attributes")["confidential"] = true
		})
		res := parse(t, provider(), hooked("Confidential Issue Hook", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, event.IncidentOpened, res.Events[0].Kind)
	})
	t.Run("issue_type incident", func(t *testing.T) {
		body := patched(t, "issue_incident_opened.json", func(m map[string]any) {
			oa := obj(m, "object_attributes")
			delete(oa, "type")
			oa["issue_type"] = "incident"
		})
		res := parse(t, provider(), hooked("Issue Hook", body))
		assert.Len(t, res.Events, 1)
	})
	t.Run("label added to an open issue: the same opening", func(t *testing.T) {
		body := patched(t, "issue_closed.json", func(m map[string]any) {
			oa := obj(m, "object_attributes")
			oa["action"], oa["state"], oa["closed_at"], oa["type"] = "update", "opened", nil, "Issue"
			m["changes"] = map[string]any{"labels": map[string]any{
				"previous": []any{map[string]any{"id": 1201, "title": "bug"}},
				"current":  []any{map[string]any{"id": 1201, "title": "bug"}, map[string]any{"id": 1402, "title": "Incident"}},
			}}
		})
		labelled := parse(t, provider(), hooked("Issue Hook", body))
		opened := parse(t, provider(), hooked("Issue Hook", patched(t, "issue_closed.json", func(m map[string]any) {
			oa := obj(m, "object_attributes")
			oa["action"], oa["state"], oa["closed_at"] = "open", "opened", nil
		})))
		require.Len(t, labelled.Events, 1)
		assert.Equal(t, opened.Events, labelled.Events)
		assert.Equal(t, ts("2026-11-02T09:41:20Z"), labelled.Events[0].Time, "the incident started when the issue was opened")
	})
	t.Run("reopen", func(t *testing.T) {
		body := patched(t, "issue_closed.json", func(m map[string]any) {
			oa := obj(m, "object_attributes")
			oa["action"], oa["state"], oa["closed_at"], oa["updated_at"] = "reopen", "opened", nil, "2026-11-02 12:00:00 UTC"
		})
		res := parse(t, provider(), hooked("Issue Hook", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, event.IncidentOpened, res.Events[0].Kind)
		assert.Equal(t, ts("2026-11-02T12:00:00Z"), res.Events[0].Time)
		assert.Equal(t, "gitlab/acme/platform/billing/issues/319/reopened/1793620800", res.Events[0].ID)
	})

	ignored := map[string]func(m map[string]any){
		`issue is neither of type Incident nor labelled "incident"`: func(m map[string]any) {
			obj(m, "object_attributes")["labels"] = []any{}
			m["labels"] = []any{}
		},
		`issue action "update"`: nil, // replaced below
		`issue update that neither adds the "incident" label nor makes it an incident`: func(m map[string]any) {
			obj(m, "object_attributes")["action"] = "update"
		},
		`issue made an incident (the "incident" label or its type) while closed`: func(m map[string]any) {
			obj(m, "object_attributes")["action"] = "update"
			m["changes"] = map[string]any{"labels": map[string]any{"previous": []any{}, "current": []any{map[string]any{"title": "incident"}}}}
		},
		`issue action "move"`: func(m map[string]any) { obj(m, "object_attributes")["action"] = "move" },
	}
	delete(ignored, `issue action "update"`)
	for want, edit := range ignored {
		t.Run(want, func(t *testing.T) {
			res := parse(t, provider(), hooked("Issue Hook", patched(t, "issue_closed.json", edit)))
			assert.Empty(t, res.Events)
			assert.Equal(t, want, res.Ignored)
		})
	}
	t.Run(`"changes": [] is tolerated`, func(t *testing.T) {
		body := patched(t, "issue_closed.json", func(m map[string]any) { m["changes"] = []any{} })
		res := parse(t, provider(), hooked("Issue Hook", body))
		assert.Len(t, res.Events, 1)
	})
}

func TestHooks(t *testing.T) {
	t.Run("system hook push", func(t *testing.T) {
		res := parse(t, provider(), hooked("System Hook", fixture(t, "push.json")))
		assert.Len(t, res.Events, 2)
	})
	t.Run("other system hook events", func(t *testing.T) {
		res := parse(t, provider(), hooked("System Hook", []byte(`{"event_name":"project_create","name":"billing"}`)))
		assert.Equal(t, webhook.Result{Ignored: `system hook event "" is not used`}, res)
	})
	for _, hook := range []string{"Note Hook", "Job Hook", "Release Hook", "Wiki Page Hook", "Emoji Hook", "Member Hook"} {
		t.Run(hook, func(t *testing.T) {
			res := parse(t, provider(), hooked(hook, []byte(`{"object_kind":"x"}`)))
			assert.Equal(t, webhook.Result{Ignored: `GitLab event "` + hook + `" is not used`}, res)
		})
	}
	t.Run("object_kind must match the hook", func(t *testing.T) {
		_, err := provider().Parse(hooked("Push Hook", fixture(t, "deployment.json")))
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusBadRequest, herr.Status)
		assert.Equal(t, `field "object_kind": "deployment" does not match X-Gitlab-Event "Push Hook" (want push)`, herr.Message)
	})
	t.Run("missing X-Gitlab-Event", func(t *testing.T) {
		req := hooked("", fixture(t, "push.json"))
		req.Header.Del(EventHeader)
		_, err := provider().Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusBadRequest, herr.Status)
		assert.Equal(t, "missing X-Gitlab-Event header", herr.Message)
	})
}

func TestToken(t *testing.T) {
	body := fixture(t, "deployment.json")
	for name, tt := range map[string]struct{ value, want string }{
		"missing":      {"", "missing X-Gitlab-Token header"},
		"wrong":        {"glwht-wrong", "X-Gitlab-Token does not match the configured secret"},
		"prefix only":  {token[:5], "does not match"},
		"longer":       {token + "x", "does not match"},
		"other casing": {strings.ToUpper(token), "does not match"},
	} {
		t.Run(name, func(t *testing.T) {
			req := hooked("Deployment Hook", body)
			req.Header.Set(TokenHeader, tt.value)
			_, err := provider().Parse(req)
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusUnauthorized, herr.Status)
			assert.Contains(t, herr.Message, tt.want)
		})
	}
	t.Run("checked before anything else", func(t *testing.T) {
		req := hooked("Deployment Hook", []byte(`{`))
		req.Header.Set(TokenHeader, "wrong")
		_, err := provider().Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
	t.Run("insecure_skip_verify accepts no token", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.InsecureSkipVerify = true
		req := hooked("Deployment Hook", body)
		req.Header.Del(TokenHeader)
		res, err := New(cfg).Parse(req)
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
}

// TestRedelivery: IDs come from the payload, so a resend (which GitLab
// sends with new X-Gitlab-Webhook-UUID and X-Gitlab-Event-UUID values) and
// the same event from a second hook give the same IDs.
func TestRedelivery(t *testing.T) {
	p := provider(withRefs("main"))
	all := map[string]bool{}
	for name, hook := range map[string]string{
		"push.json":                  "Push Hook",
		"merge_request_merged.json":  "Merge Request Hook",
		"deployment.json":            "Deployment Hook",
		"pipeline.json":              "Pipeline Hook",
		"issue_incident_opened.json": "Issue Hook",
		"issue_closed.json":          "Issue Hook",
	} {
		t.Run(name, func(t *testing.T) {
			first := parse(t, p, hooked(hook, fixture(t, name)))
			resend := parse(t, p, hooked(hook, fixture(t, name)))
			require.NotEmpty(t, first.Events)
			assert.Equal(t, first.Events, resend.Events)
			for _, ev := range first.Events {
				assert.False(t, all[ev.ID], "IDs are distinct between events: %s", ev.ID)
				all[ev.ID] = true
			}
		})
	}
	t.Run("statuses of one deployment are distinct events", func(t *testing.T) {
		ids := map[string]bool{}
		for _, st := range []string{"running", "success", "failed"} {
			body := patched(t, "deployment.json", func(m map[string]any) { m["status"] = st })
			res := parse(t, p, hooked("Deployment Hook", body))
			require.Len(t, res.Events, 1)
			ids[res.Events[0].ID] = true
		}
		assert.Len(t, ids, 3)
	})
}

func TestTimeFormats(t *testing.T) {
	for in, want := range map[string]string{
		"2026-11-02T10:15:00Z":          "2026-11-02T10:15:00Z",
		"2026-11-02T10:15:00.123Z":      "2026-11-02T10:15:00.123Z",
		"2026-11-02T11:15:00+01:00":     "2026-11-02T10:15:00Z",
		"2026-11-02 10:15:00 UTC":       "2026-11-02T10:15:00Z",
		"2026-11-02 11:15:00 +0100":     "2026-11-02T10:15:00Z",
		"2026-11-02 11:15:00 +01:00":    "2026-11-02T10:15:00Z",
		"2026-11-02 10:15:00.517 UTC":   "2026-11-02T10:15:00.517Z",
		"2026-11-02 05:15:00 -0500":     "2026-11-02T10:15:00Z",
		"2026-11-02T10:15:00.000-05:00": "2026-11-02T15:15:00Z",
	} {
		got, err := parseTime("t", in)
		require.NoError(t, err, in)
		assert.True(t, ts(want).Equal(got), "%s: got %s", in, got)
	}
	for _, in := range []string{"2026-11-02", "yesterday", "2026-11-02 10:15:00 CET", "0001-01-01T00:00:00Z", "2026-11-02 10:15:00"} {
		_, err := parseTime("t", in)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr, in)
		assert.Contains(t, herr.Message, `field "t"`)
	}
}

func TestMalformed(t *testing.T) {
	sha := mergeSHA
	proj := `"project":{"path_with_namespace":"a/b"}`
	tests := []struct {
		hook, body, want string
	}{
		{"Push Hook", `{`, "malformed JSON"},
		{"Push Hook", ``, "empty body"},
		{"Push Hook", `{"object_kind":5}`, `field "object_kind": expected string`},
		{"Push Hook", `{"object_kind":"push"}`, `missing required field "ref"`},
		{"Push Hook", `{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `","commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}]}`, `missing required field "project.path_with_namespace"`},
		{"Push Hook", `{"object_kind":"push","ref":"refs/heads/main",` + proj + `,"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}]}`, `missing required field "after"`},
		{"Push Hook", `{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[{"id":"xyz","timestamp":"2026-11-02T09:00:00Z"}]}`, `field "commits[0].id": "xyz" is not a full commit SHA`},
		{"Push Hook", `{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[{"id":"` + sha + `","timestamp":"noon"}]}`, `field "commits[0].timestamp": "noon" is not a time`},
		{"Push Hook", `{"object_kind":"push","ref":"refs/heads/main","total_commits_count":"2"}`, `field "total_commits_count": expected int`},
		{"Merge Request Hook", `{"object_kind":"merge_request","object_attributes":{"action":"merge","merge_commit_sha":"` + sha + `","updated_at":"2026-11-02 09:00:00 UTC"},` + proj + `}`, `missing required field "object_attributes.iid"`},
		{"Merge Request Hook", `{"object_kind":"merge_request","object_attributes":{"iid":3,"action":"merge","merge_commit_sha":"` + sha + `"},` + proj + `}`, `missing required field "object_attributes.updated_at"`},
		{"Merge Request Hook", `{"object_kind":"merge_request","object_attributes":{"iid":3,"action":"merge","merge_commit_sha":"abc","updated_at":"2026-11-02 09:00:00 UTC"},` + proj + `}`, `field "object_attributes.merge_commit_sha": "abc"`},
		{"Deployment Hook", `{"object_kind":"deployment"}`, `missing required field "status"`},
		{"Deployment Hook", `{"object_kind":"deployment","status":"success",` + proj + `,"environment":"production","status_changed_at":"2026-11-02 09:00:00 UTC"}`, `missing required field "deployment_id"`},
		{"Deployment Hook", `{"object_kind":"deployment","status":"success",` + proj + `,"deployment_id":4,"status_changed_at":"2026-11-02 09:00:00 UTC"}`, `missing required field "environment"`},
		{"Deployment Hook", `{"object_kind":"deployment","status":"success",` + proj + `,"deployment_id":4,"environment":"production"}`, `missing required field "status_changed_at"`},
		{"Deployment Hook", `{"object_kind":"deployment","status":"success",` + proj + `,"deployment_id":4,"environment":"production","status_changed_at":"2026-11-02 09:00:00 CET"}`, `field "status_changed_at": "2026-11-02 09:00:00 CET" is not a time`},
		{"Deployment Hook", `{"object_kind":"deployment","status":"success","deployment_id":"4"}`, `field "deployment_id": expected int64`},
		{"Pipeline Hook", `{"object_kind":"pipeline","object_attributes":{}}`, `missing required field "object_attributes.ref"`},
		{"Pipeline Hook", `{"object_kind":"pipeline","object_attributes":{"ref":"main","status":"success","finished_at":"2026-11-02 09:00:00 UTC"},` + proj + `,"builds":[{"stage":"deploy","status":"success"}]}`, `missing required field "object_attributes.id"`},
		{"Pipeline Hook", `{"object_kind":"pipeline","object_attributes":{"id":9,"ref":"main","status":"success","finished_at":"2026-11-02 09:00:00 UTC"},` + proj + `,"builds":[{"stage":"deploy","status":"success"}]}`, `missing required field "object_attributes.sha"`},
		{"Pipeline Hook", `{"object_kind":"pipeline","object_attributes":{"id":9,"ref":"main","sha":"` + sha + `","status":"success"},` + proj + `,"builds":[{"stage":"deploy","status":"success","finished_at":"soon"}]}`, `field "builds[0].finished_at"`},
		{"Pipeline Hook", `{"object_kind":"pipeline","object_attributes":{"ref":"main"},"builds":{}}`, `field "builds": expected`},
		{"Issue Hook", `{"object_kind":"issue","object_attributes":{"action":"open","type":"Incident","created_at":"2026-11-02 09:00:00 UTC"},` + proj + `}`, `missing required field "object_attributes.iid"`},
		{"Issue Hook", `{"object_kind":"issue","object_attributes":{"iid":4,"action":"open","type":"Incident"},` + proj + `}`, `missing required field "object_attributes.created_at"`},
		{"Issue Hook", `{"object_kind":"issue","object_attributes":{"iid":4,"action":"close","type":"Incident"},` + proj + `}`, `missing required field "object_attributes.updated_at"`},
		{"Issue Hook", `{"object_kind":"issue","object_attributes":{"iid":4,"action":"update","state":"opened"},` + proj + `,"changes":{"labels":{"current":"incident"}}}`, `field "changes": field "labels.current": expected`},
		{"Issue Hook", `{"object_kind":"issue","object_attributes":{"action":"open","type":"Incident","created_at":"2026-11-02 09:00:00 UTC","iid":4}}`, `missing required field "project.path_with_namespace"`},
	}
	p := provider(withRefs("main"))
	for _, tt := range tests {
		t.Run(tt.hook+"/"+tt.want, func(t *testing.T) {
			_, err := p.Parse(hooked(tt.hook, []byte(tt.body)))
			require.Error(t, err)
			assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestHandler runs deliveries through the webhook front, as the receiver
// does: status codes come from there.
func TestHandler(t *testing.T) {
	var got []event.Event
	h := webhook.NewHandler(webhook.Options{
		Routes: []webhook.Route{{Path: DefaultPath, Provider: provider()}},
		Sink: func(_ context.Context, source string, events []event.Event) (webhook.SinkResult, error) {
			assert.Equal(t, event.SourceGitLab, source)
			got = append(got, events...)
			return webhook.SinkResult{Accepted: len(events)}, nil
		},
	})
	post := func(req *webhook.Request) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, DefaultPath, strings.NewReader(string(req.Body)))
		r.Header = req.Header
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := post(hooked("Push Hook", fixture(t, "push.json")))
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.JSONEq(t, `{"status":"accepted","accepted":2}`, w.Body.String())
	assert.Len(t, got, 2)

	w = post(hooked("Pipeline Hook", fixture(t, "pipeline.json")))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), `"status":"ignored"`)

	req := hooked("Push Hook", fixture(t, "push.json"))
	req.Header.Set(TokenHeader, "wrong")
	w = post(req)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
}

func FuzzParse(f *testing.F) {
	for name, hook := range map[string]string{
		"push.json":                  "Push Hook",
		"merge_request_merged.json":  "Merge Request Hook",
		"deployment.json":            "Deployment Hook",
		"pipeline.json":              "Pipeline Hook",
		"issue_incident_opened.json": "Issue Hook",
		"issue_closed.json":          "Issue Hook",
		"docs_issue_hook.json":       "Issue Hook",
		"release.json":               "Release Hook",
		"tag_push.json":              "Tag Push Hook",
	} {
		f.Add(hook, fixture(f, name))
	}
	f.Add("System Hook", fixture(f, "push.json"))
	f.Add("Issue Hook", []byte(`{"object_kind":"work_item","object_attributes":{"iid":4,"action":"update","state":"opened","type":"Issue","labels":[{"title":"service::api"}],"created_at":"2026-11-02 09:00:00 UTC"},"project":{"path_with_namespace":"a/b"},"changes":{"type":{"previous":"Issue","current":"INCIDENT"}}}`))
	f.Add("Issue Hook", []byte(`{"object_kind":"issue","object_attributes":{"iid":4,"action":"update","state":"opened","labels":[{"title":"incident"}],"created_at":"2026-11-02 09:00:00 UTC"},"project":{"path_with_namespace":"a/b"},"changes":{"labels":{"previous":[],"current":[{"title":"incident"}]}}}`))
	f.Add("Push Hook", []byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]`))
	p := provider(withRefs("main", "v*"), func(c *Config) {
		c.ReleaseDeployments = []gitpush.ReleaseDeployment{{Repository: "*/*"}, {Repository: "*/*", Trigger: "tag"}}
	})
	f.Fuzz(func(t *testing.T, hook string, body []byte) {
		res, err := p.Parse(hooked(hook, body))
		if err != nil {
			// Refused as the sender's fault, never a 5xx or a panic.
			status := webhook.StatusOf(err)
			require.Equal(t, http.StatusBadRequest, status)
			return
		}
		if len(res.Events) == 0 {
			require.NotEmpty(t, res.Ignored, "an empty result says why")
		}
		for _, ev := range res.Events {
			require.True(t, ev.Kind.Valid())
			require.Equal(t, event.SourceGitLab, ev.Source)
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
				require.True(t, ev.Revision == "" || gitpush.IsSHA(ev.Revision))
			}
		}
	})
}

// TestDocExample keeps the example of docs/sources/gitlab.md working.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "sources", "gitlab.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "cat > deployment.json <<'JSON'\n")
	require.True(t, ok, "the doc has the example body")
	body, _, ok := strings.Cut(rest, "\nJSON\n")
	require.True(t, ok)
	res := parse(t, provider(), hooked("Deployment Hook", []byte(body+"\n")))
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.DeploymentSucceeded, res.Events[0].Kind)
	assert.Equal(t, mergeSHA, res.Events[0].Revision)
	assert.Equal(t, ts("2026-11-02T09:14:47Z"), res.Events[0].Time)
}

// GitLab's own Issue Hook example (doc/user/project/integrations/
// webhook_events.md, "Work item events"): an issue of type Issue, labelled
// API. Not an incident; the same payload as an incident is one.
func TestDocsIssueHook(t *testing.T) {
	res := parse(t, provider(), hooked("Issue Hook", fixture(t, "docs_issue_hook.json")))
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "neither of type Incident")

	// Incidents are work items: object_kind work_item, type Incident.
	incident := func(edit func(m, oa map[string]any)) []byte {
		return patched(t, "docs_issue_hook.json", func(m map[string]any) {
			m["object_kind"], m["event_type"] = "work_item", "work_item"
			oa := obj(m, "object_attributes")
			oa["type"] = "Incident"
			delete(m, "changes")
			if edit != nil {
				edit(m, oa)
			}
		})
	}
	t.Run("opened", func(t *testing.T) {
		res := parse(t, provider(), hooked("Issue Hook", incident(nil)))
		assert.Equal(t, []event.Event{{
			Kind: event.IncidentOpened, Source: event.SourceGitLab, ID: "gitlab/gitlabhq/gitlab-test/issues/23/opened",
			Time:       ts("2013-12-03T17:15:43Z"),
			Service:    event.Service{Environment: "production"},
			Repository: "gitlabhq/gitlab-test", IncidentID: "gitlab/gitlabhq/gitlab-test/issues/23",
		}}, res.Events)
	})
	t.Run("type INCIDENT, as work item types are spelled in the API", func(t *testing.T) {
		res := parse(t, provider(), hooked("Issue Hook", incident(func(_, oa map[string]any) { oa["type"] = "INCIDENT" })))
		require.Len(t, res.Events, 1)
		assert.Equal(t, event.IncidentOpened, res.Events[0].Kind)
	})
	// An alert with "create an incident" on makes the incident: the
	// GitLab Alert Bot opens it, and closes it when the alert resolves
	// (with "automatically close associated incident").
	t.Run("alert-created incident, opened and auto-closed", func(t *testing.T) {
		bot := map[string]any{"id": 7, "name": "GitLab Alert Bot", "username": "alert-bot"}
		opened := parse(t, provider(), hooked("Issue Hook", incident(func(m, oa map[string]any) {
			m["user"] = bot
			oa["title"], oa["description"] = "High error rate on api", "**Start time:** 2013-12-03T17:15:30Z"
		})))
		closed := parse(t, provider(), hooked("Issue Hook", incident(func(m, oa map[string]any) {
			m["user"] = bot
			oa["action"], oa["state"], oa["state_id"] = "close", "closed", 2
			oa["closed_at"], oa["updated_at"], oa["escalation_status"] = "2013-12-03T17:45:10Z", "2013-12-03T17:45:10Z", "resolved"
		})))
		require.Len(t, opened.Events, 1)
		require.Len(t, closed.Events, 1)
		assert.Equal(t, event.IncidentResolved, closed.Events[0].Kind)
		assert.Equal(t, ts("2013-12-03T17:45:10Z"), closed.Events[0].Time)
		assert.Equal(t, opened.Events[0].IncidentID, closed.Events[0].IncidentID)
	})
	// A service label names the service; the services setting then does
	// not need the incident project.
	t.Run("service label", func(t *testing.T) {
		body := incident(func(_, oa map[string]any) {
			oa["labels"] = []any{map[string]any{"title": "API"}, map[string]any{"title": "service::checkout"}}
		})
		res := parse(t, provider(), hooked("Issue Hook", body))
		require.Len(t, res.Events, 1)
		assert.Equal(t, "checkout", res.Events[0].Service.Name)
		assert.Equal(t, "gitlabhq/gitlab-test", res.Events[0].Repository)

		res = parse(t, provider(func(c *Config) { c.IncidentServiceLabelPrefix = "svc/" }), hooked("Issue Hook", body))
		assert.Empty(t, res.Events[0].Service.Name, "another prefix: the repository names the service")
	})
	// An issue turned into an incident opens it, at the issue's creation,
	// as the incident label added does.
	t.Run("issue turned into an incident", func(t *testing.T) {
		for _, field := range []string{"type", "issue_type"} {
			body := patched(t, "docs_issue_hook.json", func(m map[string]any) {
				obj(m, "object_attributes")["action"] = "update"
				m["changes"] = map[string]any{field: map[string]any{"previous": "Issue", "current": "Incident"}}
			})
			res := parse(t, provider(), hooked("Issue Hook", body))
			require.Len(t, res.Events, 1, field)
			assert.Equal(t, event.IncidentOpened, res.Events[0].Kind)
			assert.Equal(t, "gitlab/gitlabhq/gitlab-test/issues/23/opened", res.Events[0].ID)
			assert.Equal(t, ts("2013-12-03T17:15:43Z"), res.Events[0].Time)
		}
	})
}
