package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/azuredevops"
	"github.com/otelcol-dora/dorareceiver/internal/bitbucket"
	"github.com/otelcol-dora/dorareceiver/internal/bitbucketdc"
	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// The stories of the VCS sources (enginetest.StoryBitbucket, ...) through
// the real otelcol-dora: each moment is the source's own delivery, built
// from its package's fixtures (the providers' published payloads) with the
// story's commits and times, signed or authenticated as the provider does.
// Before sending, each delivery is parsed by the source's provider: the
// deliveries must tell exactly the story's events (the engine's scenario
// test checks what they leave). One push is then delivered again, as a
// retry: it is answered as a duplicate. The Prometheus endpoint must show
// the story's values exactly.

const (
	vcsSecret = "e2e-vcs-secret"
	vcsRepo   = "acme/api"
)

// vcsDelivery is one delivery: where it goes, its headers and body.
type vcsDelivery struct {
	path   string
	header http.Header
	body   []byte
	parse  func(*webhook.Request) (webhook.Result, error)
}

func (d vcsDelivery) send(t *testing.T, base string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+d.path, bytes.NewReader(d.body))
	require.NoError(t, err)
	req.Header = d.header.Clone()
	return deliver(t, req)
}

// vcsFixture reads a source package's fixture as a JSON object.
func vcsFixture(t *testing.T, pkg, name string) map[string]any {
	return fixture(t, filepath.Join("..", "internal", pkg, "testdata", name))
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func at(d time.Duration) time.Time { return enginetest.At(d) }

func m(v any) map[string]any { return v.(map[string]any) }

// startVCSCollector starts otelcol-dora with the generic source and the
// given source's configuration, the story's repository mapped to shop/api.
// It returns the webhook base URL, the metrics URL and the URL of the
// collector's own telemetry.
func startVCSCollector(t *testing.T, sourceYAML string) (string, string, string) {
	t.Helper()
	webhookAddr, promAddr, healthAddr, ownPort := freeAddr(t), freeAddr(t), freeAddr(t), freePort(t)
	production, err := json.Marshal(engine.DefaultConfig().Production)
	require.NoError(t, err)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    production_environments: %s
    services:
      - {repository: %s, namespace: shop, deployment: api}
    webhooks:
      endpoint: %s
      generic: {secret: %s}
%s
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
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, production, vcsRepo, webhookAddr, genericSecret, sourceYAML, promAddr, healthAddr, ownPort), 0o600))
	runCollector(t, collectorBinary(t), []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, "http://" + promAddr + "/metrics", fmt.Sprintf("http://127.0.0.1:%d/metrics", ownPort)
}

// runVCSStory checks that the deliveries tell the story, sends them, sends
// the push retry, and checks the metrics.
func runVCSStory(t *testing.T, name string, base, metrics string, deliveries []vcsDelivery, retry int) {
	t.Helper()
	story := scenarioNamed(t, name)
	var told []event.Event
	for i, d := range deliveries {
		res, err := d.parse(&webhook.Request{Header: d.header, Body: bytes.Clone(d.body), Received: time.Now()})
		require.NoError(t, err, "delivery %d", i)
		require.NotEmpty(t, res.Events, "delivery %d: %s", i, res.Ignored)
		told = append(told, res.Events...)
	}
	require.Len(t, told, len(story.Events), "the deliveries tell the story's events")
	for i, ev := range told {
		want := story.Events[i]
		assert.Equal(t, want.Kind, ev.Kind, "event %d", i)
		assert.Equal(t, want.Source, ev.Source, "event %d", i)
		assert.True(t, want.Time.Equal(ev.Time), "event %d: time %s, want %s", i, ev.Time, want.Time)
		assert.Equal(t, want.Revision, ev.Revision, "event %d", i)
		assert.Equal(t, want.ParentRevision, ev.ParentRevision, "event %d", i)
		assert.Equal(t, want.ChangeID, ev.ChangeID, "event %d", i)
		assert.Equal(t, want.Reason, ev.Reason, "event %d", i)
		if want.Service.Name != "" {
			// The receiver names the service from the repository (the
			// services setting) or the sender's hint.
			assert.Equal(t, want.Service.Environment, ev.Service.Environment, "event %d", i)
			assert.True(t, strings.EqualFold(ev.Repository, vcsRepo) || ev.Service.Name == want.Service.Name, "event %d names shop/api: %+v", i, ev)
		}
	}
	for i, d := range deliveries {
		a := d.send(t, base)
		require.Equal(t, http.StatusOK, a.status, "delivery %d: %v", i, a.body)
		require.NotZero(t, a.body["accepted"], "delivery %d: %v", i, a.body)
	}
	a := deliveries[retry].send(t, base)
	require.Equal(t, http.StatusOK, a.status, "retry: %v", a.body)
	assert.EqualValues(t, 0, a.body["accepted"], "a retry changes nothing: %v", a.body)
	assert.NotZero(t, a.body["duplicates"], "a retry is a duplicate: %v", a.body)
	checkScenarioMetrics(t, scrape(t, metrics), story.Want)
}

func TestBitbucketStoryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	v := enginetest.BitbucketStory
	cfg := bitbucket.DefaultConfig()
	cfg.Secret = vcsSecret
	cfg.DeploymentStatuses = []string{"Pipeline #*"}
	p := bitbucket.New(cfg)
	n := 0
	send := func(kind string, body []byte) vcsDelivery {
		n++
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set(bitbucket.EventHeader, kind)
		h.Set(bitbucket.DeliveryHeader, fmt.Sprintf("6f1c2d3e-0000-4000-8000-%012d", n))
		h.Set(bitbucket.SignatureHeader, "sha256="+webhook.SignHMACSHA256(vcsSecret, body))
		return vcsDelivery{path: bitbucket.DefaultPath, header: h, body: body, parse: p.Parse}
	}
	push := func(branch, rev, parent, message string, when time.Duration) vcsDelivery {
		pl := vcsFixture(t, "bitbucket", "repo-push.json")
		m(pl["repository"])["full_name"] = vcsRepo
		change := m(m(pl["push"])["changes"].([]any)[0])
		m(change["new"])["name"] = branch
		c := m(change["commits"].([]any)[0])
		c["hash"], c["date"], c["message"] = rev, at(when).Format(time.RFC3339), message
		c["parents"] = []any{map[string]any{"hash": parent}}
		change["commits"], change["truncated"] = []any{c}, false
		return send("repo:push", jsonBody(t, pl))
	}
	status := func(state, rev string, run int, started, updated time.Duration) vcsDelivery {
		pl := vcsFixture(t, "bitbucket", "commit-status-updated.json")
		m(pl["repository"])["full_name"] = vcsRepo
		cs := m(pl["commit_status"])
		cs["state"], cs["key"], cs["name"] = state, "deploy", fmt.Sprintf("Pipeline #%d for main", run)
		cs["created_on"], cs["updated_on"] = at(started).Format(time.RFC3339Nano), at(updated).Format(time.RFC3339Nano)
		m(m(cs["links"])["commit"])["href"] = "https://api.bitbucket.org/2.0/repositories/acme/api/commit/" + rev
		kind := "repo:commit_status_updated"
		if state == "INPROGRESS" {
			kind = "repo:commit_status_created"
		}
		return send(kind, jsonBody(t, pl))
	}
	deliveries := []vcsDelivery{
		push("feature", v.Branch, v.Base, "Add the feature\n", enginetest.VCSBranchAt),
		push("main", v.Merge, v.Base, "Merged in feature (pull request #7)\n\nAdd the feature\n", enginetest.VCSMergedAt),
		status("INPROGRESS", v.Merge, 1, enginetest.VCSD1Start, enginetest.VCSD1Start),
		status("SUCCESSFUL", v.Merge, 1, enginetest.VCSD1Start, enginetest.VCSD1Done),
		push("main", v.R2, v.Merge, "Change two\n", enginetest.VCSR2At),
		status("INPROGRESS", v.R2, 2, enginetest.VCSD2Start, enginetest.VCSD2Start),
		status("FAILED", v.R2, 2, enginetest.VCSD2Start, enginetest.VCSD2Failed),
		push("main", v.R3, v.R2, "Change three\n", enginetest.VCSR3At),
		status("INPROGRESS", v.R3, 3, enginetest.VCSD3Start, enginetest.VCSD3Start),
		status("SUCCESSFUL", v.R3, 3, enginetest.VCSD3Start, enginetest.VCSD3Done),
	}
	base, metrics, _ := startVCSCollector(t, fmt.Sprintf(`      bitbucket: {secret: %s, deployment_statuses: ["Pipeline #*"]}`, vcsSecret))
	runVCSStory(t, enginetest.StoryBitbucket, base, metrics, deliveries, 1)
}

func TestBitbucketDCStoryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	v := enginetest.BitbucketDCStory
	cfg := bitbucketdc.DefaultConfig()
	cfg.Secret = vcsSecret
	p := bitbucketdc.New(cfg)
	n := 0
	send := func(kind string, body []byte) vcsDelivery {
		n++
		h := http.Header{}
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set(bitbucketdc.EventHeader, kind)
		h.Set(bitbucketdc.DeliveryHeader, fmt.Sprintf("0d0c0b0a-0000-4000-8000-%012d", n))
		h.Set(bitbucketdc.SignatureHeader, "sha256="+webhook.SignHMACSHA256(vcsSecret, body))
		return vcsDelivery{path: bitbucketdc.DefaultPath, header: h, body: body, parse: p.Parse}
	}
	push := func(branch, rev, parent string, when time.Duration) vcsDelivery {
		pl := vcsFixture(t, "bitbucketdc", "refs-changed-commits.json")
		repo := m(pl["repository"])
		repo["slug"] = "api"
		m(repo["project"])["key"] = "ACME"
		ch := m(pl["changes"].([]any)[0])
		ch["refId"], ch["fromHash"], ch["toHash"] = "refs/heads/"+branch, parent, rev
		m(ch["ref"])["id"], m(ch["ref"])["displayId"] = "refs/heads/"+branch, branch
		c := m(pl["commits"].([]any)[0])
		c["id"], c["displayId"], c["committerTimestamp"] = rev, rev[:11], at(when).UnixMilli()
		c["parents"] = []any{map[string]any{"id": parent, "displayId": parent[:11]}}
		pl["commits"] = []any{c}
		delete(pl, "toCommit")
		return send("repo:refs_changed", jsonBody(t, pl))
	}
	merged := func() vcsDelivery {
		pl := vcsFixture(t, "bitbucketdc", "pr-merged.json")
		pr := m(pl["pullRequest"])
		pr["id"], pr["closedDate"] = 7, at(enginetest.VCSMergedAt).UnixMilli()
		to := m(m(pr["toRef"])["repository"])
		to["slug"] = "api"
		m(to["project"])["key"] = "ACME"
		m(m(pr["properties"])["mergeCommit"])["id"] = v.Merge
		return send("pr:merged", jsonBody(t, pl))
	}
	// The deployments are a CI system's, through the generic source.
	generic := func(i int) vcsDelivery {
		story := scenarioNamed(t, enginetest.StoryBitbucketDC)
		body := genericDelivery(t, story.Events[i])
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("X-Signature-256", "sha256="+webhook.SignHMACSHA256(genericSecret, body))
		return vcsDelivery{path: "/events", header: h, body: body, parse: func(req *webhook.Request) (webhook.Result, error) {
			// genericDelivery checked that it is the story's event, but for
			// its source: the generic source's.
			return webhook.Result{Events: []event.Event{story.Events[i]}}, nil
		}}
	}
	deliveries := []vcsDelivery{
		push("feature", v.Branch, v.Base, enginetest.VCSBranchAt),
		push("main", v.Merge, v.Base, enginetest.VCSMergedAt),
		merged(),
		generic(3), generic(4),
		push("main", v.R2, v.Merge, enginetest.VCSR2At),
		generic(6), generic(7),
		push("main", v.R3, v.R2, enginetest.VCSR3At),
		generic(9), generic(10),
	}
	base, metrics, own := startVCSCollector(t, fmt.Sprintf(`      bitbucket_dc: {secret: %s}`, vcsSecret))
	runVCSStory(t, enginetest.StoryBitbucketDC, base, metrics, deliveries, 0)

	// A push from a version that lists no commits: its new head at the
	// push's time, counted apart as an approximation, once (not again when
	// it is retried).
	const approx = "otelcol_dora_approximate_times"
	assert.Zero(t, ownCounter(t, own, approx, `source="bitbucket_dc"`), "the story's pushes list their commits")
	pl := vcsFixture(t, "bitbucketdc", "refs-changed-commits.json")
	delete(pl, "commits")
	delete(pl, "toCommit")
	m(m(pl["repository"])["project"])["key"] = "ACME"
	m(pl["repository"])["slug"] = "api"
	m(pl["changes"].([]any)[0])["toHash"] = enginetest.SHA("bitbucket_dc/r4")
	pl["date"] = at(70 * time.Minute).Format("2006-01-02T15:04:05-0700")
	tip := send("repo:refs_changed", jsonBody(t, pl))
	for range 2 {
		a := tip.send(t, base)
		require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	}
	assert.Equal(t, 1.0, ownCounter(t, own, approx, `source="bitbucket_dc"`))
}

func TestAzureDevOpsStoryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	v := enginetest.AzureDevOpsStory
	cfg := azuredevops.DefaultConfig()
	cfg.Token = vcsSecret
	cfg.Pipelines = []azuredevops.PipelineConfig{{Name: "api-cd", Repository: vcsRepo}}
	p := azuredevops.New(cfg)
	n := 0
	send := func(pl map[string]any) vcsDelivery {
		n++
		pl["id"] = fmt.Sprintf("a2d0e000-0000-4000-8000-%012d", n)
		body := jsonBody(t, pl)
		h := http.Header{}
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("dora:"+vcsSecret)))
		return vcsDelivery{path: azuredevops.DefaultPath, header: h, body: body, parse: p.Parse}
	}
	push := func(branch, rev, parent string, when time.Duration) vcsDelivery {
		pl := vcsFixture(t, "azuredevops", "git.push.json")
		r := m(pl["resource"])
		repo := m(r["repository"])
		repo["name"] = "api"
		m(repo["project"])["name"] = "acme"
		r["refUpdates"] = []any{map[string]any{"name": "refs/heads/" + branch, "oldObjectId": parent, "newObjectId": rev}}
		c := m(r["commits"].([]any)[0])
		c["commitId"] = rev
		m(c["committer"])["date"] = at(when).Format(time.RFC3339)
		r["commits"] = []any{c}
		return send(pl)
	}
	merged := func() vcsDelivery {
		pl := vcsFixture(t, "azuredevops", "git.pullrequest.merged.json")
		r := m(pl["resource"])
		r["pullRequestId"], r["closedDate"] = 7, at(enginetest.VCSMergedAt).Format(time.RFC3339Nano)
		m(r["lastMergeCommit"])["commitId"] = v.Merge
		repo := m(r["repository"])
		repo["name"] = "api"
		m(repo["project"])["name"] = "acme"
		return send(pl)
	}
	run := func(id int, rev, state, result string, created, finished time.Duration) vcsDelivery {
		pl := vcsFixture(t, "azuredevops", "run-state-changed.json")
		r := m(pl["resource"])
		m(r["pipeline"])["name"] = "api-cd"
		ru := m(r["run"])
		m(ru["pipeline"])["name"] = "api-cd"
		ru["id"], ru["name"], ru["state"], ru["result"] = id, fmt.Sprint(id), state, result
		ru["createdDate"], ru["finishedDate"] = at(created).Format(time.RFC3339Nano), at(finished).Format(time.RFC3339Nano)
		ru["resources"] = map[string]any{"repositories": map[string]any{"self": map[string]any{"refName": "refs/heads/main", "version": rev}}}
		return send(pl)
	}
	deliveries := []vcsDelivery{
		push("feature", v.Branch, v.Base, enginetest.VCSBranchAt),
		push("main", v.Merge, v.Base, enginetest.VCSMergedAt),
		merged(),
		run(101, v.Merge, "inProgress", "", enginetest.VCSD1Start, enginetest.VCSD1Start),
		run(101, v.Merge, "completed", "succeeded", enginetest.VCSD1Start, enginetest.VCSD1Done),
		push("main", v.R2, v.Merge, enginetest.VCSR2At),
		run(102, v.R2, "inProgress", "", enginetest.VCSD2Start, enginetest.VCSD2Start),
		run(102, v.R2, "completed", "failed", enginetest.VCSD2Start, enginetest.VCSD2Failed),
		push("main", v.R3, v.R2, enginetest.VCSR3At),
		run(103, v.R3, "inProgress", "", enginetest.VCSD3Start, enginetest.VCSD3Start),
		run(103, v.R3, "completed", "succeeded", enginetest.VCSD3Start, enginetest.VCSD3Done),
	}
	base, metrics, _ := startVCSCollector(t, fmt.Sprintf(`      azuredevops: {token: %s, pipelines: [{name: api-cd, repository: %s}]}`, vcsSecret, vcsRepo))
	runVCSStory(t, enginetest.StoryAzureDevOps, base, metrics, deliveries, 5)
}
