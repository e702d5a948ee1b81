package e2e

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// The CI stories (enginetest.StoryJenkins, StoryTekton, StoryReleases)
// through the real otelcol-dora: each moment told by the source that tells
// it in a real delivery, signed or authenticated as it is in production,
// and the Prometheus endpoint checked against the story's values exactly.

// ciCollector runs otelcol-dora with the GitHub source (tags of acme/api
// are its deployments), the otlp source (Jenkins' Deploy stage is a
// deployment, bearer token), the cdevents source (Tekton's deploy-api
// pipeline), acme/api mapped to shop/api, and the Prometheus exporter.
func ciCollector(t *testing.T, bin string) (string, string) {
	return ciCollectorTriggered(t, bin, "tag")
}

// ciCollectorTriggered is ciCollector with the release_deployments trigger
// of acme/api.
func ciCollectorTriggered(t *testing.T, bin, trigger string) (string, string) {
	t.Helper()
	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	production, err := json.Marshal(engine.DefaultConfig().Production)
	require.NoError(t, err)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    production_environments: %s
    services:
      - repository: acme/api
        namespace: shop
        deployment: api
    webhooks:
      endpoint: %s
      github:
        secret: %s
        release_deployments:
          - repository: acme/api
            trigger: %s
      otlp:
        deployment_tasks: [Deploy]
        auth:
          authenticator: bearertokenauth/ci
      cdevents:
        token: %s
        deployment_pipelines:
          - pipeline: deploy-api
exporters:
  prometheus:
    endpoint: %s
    without_scope_info: true
extensions:
  health_check:
    endpoint: %s
  bearertokenauth/ci:
    token: %s
service:
  extensions: [health_check, bearertokenauth/ci]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, production, webhookAddr, githubSecret, trigger, cdeventsToken, promAddr, healthAddr, otlpToken), 0o600))
	runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, "http://" + promAddr + "/metrics"
}

// storySHA turns a story's revision name into a commit SHA.
func storySHA(story, rev string) string {
	s := sha1.Sum([]byte(story + "/" + rev))
	return hex.EncodeToString(s[:])
}

// replayCIStory sends the story's pushes (and incidents) through the GitHub
// source and its deployments through deploy, then checks the metrics.
func replayCIStory(t *testing.T, name string, deploy func(t *testing.T, base string, ev event.Event) answer) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	story := scenarioNamed(t, name)
	require.NotEmpty(t, story.EngineOnly)
	base, metricsURL := ciCollector(t, collectorBinary(t))
	sha := func(rev string) string { return storySHA(name, rev) }
	for i, ev := range story.Events {
		if ev.Kind != event.ChangeCommitted {
			require.Equal(t, enginetest.API, ev.Service, "event %d: the story is about shop/api (acme/api)", i)
		}
		var a answer
		switch {
		case ev.Kind == event.ChangeCommitted:
			require.Equal(t, event.SourceGitHub, ev.Source)
			push := fixture(t, "../internal/github/testdata/push.json")
			commit := maps.Clone(push["commits"].([]any)[0].(map[string]any))
			commit["id"], commit["timestamp"] = sha(ev.Revision), ev.Time.Format(time.RFC3339)
			push["before"], push["after"] = sha(ev.ParentRevision), sha(ev.Revision)
			push["commits"], push["head_commit"] = []any{commit}, commit
			a = sendGitHub(t, base, "push", "push-"+ev.ID, push)
		case ev.Kind == event.IncidentOpened || ev.Kind == event.IncidentResolved:
			require.Equal(t, event.SourceGitHub, ev.Source)
			file, action := "issues_opened.json", "opened"
			if ev.Kind == event.IncidentResolved {
				file, action = "issues_closed.json", "closed"
			}
			iss := fixture(t, "../internal/github/testdata/"+file)
			issue := iss["issue"].(map[string]any)
			iss["action"] = action
			opened := story.Events[i].Time
			for _, o := range story.Events {
				if o.Kind == event.IncidentOpened && o.IncidentID == ev.IncidentID {
					opened = o.Time
				}
			}
			issue["created_at"] = opened.Format(time.RFC3339)
			issue["updated_at"] = ev.Time.Format(time.RFC3339)
			if action == "closed" {
				issue["closed_at"] = ev.Time.Format(time.RFC3339)
			}
			a = sendGitHub(t, base, "issues", "issue-"+ev.ID, iss)
		default:
			a = deploy(t, base, ev)
		}
		require.Equal(t, http.StatusOK, a.status, "event %d (%s): %v", i, ev.ID, a.body)
		if a.body != nil { // OTLP answers carry no accepted count
			require.EqualValues(t, 1, a.body["accepted"], "event %d (%s): %v", i, ev.ID, a.body)
		}
	}
	checkScenarioMetrics(t, scrape(t, metricsURL), story.Want)
}

// TestJenkinsStoryEndToEnd replays enginetest.StoryJenkins: each deployment
// is a build trace as the Jenkins OpenTelemetry plugin exports it (root
// span with ci.pipeline.*, the checkout span's git.repository, a Deploy
// stage with jenkins.pipeline.step.* and the revision of the documented
// Jenkinsfile snippet), sent over OTLP/HTTP with the bearer token; each
// export is sent twice (an exporter's retry), counted once.
func TestJenkinsStoryEndToEnd(t *testing.T) {
	replayCIStory(t, enginetest.StoryJenkins, func(t *testing.T, base string, ev event.Event) answer {
		result := map[event.Kind]string{event.DeploymentSucceeded: "SUCCESS", event.DeploymentFailed: "FAILURE"}[ev.Kind]
		require.NotEmpty(t, result, "%s: Jenkins reports finished builds", ev.ID)
		var trace pcommon.TraceID
		copy(trace[:], []byte(("jenkins-" + ev.DeploymentID + "________")[:16]))
		td := ptrace.NewTraces()
		rev := storySHA(enginetest.StoryJenkins, ev.Revision)
		res := []string{"resource:service.name=jenkins", "resource:jenkins.opentelemetry.plugin.version=3.1543.v5b_a_7e2d2d4b_1"}
		addSpan(td, trace, "checkout: github.com/acme/api", 2, 1, ev.Time.Add(-4*time.Minute),
			append([]string{"jenkins.pipeline.step.type=checkout", "git.repository=acme/api"}, res...)...)
		addSpan(td, trace, "Stage: Deploy", 3, 1, ev.Time,
			append([]string{"jenkins.pipeline.step.type=stage", "jenkins.pipeline.step.name=Deploy",
				"jenkins.pipeline.step.result=" + result, "vcs.ref.head.revision=" + rev}, res...)...)
		addSpan(td, trace, "BUILD deploy-api", 1, 0, ev.Time.Add(time.Second),
			append([]string{"ci.pipeline.id=deploy-api", "ci.pipeline.run.result=" + result}, res...)...)
		body := exportJSON(t, td)
		for range 2 {
			status, raw := postTraces(t, base, "Bearer "+otlpToken, body)
			require.Equal(t, http.StatusOK, status, raw)
		}
		return answer{status: http.StatusOK}
	})
}

// TestTektonStoryEndToEnd replays enginetest.StoryTekton: each deployment
// is the PipelineRun event Tekton sends (binary mode, the token in the
// sink URL), its revision a pipeline result, its repository a param; each
// is sent again with a new Ce-Id (Tekton after a restart), counted once.
func TestTektonStoryEndToEnd(t *testing.T) {
	replayCIStory(t, enginetest.StoryTekton, func(t *testing.T, base string, ev event.Event) answer {
		state, status, reason := "successful", "True", "Succeeded"
		if ev.Kind == event.DeploymentFailed {
			state, status, reason = "failed", "False", "Failed"
		}
		body, err := json.Marshal(map[string]any{"pipelineRun": map[string]any{
			"metadata": map[string]any{"name": "deploy-api-" + ev.DeploymentID, "namespace": "ci", "uid": "uid-" + ev.DeploymentID,
				"labels": map[string]string{"tekton.dev/pipeline": "deploy-api"}},
			"spec": map[string]any{"pipelineRef": map[string]string{"name": "deploy-api"},
				"params": []map[string]string{{"name": "repo-url", "value": "https://github.com/acme/api.git"}}},
			"status": map[string]any{"completionTime": ev.Time.Format(time.RFC3339),
				"conditions":      []map[string]string{{"type": "Succeeded", "status": status, "reason": reason}},
				"pipelineResults": []map[string]string{{"name": "commit", "value": storySHA(enginetest.StoryTekton, ev.Revision)}}},
		}})
		require.NoError(t, err)
		var last answer
		for i := range 2 {
			req, err := http.NewRequest(http.MethodPost, base+"/webhooks/cdevents?access_token="+cdeventsToken, bytes.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Ce-Specversion", "1.0")
			req.Header.Set("Ce-Id", ev.ID+"-"+strconv.Itoa(i))
			req.Header.Set("Ce-Source", "/apis/tekton.dev/v1beta1/namespaces/ci/pipelineruns/deploy-api-"+ev.DeploymentID)
			req.Header.Set("Ce-Type", "dev.tekton.event.pipelinerun."+state+".v1")
			a := deliver(t, req)
			if i == 0 {
				last = a
			} else {
				require.EqualValues(t, 1, a.body["duplicates"], "re-sent: %v", a.body)
			}
		}
		return last
	})
}

// TestReleasesStoryEndToEnd replays enginetest.StoryReleases: the releases
// are pushes of tags (release_deployments, trigger tag) whose head_commit
// is the tagged commit; the incident is an issue labelled incident.
func TestReleasesStoryEndToEnd(t *testing.T) {
	replayCIStory(t, enginetest.StoryReleases, func(t *testing.T, base string, ev event.Event) answer {
		require.Equal(t, event.DeploymentSucceeded, ev.Kind)
		tag := fixture(t, "../internal/github/testdata/push_tag.json")
		tag["ref"] = "refs/tags/" + ev.DeploymentID
		commit := tag["head_commit"].(map[string]any)
		commit["id"] = storySHA(enginetest.StoryReleases, ev.Revision)
		tag["repository"].(map[string]any)["pushed_at"] = ev.Time.Unix()
		return sendGitHub(t, base, "push", "tag-"+ev.ID, tag)
	})
}

// TestGitHubReleaseEndToEnd: with trigger release, GitHub's published
// release (its example payload, target_commitish a branch) is the
// deployment; its commit is the one the tag's push named, which came
// first; the commit pushed before gets its lead time from the release.
func TestGitHubReleaseEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	base, metricsURL := ciCollectorTriggered(t, collectorBinary(t), "release")
	pushedAt := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	publishedAt := pushedAt.Add(45 * time.Minute)
	sha := storySHA("release", "r1")

	push := fixture(t, "../internal/github/testdata/push.json")
	commit := maps.Clone(push["commits"].([]any)[0].(map[string]any))
	commit["id"], commit["timestamp"] = sha, pushedAt.Format(time.RFC3339)
	push["before"], push["after"] = storySHA("release", "r0"), sha
	push["commits"], push["head_commit"] = []any{commit}, commit
	a := sendGitHub(t, base, "push", "release-push", push)
	require.EqualValues(t, 1, a.body["accepted"], "%v", a.body)

	tag := fixture(t, "../internal/github/testdata/push_tag.json")
	tag["ref"] = "refs/tags/v2.0.0"
	tag["head_commit"].(map[string]any)["id"] = sha
	a = sendGitHub(t, base, "push", "release-tag", tag)
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	require.EqualValues(t, 0, a.body["accepted"], "the tag push of a trigger-release repository is not the deployment: %v", a.body)

	release := fixture(t, "../internal/github/testdata/release_published.json")
	rel := release["release"].(map[string]any)
	rel["tag_name"], rel["published_at"] = "v2.0.0", publishedAt.Format(time.RFC3339)
	release["repository"].(map[string]any)["full_name"] = "acme/api"
	for range 2 { // a redelivery keeps X-GitHub-Delivery: counted once
		a = sendGitHub(t, base, "release", "release-published", release)
		require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	}
	svc := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production"}
	m := scrape(t, metricsURL)
	require.Equal(t, 1.0, m.sum("platform_deployments_total", with(svc, "status", "success")))
	require.Equal(t, 1.0, m.sum("platform_lead_time_seconds_count", svc))
	require.Equal(t, publishedAt.Sub(pushedAt).Seconds(), m.sum("platform_lead_time_seconds_sum", svc))
}
