package e2e

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/gitlab"
)

// TestGitLabLargePushEndToEnd sends the binary a GitLab push of 25
// commits whose hook lists the newest 20 (GitLab's push hook example,
// internal/gitlab/testdata/history/push_hook_docs.json, with 20 commits of
// changed ids and timestamps and total_commits_count 25). With a token set
// (history::token_env), the binary fetches the push from a fake GitLab on
// 127.0.0.1 serving the documented compare shape, and the deployment of
// the push's head, sent through the generic source, has 25 lead times.
func TestGitLabLargePushEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	readJSON := func(name string) map[string]any {
		raw, err := os.ReadFile(filepath.Join("..", "internal", "gitlab", "testdata", "history", name))
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	hook := readJSON("push_hook_docs.json")
	before, after := hook["before"].(string), hook["after"].(string)
	start := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	var listed, compared []any
	for i := range 25 {
		s := sha1.Sum(fmt.Appendf(nil, "e2e-push-%d", i))
		id := hex.EncodeToString(s[:])
		if i == 24 {
			id = after
		}
		at := start.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		c := readJSON("compare.json")["commits"].([]any)[0].(map[string]any)
		c["id"], c["short_id"], c["created_at"] = id, id[:11], at
		compared = append(compared, c)
		if i >= 5 {
			h := map[string]any{}
			for k, v := range hook["commits"].([]any)[0].(map[string]any) {
				h[k] = v
			}
			h["id"], h["timestamp"] = id, at
			listed = append(listed, h)
		}
	}
	hook["commits"], hook["total_commits_count"] = listed, 25
	body, err := json.Marshal(hook)
	require.NoError(t, err)

	var compares atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Private-Token") != "glpat-e2e" || r.URL.EscapedPath() != "/api/v4/projects/mike%2Fdiaspora/repository/compare" ||
			r.URL.Query().Get("from") != before || r.URL.Query().Get("to") != after {
			http.Error(w, `{"message":"404 Not found"}`, http.StatusNotFound)
			return
		}
		compares.Add(1)
		c := readJSON("compare.json")
		c["commits"], c["commit"] = compared, compared[24]
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
	}))
	t.Cleanup(api.Close)

	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    services:
      - {repository: mike/diaspora, namespace: diaspora, deployment: diaspora}
    webhooks:
      endpoint: %s
      generic: {secret: %s}
      gitlab:
        secret: %s
        history: {base_url: %q, token_env: DORA_E2E_GITLAB_API_TOKEN}
exporters:
  prometheus:
    endpoint: %s
    without_scope_info: true
extensions:
  health_check:
    endpoint: %s
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, webhookAddr, genericSecret, gitlabToken, api.URL, promAddr, healthAddr), 0o600))
	runCollector(t, bin, []string{"--config", config}, []string{"DORA_E2E_GITLAB_API_TOKEN=glpat-e2e"}, healthAddr)
	base := "http://" + webhookAddr

	deploy := func(id, rev string, at time.Time) {
		t.Helper()
		b := fmt.Appendf(nil, `{"type":"deployment","id":%q,"time":%q,"repository":"mike/diaspora","environment":"production","status":"success","deployment_id":%q,"revision":%q}`,
			id, at.Format(time.RFC3339), id, rev)
		a := sendGeneric(t, base, b)
		require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	}
	push := func() answer {
		req := newJSONRequest(t, base+gitlab.DefaultPath, body)
		req.Header.Set(gitlab.EventHeader, "Push Hook")
		req.Header.Set(gitlab.TokenHeader, gitlabToken)
		return deliver(t, req)
	}

	deploy("d1", before, start.Add(-time.Hour))
	a := push()
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	assert.EqualValues(t, 20, a.body["accepted"], "answered with the hook's commits")
	require.Eventually(t, func() bool { return compares.Load() == 1 }, 20*time.Second, 20*time.Millisecond)
	// The completion is applied right after GitLab's answer.
	time.Sleep(time.Second)
	a = push()
	assert.EqualValues(t, 20, a.body["duplicates"], "a redelivered hook counts nothing: %v", a.body)
	deploy("d2", after, start.Add(time.Hour))

	svc := map[string]string{"deployment": "diaspora", "environment": "production"}
	assert.Equal(t, 25.0, scrape(t, "http://"+promAddr+"/metrics").sum("platform_lead_time_seconds_count", svc), "every commit of the push has its lead time")
	assert.EqualValues(t, 1, compares.Load(), "the redelivered hook is not fetched again")
}
