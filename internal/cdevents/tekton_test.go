package cdevents

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

// tektonRequest is a delivery as Tekton's events controller sends it:
// binary mode, application/json, the attributes in Ce-* headers (a new
// Ce-Id on every send).
func tektonRequest(t testing.TB, name, ceType, ceID string) *webhook.Request {
	return request(webhooktest.Fixture(t, filepath.Join("tekton", name)), "application/json",
		"Ce-Specversion", "1.0",
		"Ce-Id", ceID,
		"Ce-Source", "/apis/tekton.dev/v1beta1/namespaces/ci/pipelineruns/deploy-checkout-run-x7k2p",
		"Ce-Subject", "deploy-checkout-run-x7k2p",
		"Ce-Type", ceType,
		"Ce-Time", "2026-11-02T10:06:41.5Z",
	)
}

const (
	tektonSHA   = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"
	tektonPRUID = "9d8f2a4e-61c3-4b7a-8e2f-0c5d1b3a6e47"
)

func tektonProvider(mod func(*Config)) *Provider {
	return newProvider(func(c *Config) {
		c.DeploymentPipelines = []DeploymentPipeline{{Pipeline: "deploy-*"}}
		if mod != nil {
			mod(c)
		}
	})
}

// A deployment pipeline's run: started, then successful or failed; the
// revision, its commit time and the repository from its results.
func TestTektonPipelineRun(t *testing.T) {
	p := tektonProvider(nil)
	started := parse(t, p, tektonRequest(t, "pipelinerun-started.json", "dev.tekton.event.pipelinerun.started.v1", "a1"))
	want := event.Event{
		Kind:         event.DeploymentStarted,
		Source:       event.SourceCDEvents,
		ID:           "tekton/pipelinerun/" + tektonPRUID + "/started",
		Time:         time.Date(2026, 11, 2, 10, 0, 1, 0, time.UTC),
		Service:      event.Service{Environment: "production"},
		Repository:   "acme/checkout-api",
		DeploymentID: "tekton/pipelinerun/" + tektonPRUID,
	}
	assert.Equal(t, []event.Event{want}, started, "started carries no results yet: the repository comes from the repo-url param, no revision (the revision param is a branch); with the repository known the receiver's services mapping names the service")

	ok := parse(t, p, tektonRequest(t, "pipelinerun-successful.json", "dev.tekton.event.pipelinerun.successful.v1", "a2"))
	want.Kind = event.DeploymentSucceeded
	want.ID = "tekton/pipelinerun/" + tektonPRUID + "/successful"
	want.Time = time.Date(2026, 11, 2, 10, 6, 40, 0, time.UTC)
	want.Revision = tektonSHA
	want.CommitTime = time.Date(2026, 11, 2, 8, 41, 7, 0, time.UTC)
	assert.Equal(t, []event.Event{want}, ok)

	failed := parse(t, p, tektonRequest(t, "pipelinerun-failed.json", "dev.tekton.event.pipelinerun.failed.v1", "a3"))
	want.Kind = event.DeploymentFailed
	want.ID = "tekton/pipelinerun/" + tektonPRUID + "/failed"
	want.Reason = ReasonTektonFailed
	assert.Equal(t, []event.Event{want}, failed)
}

// The started event's service is the same as the finished one's when the
// configured entry names it.
func TestTektonConfiguredService(t *testing.T) {
	p := tektonProvider(func(c *Config) {
		c.DeploymentPipelines = []DeploymentPipeline{{Pipeline: "deploy-checkout", Service: "checkout", Namespace: "shop", Environment: "prod-eu"}}
	})
	for _, f := range []struct{ name, typ string }{
		{"pipelinerun-started.json", "started"},
		{"pipelinerun-successful.json", "successful"},
	} {
		evs := parse(t, p, tektonRequest(t, f.name, "dev.tekton.event.pipelinerun."+f.typ+".v1", "x"))
		assert.Equal(t, event.Service{Namespace: "shop", Name: "checkout", Environment: "prod-eu"}, evs[0].Service, f.name)
	}
}

// A deploy task of the pipeline is that pipeline run's deployment (its
// DeploymentID is the PipelineRun's, from the owner reference).
func TestTektonDeployTask(t *testing.T) {
	p := tektonProvider(func(c *Config) {
		c.DeploymentPipelines = nil
		c.Tekton.DeploymentTasks = []DeploymentTask{{Task: "deploy"}}
	})
	evs := parse(t, p, tektonRequest(t, "taskrun-successful.json", "dev.tekton.event.taskrun.successful.v1", "b1"))
	assert.Equal(t, []event.Event{{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceCDEvents,
		ID:           "tekton/taskrun/c3e1f0a2-5b7d-4f8e-9a6c-2d4b1e3f5a70/successful",
		Time:         time.Date(2026, 11, 2, 10, 6, 38, 0, time.UTC),
		Service:      event.Service{Environment: "production"},
		Repository:   "acme/checkout-api",
		DeploymentID: "tekton/pipelinerun/" + tektonPRUID,
		Revision:     tektonSHA,
	}}, evs, "revision and repository from the task's params commit and url")

	// The pipeline is not a deployment pipeline here.
	res, err := p.Parse(tektonRequest(t, "pipelinerun-successful.json", "dev.tekton.event.pipelinerun.successful.v1", "b2"))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, `pipeline "deploy-checkout" is not a deployment pipeline`)

	// Matched by the task's own name too.
	p = tektonProvider(func(c *Config) { c.Tekton.DeploymentTasks = []DeploymentTask{{Task: "kubectl-*", Service: "checkout"}} })
	evs = parse(t, p, tektonRequest(t, "taskrun-successful.json", "dev.tekton.event.taskrun.successful.v1", "b3"))
	assert.Equal(t, "checkout", evs[0].Service.Name)
}

// Tekton re-sends a state with a new Ce-Id after its controller restarts:
// the event id is the run's and the state's, so it counts once.
func TestTektonRedeliveryCountedOnce(t *testing.T) {
	p := tektonProvider(nil)
	first := parse(t, p, tektonRequest(t, "pipelinerun-successful.json", "dev.tekton.event.pipelinerun.successful.v1", "ce-1"))
	again := tektonRequest(t, "pipelinerun-successful.json", "dev.tekton.event.pipelinerun.successful.v1", "ce-2")
	again.Received = received.Add(time.Hour)
	second := parse(t, p, again)
	assert.Equal(t, first, second)
}

func TestTektonIgnored(t *testing.T) {
	p := tektonProvider(func(c *Config) { c.Tekton.DeploymentTasks = []DeploymentTask{{Task: "*"}} })
	for _, tc := range []struct{ file, typ, why string }{
		// The documented example: a TaskRun whose pod is initializing.
		{"taskrun-unknown.json", "dev.tekton.event.taskrun.unknown.v1", "taskrun.unknown events are not used"},
		{"pipelinerun-started.json", "dev.tekton.event.pipelinerun.running.v1", "pipelinerun.running events are not used"},
		{"pipelinerun-started.json", "dev.tekton.event.pipelinerun.queued.v1", "pipelinerun.queued events are not used"},
		{"pipelinerun-successful.json", "dev.tekton.event.customrun.successful.v1", "customrun events are not used"},
		{"pipelinerun-successful.json", "dev.tekton.event.pipelinerun.successful.v2", "is not used"},
	} {
		res, err := p.Parse(tektonRequest(t, tc.file, tc.typ, "c"))
		require.NoError(t, err, tc.typ)
		assert.Empty(t, res.Events, tc.typ)
		assert.Contains(t, res.Ignored, tc.why, tc.typ)
	}
	// A cancelled run is not a failed deployment.
	body := []byte(`{"pipelineRun":{"metadata":{"name":"r","labels":{"tekton.dev/pipeline":"deploy-x"}},"status":{"completionTime":"2026-11-02T10:00:00Z","conditions":[{"type":"Succeeded","status":"False","reason":"Cancelled"}]}}}`)
	req := request(body, "application/json", "Ce-Specversion", "1.0", "Ce-Id", "d", "Ce-Type", "dev.tekton.event.pipelinerun.failed.v1")
	res, err := p.Parse(req)
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "cancelled")
}

func TestTektonFailureReasons(t *testing.T) {
	p := tektonProvider(nil)
	for reason, want := range map[string]string{"Failed": ReasonTektonFailed, "PipelineRunTimeout": ReasonTektonTimeout, "CouldntGetPipeline": ReasonTektonFailed} {
		body := []byte(`{"pipelineRun":{"metadata":{"name":"r","uid":"u","labels":{"tekton.dev/pipeline":"deploy-x"}},"status":{"completionTime":"2026-11-02T10:00:00Z","conditions":[{"type":"Succeeded","status":"False","reason":"` + reason + `"}]}}}`)
		req := request(body, "application/json", "Ce-Specversion", "1.0", "Ce-Id", "d", "Ce-Type", "dev.tekton.event.pipelinerun.failed.v1")
		evs := parse(t, p, req)
		assert.Equal(t, want, evs[0].Reason, reason)
		assert.Equal(t, "deploy-x", evs[0].Service.Name, "no repository: the pipeline name is the service")
	}
}

func TestTektonMalformed(t *testing.T) {
	p := tektonProvider(nil)
	for body, want := range map[string]string{
		`{"taskRun":{}}`:                  `missing required field "pipelineRun"`,
		`{"pipelineRun":{"metadata":{}}}`: `pipelineRun.metadata.name`,
		`{"pipelineRun":{"metadata":{"name":"r","labels":{"tekton.dev/pipeline":"deploy-x"}},"status":{"completionTime":"yesterday"}}}`: `"pipelineRun.status.completionTime"`,
		`{"pipelineRun":`: "",
	} {
		req := request([]byte(body), "application/json", "Ce-Specversion", "1.0", "Ce-Id", "d", "Ce-Type", "dev.tekton.event.pipelinerun.successful.v1")
		_, err := p.Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr, body)
		assert.Equal(t, http.StatusBadRequest, herr.Status, body)
		assert.Contains(t, herr.Message, want, body)
	}
}

// Tekton's sink is a URL: it sends no Authorization header, so the token
// may be the URL's access_token parameter (RFC 6750 section 2.3).
func TestTektonTokenInURL(t *testing.T) {
	p := tektonProvider(nil)
	req := tektonRequest(t, "pipelinerun-successful.json", "dev.tekton.event.pipelinerun.successful.v1", "e")
	req.Header.Del("Authorization")
	_, err := p.Parse(req)
	var herr *webhook.Error
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, http.StatusUnauthorized, herr.Status)

	req.RawQuery = "access_token=wrong"
	_, err = p.Parse(req)
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, http.StatusUnauthorized, herr.Status)

	req.RawQuery = "access_token=" + token
	assert.Len(t, parse(t, p, req), 1)
}

func TestTektonConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Token = token
	cfg.Tekton.DeploymentTasks = []DeploymentTask{{Task: ""}, {Task: "["}}
	err := cfg.Validate()
	require.Error(t, err)
	assert.ErrorContains(t, err, "tekton::deployment_tasks[0].task: must not be empty")
	assert.ErrorContains(t, err, "tekton::deployment_tasks[1].task")
}

func TestRepoFromURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/acme/checkout-api.git": "acme/checkout-api",
		"git@github.com:acme/api.git":              "acme/api",
		"ssh://git@gitlab.com/g/sub/p.git":         "g/sub/p",
		"https://github.com/acme":                  "",
		"main":                                     "",
	} {
		assert.Equal(t, want, repoFromURL(in), in)
	}
}

func TestTektonEventsOwnTheirData(t *testing.T) {
	p := tektonProvider(func(c *Config) { c.Tekton.DeploymentTasks = []DeploymentTask{{Task: "deploy"}} })
	webhooktest.CheckEventsOwnTheirData(t, p,
		tektonRequest(t, "pipelinerun-successful.json", "dev.tekton.event.pipelinerun.successful.v1", "g1"),
		tektonRequest(t, "taskrun-successful.json", "dev.tekton.event.taskrun.successful.v1", "g2"),
		tektonRequest(t, "pipelinerun-failed.json", "dev.tekton.event.pipelinerun.failed.v1", "g3"),
	)
}
