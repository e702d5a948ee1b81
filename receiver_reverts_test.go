package dorareceiver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Reverts and hotfixes read from GitHub, through the receiver: GitHub
// deliveries (the github source's real-shaped fixtures, with only the
// fields named below changed) and deployments from the generic source.

// githubFixture is internal/github/testdata/<name> with edit applied.
func githubFixture(t *testing.T, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	raw, err := os.ReadFile("internal/github/testdata/" + name)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func postGitHub(t *testing.T, url, kind, delivery string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/webhooks/github", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", kind)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.SignHMACSHA256(testSecret, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s", kind, delivery)
}

func postDeployment(t *testing.T, url, id, rev string, at time.Time) {
	t.Helper()
	body := fmt.Appendf(nil, `{"type":"deployment","id":%q,"time":%q,"repository":"acme/api","environment":"production","status":"success","deployment_id":%q,"revision":%q}`,
		id, at.UTC().Format(time.RFC3339), id, rev)
	r := post(t, url+"/events", "application/json", body, true)
	require.Equal(t, http.StatusOK, r.status, r.body)
}

func startGitHubReceiver(t *testing.T, next *flakyConsumer, edit func(*Config)) string {
	return startWebhookReceiver(t, next, func(cfg *Config) {
		cfg.Webhooks.GetOrInsertDefault().GitHub.GetOrInsertDefault().Secret = testSecret
		if edit != nil {
			edit(cfg)
		}
	})
}

// The head of testdata/push.json, the last of its three commits.
const pushedHead = "a625406f6977d45c1391b078f4d3656e0b75bfcb"

func TestGitHubRevertCommitFailsTheDeploymentThatShippedIt(t *testing.T) {
	next := &flakyConsumer{}
	url := startGitHubReceiver(t, next, nil)
	d1 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC) // after the push's commits

	postGitHub(t, url, "push", "push-1", githubFixture(t, "push.json", nil))
	postDeployment(t, url, "d1", pushedHead, d1)

	// git revert of the head, pushed on top of it: push.json with its last
	// commit given a new id, time and git revert's message.
	const revertSHA = "e5b1c0a2d3f4e5a6b7c8d9e0f1a2b3c4d5e6f7a8"
	revertPush := githubFixture(t, "push.json", func(m map[string]any) {
		commits := m["commits"].([]any)
		c := commits[len(commits)-1].(map[string]any)
		c["id"] = revertSHA
		c["timestamp"] = "2026-11-02T09:10:00Z"
		c["message"] = "Revert \"Document the export endpoint\"\n\nThis reverts commit " + pushedHead + ".\n"
		m["commits"] = []any{c}
		m["before"], m["after"] = pushedHead, revertSHA
	})
	postGitHub(t, url, "push", "push-2", revertPush)
	postDeployment(t, url, "d2", revertSHA, d1.Add(30*time.Minute))

	api := map[string]string{"namespace": "shop", "deployment": "api"}
	md := latest(next)
	v, _ := counterValue(md, "platform.deployments", map[string]string{"deployment": "api", "status": "success"})
	assert.EqualValues(t, 2, v)
	v, ok := counterValue(md, "platform.deployment.failures", map[string]string{"deployment": "api", "reason": "revert"})
	assert.True(t, ok, "d1 failed: its head was reverted")
	assert.EqualValues(t, 1, v)
	v, ok = counterValue(md, "platform.deployments.rework", api)
	assert.True(t, ok, "d2 ships a revert: rework")
	assert.EqualValues(t, 1, v)
}

func TestGitHubHotfixLabelMakesTheDeploymentAHotfix(t *testing.T) {
	next := &flakyConsumer{}
	url := startGitHubReceiver(t, next, func(cfg *Config) {
		cfg.Webhooks.GetOrInsertDefault().GitHub.GetOrInsertDefault().HotfixLabels = []string{"hotfix"}
	})
	postGitHub(t, url, "push", "push-1", githubFixture(t, "push.json", nil))
	postDeployment(t, url, "d1", pushedHead, time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))

	// testdata/pull_request_merged.json (merged at 09:03:16) with a hotfix
	// label, as GitHub writes labels.
	merged := githubFixture(t, "pull_request_merged.json", func(m map[string]any) {
		m["pull_request"].(map[string]any)["labels"] = []any{map[string]any{
			"id": 208045946, "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=", "url": "https://api.github.com/repos/acme/api/labels/hotfix",
			"name": "hotfix", "description": "Fixes production", "color": "f29513", "default": false,
		}}
	})
	postGitHub(t, url, "pull_request", "pr-1287", merged)
	postDeployment(t, url, "d2", "14091a9f2461267ee7e02525b4f1f2923f1c9849", time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC))

	md := latest(next)
	v, ok := counterValue(md, "platform.deployment.failures", map[string]string{"deployment": "api", "reason": "hotfix"})
	assert.True(t, ok, "the deployment the hotfix follows failed")
	assert.EqualValues(t, 1, v)
	v, ok = counterValue(md, "platform.deployments.rework", map[string]string{"deployment": "api"})
	assert.True(t, ok, "the hotfix is rework")
	assert.EqualValues(t, 1, v)
}

// A GitLab revert merge request names the merge request it reverts ("This
// reverts merge request !57"); the receiver resolves it to !57's merge
// commit, known from !57's own Merge Request Hook.
func TestGitLabRevertMergeRequestFailsTheDeploymentThatShippedTheReverted(t *testing.T) {
	next := &flakyConsumer{}
	url := startWebhookReceiver(t, next, func(cfg *Config) {
		cfg.Webhooks.GetOrInsertDefault().GitLab.GetOrInsertDefault().Secret = testSecret
		cfg.Services = append(cfg.Services, ServiceMapping{Repository: "acme/platform/billing", Namespace: "billing", Deployment: "billing"})
	})
	postGitLab := func(body []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url+"/webhooks/gitlab", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
		req.Header.Set("X-Gitlab-Token", testSecret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	deploy := func(id, rev string, at time.Time) {
		t.Helper()
		body := fmt.Appendf(nil, `{"type":"deployment","id":%q,"time":%q,"repository":"acme/platform/billing","environment":"production","status":"success","deployment_id":%q,"revision":%q}`,
			id, at.UTC().Format(time.RFC3339), id, rev)
		r := post(t, url+"/events", "application/json", body, true)
		require.Equal(t, http.StatusOK, r.status, r.body)
	}
	fixture := func(edit func(mr map[string]any)) []byte {
		raw, err := os.ReadFile("internal/gitlab/testdata/merge_request_merged.json")
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		if edit != nil {
			edit(m["object_attributes"].(map[string]any))
		}
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	const merged57 = "9d6fcbe347704e55e8adb18ed54e7ed7a3aa5204" // the fixture's merge_commit_sha
	const merged58 = "5b0e6d1c2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d"

	postGitLab(fixture(nil)) // !57, merged 09:03:16
	deploy("d1", merged57, time.Date(2026, 11, 2, 9, 10, 0, 0, time.UTC))
	// !58, opened by GitLab's Revert button on !57: only its iid, title,
	// description, source branch, merge commit and merge time changed.
	postGitLab(fixture(func(mr map[string]any) {
		mr["iid"] = 58
		mr["title"] = `Revert "Round invoice totals half-even"`
		mr["description"] = "This reverts merge request !57"
		mr["source_branch"] = "revert-9d6fcbe3"
		mr["merge_commit_sha"] = merged58
		mr["updated_at"] = "2026-11-02 09:40:00 UTC"
	}))
	deploy("d2", merged58, time.Date(2026, 11, 2, 9, 45, 0, 0, time.UTC))

	md := latest(next)
	v, ok := counterValue(md, "platform.deployment.failures", map[string]string{"deployment": "billing", "reason": "revert"})
	assert.True(t, ok, "d1 shipped !57, which !58 reverts")
	assert.EqualValues(t, 1, v)
	v, ok = counterValue(md, "platform.deployments.rework", map[string]string{"deployment": "billing"})
	assert.True(t, ok, "d2 ships the revert: rework")
	assert.EqualValues(t, 1, v)
}
