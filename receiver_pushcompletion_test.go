package dorareceiver

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A GitLab push of 25 commits through the receiver: the hook lists the
// newest 20 (GitLab's push hook example, internal/gitlab/testdata/history/
// push_hook_docs.json, with 20 commits of changed ids and timestamps and
// total_commits_count 25); the receiver fetches the other 5 from a fake
// GitLab's compare API (GitLab's documented compare example, commits with
// changed ids and times), and the deployment of the push's head ships all
// 25.
func TestGitLabLargePushCompletedThroughTheReceiver(t *testing.T) {
	readJSON := func(name string) map[string]any {
		raw, err := os.ReadFile("internal/gitlab/testdata/history/" + name)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	hook := readJSON("push_hook_docs.json")
	before, after := hook["before"].(string), hook["after"].(string)
	start := time.Date(2026, 11, 2, 7, 0, 0, 0, time.UTC)
	var listed, compared []any
	for i := range 25 {
		s := sha1.Sum(fmt.Appendf(nil, "push-%d", i))
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
	gitlab := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Private-Token") != "glpat-receiver-test" || r.URL.EscapedPath() != "/api/v4/projects/mike%2Fdiaspora/repository/compare" ||
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
	t.Cleanup(gitlab.Close)
	t.Setenv("DORA_TEST_GITLAB_API_TOKEN", "glpat-receiver-test")

	next := &flakyConsumer{}
	url := startWebhookReceiver(t, next, func(cfg *Config) {
		gl := cfg.Webhooks.GetOrInsertDefault().GitLab.GetOrInsertDefault()
		gl.Secret = testSecret
		gl.History.BaseURL, gl.History.TokenEnv = gitlab.URL, "DORA_TEST_GITLAB_API_TOKEN"
		cfg.Services = append(cfg.Services, ServiceMapping{Repository: "mike/diaspora", Namespace: "diaspora", Deployment: "diaspora"})
	})
	deploy := func(id, rev string, at time.Time) {
		t.Helper()
		b := fmt.Appendf(nil, `{"type":"deployment","id":%q,"time":%q,"repository":"mike/diaspora","environment":"production","status":"success","deployment_id":%q,"revision":%q}`,
			id, at.UTC().Format(time.RFC3339), id, rev)
		r := post(t, url+"/events", "application/json", b, true)
		require.Equal(t, http.StatusOK, r.status, r.body)
	}
	push := func() map[string]any {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url+"/webhooks/gitlab", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Gitlab-Event", "Push Hook")
		req.Header.Set("X-Gitlab-Token", testSecret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return m
	}

	deploy("d1", before, start.Add(-time.Hour))
	assert.EqualValues(t, 20, push()["accepted"], "the delivery is answered with the hook's commits")
	require.Eventually(t, func() bool { return compares.Load() == 1 }, 10*time.Second, 10*time.Millisecond)
	// The completion is applied right after GitLab's answer.
	time.Sleep(time.Second)
	assert.EqualValues(t, 0, push()["accepted"], "a redelivered hook counts nothing")
	deploy("d2", after, start.Add(time.Hour))

	md := latest(next)
	assert.EqualValues(t, 25, histogramCount(md, "platform.lead_time", map[string]string{"deployment": "diaspora"}), "every commit of the push has its lead time")
	assert.EqualValues(t, 1, compares.Load(), "the redelivered hook is not fetched again")
}
