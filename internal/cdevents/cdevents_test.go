package cdevents

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

const token = "cd3v3nts-t0ken"

var received = time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)

// request is an authorized delivery with the given content type and
// extra headers.
func request(body []byte, contentType string, headers ...string) *webhook.Request {
	h := http.Header{}
	h.Set("Content-Type", contentType)
	h.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return &webhook.Request{Header: h, Body: body, Received: received}
}

func newProvider(mod func(*Config)) *Provider {
	cfg := DefaultConfig()
	cfg.Token = token
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg)
}

func parse(t *testing.T, p *Provider, req *webhook.Request) []event.Event {
	t.Helper()
	res, err := p.Parse(req)
	require.NoError(t, err)
	require.NotEmpty(t, res.Events, res.Ignored)
	return res.Events
}

// binaryHeaders are the ce- headers of service-upgraded-binary.json.
var binaryHeaders = []string{
	"ce-specversion", "1.0",
	"ce-id", "5d3e2c1b-7a8f-4e6d-9c0b-1a2b3c4d5e6f",
	"ce-source", "/keptn/shop",
	"ce-type", "dev.cdevents.service.upgraded.0.2.0",
	"ce-subject", "/shop/checkout",
	"ce-time", "2026-11-02T12:40:31.25Z",
}

func TestServiceDeployedStructured(t *testing.T) {
	evs := parse(t, newProvider(nil), request(webhooktest.Fixture(t, "service-deployed-structured.json"), MediaTypeStructured))
	assert.Equal(t, []event.Event{{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceCDEvents,
		ID:           "tekton/prod-eu-west-1/271069a8-fc18-44f1-b38f-9d70a1695819",
		Time:         time.Date(2026, 11, 2, 10, 15, 0, 0, time.UTC),
		Service:      event.Service{Name: "api", Environment: "production"},
		DeploymentID: "cdevents/production/api/271069a8-fc18-44f1-b38f-9d70a1695819",
		Revision:     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
	}}, evs)
}

func TestServiceUpgradedBinary(t *testing.T) {
	evs := parse(t, newProvider(nil), request(webhooktest.Fixture(t, "service-upgraded-binary.json"), "application/json; charset=utf-8", binaryHeaders...))
	assert.Equal(t, []event.Event{{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceCDEvents,
		ID:           "keptn/shop/5d3e2c1b-7a8f-4e6d-9c0b-1a2b3c4d5e6f",
		Time:         time.Date(2026, 11, 2, 12, 40, 31, 250_000_000, time.UTC),
		Service:      event.Service{Name: "checkout", Environment: "staging"},
		Repository:   "acme/checkout",
		DeploymentID: "cdevents/staging/checkout/5d3e2c1b-7a8f-4e6d-9c0b-1a2b3c4d5e6f",
		Revision:     "1c5e7d2a4b6f8091a3c5e7f9b1d3f5a7c9e1b3d5",
	}}, evs)
}

func TestOneEventInEveryMode(t *testing.T) {
	// The same CDEvent in binary mode, structured mode, structured mode
	// sent as application/json, and plain: the same events.
	cdevent := webhooktest.Fixture(t, "service-upgraded-binary.json")
	ce := map[string]any{
		"specversion": "1.0", "id": "5d3e2c1b-7a8f-4e6d-9c0b-1a2b3c4d5e6f", "source": "/keptn/shop",
		"type": "dev.cdevents.service.upgraded.0.2.0", "time": "2026-11-02T12:40:31.25Z",
		"datacontenttype": "application/json", "data": json.RawMessage(cdevent),
	}
	structured, err := json.Marshal(ce)
	require.NoError(t, err)
	delete(ce, "data")
	ce["data_base64"] = base64.StdEncoding.EncodeToString(cdevent)
	structuredBase64, err := json.Marshal(ce)
	require.NoError(t, err)
	delete(ce, "data_base64")
	ce["data"] = string(cdevent)
	structuredString, err := json.Marshal(ce)
	require.NoError(t, err)

	p := newProvider(nil)
	want := parse(t, p, request(cdevent, "application/json", binaryHeaders...))
	for name, req := range map[string]*webhook.Request{
		"binary, cdevents+json":       request(cdevent, MediaTypeCDEvents, binaryHeaders...),
		"structured":                  request(structured, MediaTypeStructured),
		"structured as json":          request(structured, "application/json"),
		"structured with data_base64": request(structuredBase64, MediaTypeStructured),
		"structured with data string": request(structuredString, MediaTypeStructured),
		"plain CDEvent":               request(cdevent, "application/json"),
		"batch of one":                request([]byte("["+string(structured)+"]"), MediaTypeBatch),
	} {
		assert.Equal(t, want, parse(t, p, req), name)
	}
}

func TestServiceRolledBack(t *testing.T) {
	evs := parse(t, newProvider(nil), request(webhooktest.Fixture(t, "service-rolledback.json"), "application/json"))
	deployment := event.Event{
		Source:       event.SourceCDEvents,
		Time:         time.Date(2026, 11, 2, 10, 47, 12, 0, time.UTC),
		Service:      event.Service{Name: "api", Environment: "production"},
		DeploymentID: "cdevents/production/api/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
		Revision:     "7d1a0e4b9c3f5e2a8b6d4c0f1e3a5b7c9d2f4e6a",
	}
	rolled, done := deployment, deployment
	rolled.Kind, rolled.ID = event.DeploymentRolledBack, "tekton/prod-eu-west-1/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b/rolledback"
	done.Kind, done.ID = event.DeploymentSucceeded, "tekton/prod-eu-west-1/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b/succeeded"
	assert.Equal(t, []event.Event{rolled, done}, evs, "a reported rollback has begun and completed")
}

func TestChangeMerged(t *testing.T) {
	p := newProvider(nil)
	evs := parse(t, p, request(webhooktest.Fixture(t, "change-merged.json"), "application/json"))
	assert.Equal(t, []event.Event{{
		Kind:       event.ChangeMerged,
		Source:     event.SourceCDEvents,
		ID:         "github/acme/0f1e2d3c-4b5a-4968-8776-655443322110",
		Time:       time.Date(2026, 11, 2, 9, 58, 44, 0, time.UTC),
		Repository: "acme/api",
		Revision:   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
	}}, evs)

	res, err := p.Parse(request(webhooktest.Fixture(t, "change-merged-pr.json"), "application/json"))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, `change.merged "812": subject.id is not the merge commit SHA`)
}

func TestIncidents(t *testing.T) {
	p := newProvider(nil)
	opened := parse(t, p, request(webhooktest.Fixture(t, "incident-detected.json"), MediaTypeStructured))
	resolved := parse(t, p, request(webhooktest.Fixture(t, "incident-resolved.json"), MediaTypeStructured))
	assert.Equal(t, []event.Event{{
		Kind:       event.IncidentOpened,
		Source:     event.SourceCDEvents,
		ID:         "monitoring/prod-eu-west-1/f4bd2b55-b6f6-4f44-af72-bd2d0e7a8708",
		Time:       time.Date(2026, 11, 2, 10, 31, 20, 79_000_000, time.UTC),
		Service:    event.Service{Name: "api", Environment: "production"},
		IncidentID: "incident-2031",
	}}, opened)
	assert.Equal(t, []event.Event{{
		Kind:       event.IncidentResolved,
		Source:     event.SourceCDEvents,
		ID:         "monitoring/prod-eu-west-1/0c3f7a1e-2d4b-4e8f-9a6c-5b7d9e1f3a2c",
		Time:       time.Date(2026, 11, 2, 10, 52, 3, 0, time.UTC),
		Service:    event.Service{Name: "api", Environment: "production"},
		IncidentID: "incident-2031",
	}}, resolved)

	// incident.reported opens an incident as well.
	reported := strings.ReplaceAll(string(webhooktest.Fixture(t, "incident-detected.json")), "incident.detected", "incident.reported")
	assert.Equal(t, event.IncidentOpened, parse(t, p, request([]byte(reported), MediaTypeStructured))[0].Kind)

	// Without a service there is nothing to attribute the incident to.
	noService := strings.Replace(string(webhooktest.Fixture(t, "incident-detected.json")), `"id": "api"`, `"id": ""`, 1)
	res, err := p.Parse(request([]byte(noService), MediaTypeStructured))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "names no service")
	assert.Equal(t, 1, res.WithoutService, "counted apart as an incident without a service")
	// Other unused events are not.
	res, err = p.Parse(request([]byte(strings.ReplaceAll(noService, "incident.detected", "incident.unknown")), MediaTypeStructured))
	require.NoError(t, err)
	assert.NotEmpty(t, res.Ignored)
	assert.Zero(t, res.WithoutService)
}

func TestPipelineRunFinished(t *testing.T) {
	body := webhooktest.Fixture(t, "pipelinerun-finished.json")
	res, err := newProvider(nil).Parse(request(body, "application/json"))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Equal(t, `pipeline "deploy-payments" is not a deployment pipeline (see deployment_pipelines)`, res.Ignored)

	p := newProvider(func(c *Config) {
		c.DeploymentPipelines = []DeploymentPipeline{
			{Pipeline: "deploy-api"},
			{Pipeline: "deploy-pay*", Service: "payments", Namespace: "pay", Environment: "prod-eu"},
		}
	})
	assert.Equal(t, []event.Event{{
		Kind:         event.DeploymentFailed,
		Source:       event.SourceCDEvents,
		ID:           "jenkins/ci.acme.example/3b9f1c7e-8d2a-4f6b-a5c3-e1d7f9b2c4a6",
		Time:         time.Date(2026, 11, 2, 16, 5, 48, 0, time.UTC),
		Service:      event.Service{Namespace: "pay", Name: "payments", Environment: "prod-eu"},
		DeploymentID: "cdevents/pipelinerun/jenkins/ci.acme.example/deploy-payments/412",
		Reason:       ReasonPipelineFailed,
	}}, parse(t, p, request(body, "application/json")))

	for outcome, want := range map[string]event.Event{
		"success": {Kind: event.DeploymentSucceeded},
		"error":   {Kind: event.DeploymentFailed, Reason: ReasonPipelineError},
	} {
		b := strings.Replace(string(body), `"outcome": "failure"`, `"outcome": "`+outcome+`"`, 1)
		ev := parse(t, p, request([]byte(b), "application/json"))[0]
		assert.Equal(t, want.Kind, ev.Kind, outcome)
		assert.Equal(t, want.Reason, ev.Reason, outcome)
	}
	b := strings.Replace(string(body), `"outcome": "failure"`, `"outcome": "cancel"`, 1)
	res, err = p.Parse(request([]byte(b), "application/json"))
	require.NoError(t, err)
	assert.Contains(t, res.Ignored, `outcome "cancel" is not success, failure or error`)

	// The pipeline name is the service when the entry names none, and
	// the default environment applies.
	b = strings.ReplaceAll(string(body), "deploy-payments", "deploy-api")
	ev := parse(t, p, request([]byte(b), "application/json"))[0]
	assert.Equal(t, event.Service{Name: "deploy-api", Environment: "production"}, ev.Service)
}

func TestBatch(t *testing.T) {
	evs := parse(t, newProvider(nil), request(webhooktest.Fixture(t, "batch.json"), MediaTypeBatch))
	require.Len(t, evs, 1, "the artifact event is ignored")
	assert.Equal(t, event.DeploymentSucceeded, evs[0].Kind)
	assert.Equal(t, "worker", evs[0].Service.Name)
	assert.Equal(t, "", evs[0].Revision, "tag v1.4.0 is not a commit")
	assert.Equal(t, "tekton/prod-eu-west-1/a1b2c3d4-0002-4000-8000-000000000002", evs[0].ID)

	res, err := newProvider(nil).Parse(request([]byte(`[]`), MediaTypeBatch))
	require.NoError(t, err)
	assert.Equal(t, "empty batch", res.Ignored)
}

func TestIgnoredTypes(t *testing.T) {
	p := newProvider(nil)
	for typ, want := range map[string]string{
		"dev.cdevents.artifact.published.0.2.0": "artifact.published events are not used",
		"dev.cdevents.taskrun.finished.0.2.0":   "taskrun.finished events are not used",
		"com.github.pull_request.closed":        `type "com.github.pull_request.closed" is not a CDEvents type`,
		"dev.cdevents.service":                  "is not a CDEvents type",
	} {
		body := `{"context":{"version":"0.4.1","id":"x","source":"/s","type":"` + typ + `","timestamp":"2026-11-02T10:00:00Z"},"subject":{"id":"y","content":{}}}`
		res, err := p.Parse(request([]byte(body), "application/json"))
		require.NoError(t, err, typ)
		assert.Empty(t, res.Events, typ)
		assert.Contains(t, res.Ignored, want, typ)
	}
}

func TestFromArtifact(t *testing.T) {
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"
	tests := []struct{ purl, revision, repository string }{
		{"pkg:oci/api@sha256%3A0b31?repository_url=ghcr.io%2Facme%2Fapi&tag=" + sha, sha, ""},
		{"pkg:oci/api@sha256%3A0b31?tag=" + strings.ToUpper(sha), sha, ""},
		{"pkg:oci/api@sha256%3A0b31?tag=9f86d08", "", ""},
		{"pkg:oci/api@sha256%3A0b31?tag=v1.2.3", "", ""},
		{"pkg:github/acme/api@" + sha, sha, "acme/api"},
		{"pkg:gitlab/group/sub/project@" + sha + "#src", sha, "group/sub/project"},
		{"pkg:github/acme/api@v1.2.3", "", "acme/api"},
		{"pkg:docker/acme/api@" + sha, sha, ""},
		{"ghcr.io/acme/api:" + sha, "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		rev, repo := fromArtifact(tt.purl)
		assert.Equal(t, tt.revision, rev, tt.purl)
		assert.Equal(t, tt.repository, repo, tt.purl)
	}
}

func TestRepositoryName(t *testing.T) {
	for want, ref := range map[string]Reference{
		"acme/api":          {ID: "acme/api", Source: "https://github.com"},
		"acme/web":          {ID: "web", Owner: "acme", Name: "web"},
		"group/sub/project": {Name: "project", URL: "https://gitlab.com/group/sub/project.git"},
		"repo123":           {ID: "repo123"},
		"":                  {},
	} {
		assert.Equal(t, want, repositoryName(ref), "%+v", ref)
	}
}

func TestRedeliveryKeepsIDs(t *testing.T) {
	p := newProvider(func(c *Config) { c.DeploymentPipelines = []DeploymentPipeline{{Pipeline: "*"}} })
	seen := map[string]string{}
	for name, ct := range map[string]string{
		"service-deployed-structured.json": MediaTypeStructured,
		"service-rolledback.json":          "application/json",
		"change-merged.json":               "application/json",
		"incident-detected.json":           MediaTypeStructured,
		"incident-resolved.json":           MediaTypeStructured,
		"pipelinerun-finished.json":        "application/json",
		"batch.json":                       MediaTypeBatch,
	} {
		first := parse(t, p, request(webhooktest.Fixture(t, name), ct))
		again := parse(t, p, request(webhooktest.Fixture(t, name), ct))
		assert.Equal(t, first, again, name)
		for _, ev := range first {
			if other, dup := seen[ev.ID]; dup {
				t.Errorf("%s and %s share id %s", name, other, ev.ID)
			}
			seen[ev.ID] = name
		}
	}
}

func TestToken(t *testing.T) {
	body := webhooktest.Fixture(t, "service-upgraded-binary.json")
	for name, auth := range map[string]string{"missing": "", "wrong": "Bearer nope", "basic": "Basic " + token} {
		t.Run(name, func(t *testing.T) {
			req := request(body, "application/json")
			req.Header.Set("Authorization", auth)
			_, err := newProvider(nil).Parse(req)
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusUnauthorized, herr.Status)
		})
	}
	t.Run("insecure_skip_verify accepts unauthenticated", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.InsecureSkipVerify = true
		req := request(body, "application/json")
		req.Header.Del("Authorization")
		res, err := New(cfg).Parse(req)
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
}

func TestMalformed(t *testing.T) {
	const ctx = `"context":{"id":"x","source":"/s","type":"dev.cdevents.service.deployed.0.2.0","timestamp":"2026-11-02T10:00:00Z"}`
	tests := []struct{ body, contentType, want string }{
		{`{`, "application/json", "malformed JSON"},
		{``, "application/json", "empty body"},
		{`{`, MediaTypeStructured, "malformed JSON"},
		{`{"specversion":"1.0","id":"x","type":"t"}`, MediaTypeStructured, `missing required field "data"`},
		{`{"specversion":"1.0","id":"x","data_base64":"%%%"}`, MediaTypeStructured, `field "data_base64": not base64`},
		{`{"specversion":"1.0","id":"x","data":"{"}`, MediaTypeStructured, "malformed JSON"},
		{`{"specversion":"1.0","id":"x","data":[1]}`, MediaTypeStructured, "expected cdevents.CDEvent"},
		{`{"specversion":"1.0"}`, MediaTypeBatch, "expected []json.RawMessage"},
		{`[{"specversion":"1.0","id":"a","data":{` + ctx + `,"subject":{"id":"service/api"}}},{"specversion":"1.0"}]`, MediaTypeBatch, `event 1: missing required field "data"`},
		{`{"subject":{"id":"y"}}`, "application/json", `missing required field "context.type"`},
		{`{"context":{"type":"dev.cdevents.service.deployed.0.2.0"},"subject":{"id":"y"}}`, "application/json", `missing required field "context.id"`},
		{`{"context":{"id":"x","type":"dev.cdevents.service.deployed.0.2.0","timestamp":"today"}}`, "application/json", `field "context.timestamp": "today" is not an RFC 3339 time`},
		{`{` + ctx + `,"subject":{"content":{}}}`, "application/json", `missing required field "subject.id"`},
		{`{` + ctx + `,"subject":{"id":"//"}}`, "application/json", `field "subject.id": "//" names no service`},
		{`{` + ctx + `,"subject":{"id":"api","content":{"environment":"production"}}}`, "application/json", `subject.content: field "environment": expected cdevents.Reference`},
		{`{` + ctx + `,"subject":{"id":"api","content":{"artifactId":5}}}`, "application/json", `subject.content: field "artifactId": expected string`},
		{`{"context":{"id":5}}`, "application/json", `field "context.id": expected string`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := newProvider(nil).Parse(request([]byte(tt.body), tt.contentType))
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusBadRequest, herr.Status)
			assert.Contains(t, herr.Message, tt.want)
		})
	}
	t.Run("binary type mismatch", func(t *testing.T) {
		headers := append([]string(nil), binaryHeaders...)
		headers[7] = "dev.cdevents.service.deployed.0.2.0"
		_, err := newProvider(nil).Parse(request(webhooktest.Fixture(t, "service-upgraded-binary.json"), "application/json", headers...))
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Contains(t, herr.Message, `CloudEvent type "dev.cdevents.service.deployed.0.2.0" does not match the CDEvent's context.type "dev.cdevents.service.upgraded.0.2.0"`)
	})
	t.Run("binary attributes fill an incomplete context", func(t *testing.T) {
		body := `{"context":{"version":"0.4.1"},"subject":{"id":"service/api","content":{"environment":{"id":"production"}}}}`
		evs := parse(t, newProvider(nil), request([]byte(body), "application/json", binaryHeaders...))
		assert.Equal(t, "keptn/shop/5d3e2c1b-7a8f-4e6d-9c0b-1a2b3c4d5e6f", evs[0].ID)
		assert.Equal(t, time.Date(2026, 11, 2, 12, 40, 31, 250_000_000, time.UTC), evs[0].Time)
	})
}

func TestContentTypes(t *testing.T) {
	assert.ElementsMatch(t, []string{"application/json", "application/cloudevents+json", "application/cloudevents-batch+json", "application/cdevents+json"}, newProvider(nil).ContentTypes())
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	assert.Equal(t, "/webhooks/cdevents", cfg.Path)
	assert.Equal(t, "production", cfg.DefaultEnvironment)
	assert.Empty(t, cfg.DeploymentPipelines)
	assert.ErrorContains(t, cfg.Validate(), "token: required")
	cfg.InsecureSkipVerify = true
	assert.NoError(t, cfg.Validate())

	cfg = DefaultConfig()
	cfg.Token = token
	cfg.Path = "cdevents"
	cfg.DefaultEnvironment = ""
	cfg.DeploymentPipelines = []DeploymentPipeline{{Pipeline: ""}, {Pipeline: "[x"}, {Pipeline: "deploy-*"}}
	err := cfg.Validate()
	for _, want := range []string{
		`path: "cdevents" must start with /`,
		"default_environment: must not be empty",
		"deployment_pipelines[0].pipeline: must not be empty",
		`deployment_pipelines[1].pipeline: "[x" is not a valid glob`,
	} {
		assert.ErrorContains(t, err, want)
	}
	assert.NotContains(t, err.Error(), "deployment_pipelines[2]")
}

func FuzzParse(f *testing.F) {
	seeds := map[string]string{
		"service-deployed-structured.json": MediaTypeStructured,
		"service-upgraded-binary.json":     "application/json",
		"service-rolledback.json":          "application/json",
		"change-merged.json":               "application/json",
		"change-merged-pr.json":            "application/json",
		"incident-detected.json":           MediaTypeStructured,
		"incident-resolved.json":           "application/json",
		"pipelinerun-finished.json":        "application/json",
		"batch.json":                       MediaTypeBatch,
	}
	for name, ct := range seeds {
		f.Add(webhooktest.Fixture(f, name), ct, false)
	}
	f.Add(webhooktest.Fixture(f, "service-upgraded-binary.json"), "application/json", true)
	f.Add([]byte(`{"specversion":"1.0","id":"x","data":"{\"context\":{}}"}`), "application/json", false)
	for _, name := range []string{"pipelinerun-started.json", "pipelinerun-successful.json", "pipelinerun-failed.json", "taskrun-successful.json", "taskrun-unknown.json"} {
		var compact bytes.Buffer
		require.NoError(f, json.Compact(&compact, webhooktest.Fixture(f, filepath.Join("tekton", name))))
		f.Add(compact.Bytes(), "application/json", true)
	}
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]`), MediaTypeBatch, false)
	p := newProvider(func(c *Config) {
		c.DeploymentPipelines = []DeploymentPipeline{{Pipeline: "deploy-*"}}
		c.Tekton.DeploymentTasks = []DeploymentTask{{Task: "deploy"}}
	})
	f.Fuzz(func(t *testing.T, body []byte, contentType string, binary bool) {
		var headers []string
		if binary {
			headers = binaryHeaders
			// Binary-mode bodies that are Tekton runs go with a Tekton type.
			if bytes.Contains(body, []byte(`"pipelineRun"`)) {
				headers = tektonHeaders("dev.tekton.event.pipelinerun.successful.v1")
			} else if bytes.Contains(body, []byte(`"taskRun"`)) {
				headers = tektonHeaders("dev.tekton.event.taskrun.failed.v1")
			}
		}
		res, err := p.Parse(request(body, contentType, headers...))
		if err != nil {
			// Refused as the sender's fault, never a 5xx or a panic.
			status := webhook.StatusOf(err)
			require.True(t, status >= 400 && status < 500, "a parse error is refused as the sender's: %d", status)
			return
		}
		require.True(t, len(res.Events) > 0 || res.Ignored != "")
		for _, ev := range res.Events {
			require.True(t, ev.Kind.Valid())
			require.Equal(t, event.SourceCDEvents, ev.Source)
			require.NotEmpty(t, ev.ID)
			require.False(t, ev.Time.IsZero())
			switch ev.Kind {
			case event.DeploymentStarted, event.DeploymentSucceeded, event.DeploymentFailed, event.DeploymentRolledBack:
				// A Tekton run with a repository leaves the service to
				// the receiver's services mapping.
				require.True(t, ev.Service.Name != "" || ev.Repository != "", "a service or a repository")
				require.NotEmpty(t, ev.Service.Environment)
				require.NotEmpty(t, ev.DeploymentID)
			case event.ChangeMerged:
				require.True(t, isCommitSHA(ev.Revision))
			case event.IncidentOpened, event.IncidentResolved:
				require.NotEmpty(t, ev.IncidentID)
				require.NotEmpty(t, ev.Service.Name)
			}
			if ev.Revision != "" {
				require.Equal(t, ev.Revision, commitSHA(ev.Revision))
			}
		}
	})
}

func tektonHeaders(ceType string) []string {
	return []string{"Ce-Specversion", "1.0", "Ce-Id", "f", "Ce-Type", ceType}
}
