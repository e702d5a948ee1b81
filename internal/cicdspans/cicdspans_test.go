package cicdspans

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

var received = time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)

// protobuf re-encodes an OTLP/JSON fixture as OTLP/protobuf.
func protobuf(t testing.TB, jsonBody []byte) []byte {
	er := ptraceotlp.NewExportRequest()
	require.NoError(t, er.UnmarshalJSON(jsonBody))
	b, err := er.MarshalProto()
	require.NoError(t, err)
	return b
}

func request(contentType string, body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Content-Type", contentType)
	return &webhook.Request{Header: h, Body: body, Received: received}
}

func jsonReq(body []byte) *webhook.Request  { return request(ContentTypeJSON, body) }
func protoReq(body []byte) *webhook.Request { return request(ContentTypeProtobuf, body) }

func provider(mod func(*Config)) *Provider {
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg)
}

func pipelines(names ...string) func(*Config) {
	return func(c *Config) { c.DeploymentPipelines = names }
}

func tasks(names ...string) func(*Config) {
	return func(c *Config) { c.DeploymentTasks = names }
}

func TestGitHubWorkflowRunSucceeded(t *testing.T) {
	res, err := provider(pipelines("deploy")).Parse(jsonReq(webhooktest.Fixture(t, "github-deploy-success.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceSpans,
		ID:           "otlp/e63ff88fcd413cb5e811591b4e28ba13/a8ab052c0d156f73/deployment_succeeded",
		Time:         time.Date(2026, 11, 2, 10, 4, 35, 0, time.UTC),
		Service:      event.Service{Environment: "production"},
		Repository:   "acme/checkout-api",
		DeploymentID: "otlp/e63ff88fcd413cb5e811591b4e28ba13",
		Revision:     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
	}, res.Events[0])
}

func TestGitHubWorkflowRunFailed(t *testing.T) {
	res, err := provider(pipelines("deploy")).Parse(jsonReq(webhooktest.Fixture(t, "github-deploy-failure.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentFailed,
		Source:       event.SourceSpans,
		ID:           "otlp/a7dc60f265b5d88a346e5e046fcb8f6c/29beea7af9bedcb3/deployment_failed",
		Time:         time.Date(2026, 11, 2, 14, 31, 12, 0, time.UTC),
		Service:      event.Service{Environment: "production"},
		Repository:   "acme/checkout-api",
		DeploymentID: "otlp/a7dc60f265b5d88a346e5e046fcb8f6c",
		Revision:     "3b18e512dba79e4c8300dd08aeb37f8e728b8dad",
		Reason:       "failure",
	}, res.Events[0])
}

func TestGitHubJob(t *testing.T) {
	res, err := provider(tasks("deploy")).Parse(jsonReq(webhooktest.Fixture(t, "github-deploy-success.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 1, "only the job span; its queue and step spans are other tasks")
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceSpans,
		ID:           "otlp/e63ff88fcd413cb5e811591b4e28ba13/e05751547eaa60fd/deployment_succeeded",
		Time:         time.Date(2026, 11, 2, 10, 4, 30, 0, time.UTC),
		Service:      event.Service{Environment: "production"},
		Repository:   "acme/checkout-api",
		DeploymentID: "otlp/e63ff88fcd413cb5e811591b4e28ba13",
		Revision:     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
	}, res.Events[0])

	res, err = provider(tasks("deploy")).Parse(jsonReq(webhooktest.Fixture(t, "github-deploy-failure.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.DeploymentFailed, res.Events[0].Kind)
	assert.Equal(t, "failure", res.Events[0].Reason)
	assert.Equal(t, "otlp/a7dc60f265b5d88a346e5e046fcb8f6c/fbe25656a40627ef/deployment_failed", res.Events[0].ID)
}

// The contrib GitHub receiver sends a workflow run and each of its jobs in
// separate exports of one trace: matched at both levels they are one
// deployment (same DeploymentID), reported by two events.
func TestRunAndJobAreOneDeployment(t *testing.T) {
	p := provider(func(c *Config) {
		c.DeploymentPipelines = []string{"deploy"}
		c.DeploymentTasks = []string{"deploy"}
	})
	res, err := p.Parse(jsonReq(webhooktest.Fixture(t, "github-deploy-success.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	assert.Equal(t, res.Events[0].DeploymentID, res.Events[1].DeploymentID)
	assert.NotEqual(t, res.Events[0].ID, res.Events[1].ID)
	assert.True(t, res.Events[0].Time.Before(res.Events[1].Time), "events are in end-time order: the job, then the run")
}

// split returns one export per resourceSpans of an OTLP/JSON body, the way
// the contrib GitHub receiver sends a workflow run and each job.
func split(t testing.TB, body []byte) [][]byte {
	er := ptraceotlp.NewExportRequest()
	require.NoError(t, er.UnmarshalJSON(body))
	var out [][]byte
	rss := er.Traces().ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		td := ptrace.NewTraces()
		rss.At(i).CopyTo(td.ResourceSpans().AppendEmpty())
		b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

func TestRunAndJobCountedOnce(t *testing.T) {
	p := provider(func(c *Config) {
		c.DeploymentPipelines = []string{"deploy"}
		c.DeploymentTasks = []string{"deploy"}
	})
	eng, err := engine.New(engine.DefaultConfig(), received.Add(-48*time.Hour))
	require.NoError(t, err)
	exports := split(t, webhooktest.Fixture(t, "github-deploy-success.json"))
	require.Len(t, exports, 2, "the workflow_run export and the workflow_job export")
	for i := len(exports) - 1; i >= 0; i-- { // the job's webhook comes first
		res, err := p.Parse(protoReq(exports[i]))
		require.NoError(t, err)
		require.Len(t, res.Events, 1)
		ev := res.Events[0]
		ev.Service.Name = "checkout-api" // what the receiver's services mapping does
		_, err = eng.Apply(ev)
		require.NoError(t, err)
	}
	snap := eng.Snapshot()
	require.Len(t, snap.Deployments, 1)
	assert.Equal(t, uint64(1), snap.Deployments[0].Value)
}

func TestNonDeploymentWorkflowSkipped(t *testing.T) {
	p := provider(func(c *Config) {
		c.DeploymentPipelines = []string{"deploy*", "release"}
		c.DeploymentTasks = []string{"deploy*"}
	})
	res, err := p.Parse(jsonReq(webhooktest.Fixture(t, "github-ci.json")))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "none of the 7 spans is a finished deployment")

	// Without patterns nothing in a GitHub trace is a deployment.
	res, err = provider(nil).Parse(jsonReq(webhooktest.Fixture(t, "github-deploy-success.json")))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.NotEmpty(t, res.Ignored)
}

func TestGitLabPipeline(t *testing.T) {
	res, err := provider(nil).Parse(jsonReq(webhooktest.Fixture(t, "gitlab-pipeline.json")))
	require.NoError(t, err)
	commit := time.Date(2026, 11, 2, 9, 12, 44, 0, time.UTC)
	assert.Equal(t, []event.Event{{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceSpans,
		ID:           "otlp/644470205283760382d81e716c05a363/5bd17496c4131d28/deployment_succeeded",
		Time:         time.Date(2026, 11, 2, 9, 23, 10, 0, time.UTC),
		Service:      event.Service{Environment: "staging"},
		Repository:   "acme/shop/api",
		DeploymentID: "otlp/644470205283760382d81e716c05a363",
		Revision:     "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
		CommitTime:   commit,
	}, {
		Kind:         event.DeploymentFailed,
		Source:       event.SourceSpans,
		ID:           "otlp/644470205283760382d81e716c05a363/4ddf1b72e314926e/deployment_failed",
		Time:         time.Date(2026, 11, 2, 9, 31, 0, 0, time.UTC),
		Service:      event.Service{Environment: "production"},
		Repository:   "acme/shop/api",
		DeploymentID: "otlp/644470205283760382d81e716c05a363",
		Revision:     "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
		CommitTime:   commit,
		Reason:       "failure",
	}}, res.Events, "plan-production (environment action prepare) and build are not deployments")
}

func TestProtobufAndJSONAgree(t *testing.T) {
	p := provider(func(c *Config) {
		c.DeploymentPipelines = []string{"deploy"}
		c.DeploymentTasks = []string{"deploy"}
	})
	for _, name := range []string{"github-deploy-success.json", "github-deploy-failure.json", "github-ci.json", "gitlab-pipeline.json", "jenkins-deploy-success.json", "jenkins-deploy-failure.json"} {
		t.Run(name, func(t *testing.T) {
			body := webhooktest.Fixture(t, name)
			fromJSON, err := p.Parse(jsonReq(body))
			require.NoError(t, err)
			fromProto, err := p.Parse(protoReq(protobuf(t, body)))
			require.NoError(t, err)
			assert.Equal(t, fromJSON, fromProto)
			alt, err := p.Parse(request("application/protobuf", protobuf(t, body)))
			require.NoError(t, err)
			assert.Equal(t, fromJSON, alt)
		})
	}
}

func TestRedelivery(t *testing.T) {
	p := provider(pipelines("deploy"))
	for _, name := range []string{"github-deploy-success.json", "gitlab-pipeline.json"} {
		body := webhooktest.Fixture(t, name)
		first, err := p.Parse(jsonReq(body))
		require.NoError(t, err)
		again := jsonReq(body)
		again.Received = received.Add(time.Hour)
		second, err := p.Parse(again)
		require.NoError(t, err)
		require.NotEmpty(t, first.Events)
		assert.Equal(t, first.Events, second.Events, name)
	}
}

// span builds a one-span export; attrs are "key=value" strings, values
// put on the span unless the key starts with "resource:".
func span(t testing.TB, name string, root bool, kv ...string) []byte {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetName(name)
	s.SetTraceID(pcommon.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c})
	s.SetSpanID(pcommon.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74})
	if !root {
		s.SetParentSpanID(pcommon.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73})
	}
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Date(2026, 11, 2, 11, 0, 0, 0, time.UTC)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Date(2026, 11, 2, 11, 5, 0, 0, time.UTC)))
	for _, pair := range kv {
		k, v, _ := strings.Cut(pair, "=")
		m := s.Attributes()
		if rk, ok := strings.CutPrefix(k, "resource:"); ok {
			k, m = rk, rs.Resource().Attributes()
		}
		m.PutStr(k, v)
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	return b
}

func TestSpanMapping(t *testing.T) {
	const sha = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B"
	tests := []struct {
		name  string
		cfg   func(*Config)
		body  func(t testing.TB) []byte
		check func(t *testing.T, evs []event.Event)
	}{{
		name: "task type deploy with semconv result and environment",
		body: func(t testing.TB) []byte {
			return span(t, "rollout", false, "cicd.pipeline.task.type=deploy", "cicd.pipeline.task.run.result=timeout",
				"deployment.environment.name=prod-eu", "vcs.ref.head.revision="+sha,
				"resource:vcs.repository.url.full=https://git.example.com/platform/payments.git")
		},
		check: func(t *testing.T, evs []event.Event) {
			require.Len(t, evs, 1)
			assert.Equal(t, event.DeploymentFailed, evs[0].Kind)
			assert.Equal(t, "timeout", evs[0].Reason)
			assert.Equal(t, "prod-eu", evs[0].Service.Environment)
			assert.Equal(t, strings.ToLower(sha), evs[0].Revision)
			assert.Equal(t, "platform/payments", evs[0].Repository)
			assert.Equal(t, time.Date(2026, 11, 2, 11, 5, 0, 0, time.UTC), evs[0].Time)
		},
	}, {
		name: "resource environment makes the pipeline run a deployment",
		body: func(t testing.TB) []byte {
			return span(t, "release", true, "cicd.pipeline.result=error", "resource:deployment.environment.name=staging",
				"resource:vcs.owner.name=acme", "resource:vcs.repository.name=web")
		},
		check: func(t *testing.T, evs []event.Event) {
			require.Len(t, evs, 1)
			assert.Equal(t, event.DeploymentFailed, evs[0].Kind)
			assert.Equal(t, "error", evs[0].Reason)
			assert.Equal(t, "staging", evs[0].Service.Environment)
			assert.Equal(t, "acme/web", evs[0].Repository)
		},
	}, {
		name: "resource environment alone does not make a task a deployment",
		body: func(t testing.TB) []byte {
			return span(t, "lint", false, "cicd.pipeline.task.name=lint", "cicd.pipeline.task.run.result=success",
				"resource:deployment.environment.name=production")
		},
		check: func(t *testing.T, evs []event.Event) { assert.Empty(t, evs) },
	}, {
		name: "real service name and kubernetes namespace: the services mapping decides, service.name its hint",
		body: func(t testing.TB) []byte {
			return span(t, "deploy", false, "cicd.pipeline.task.type=deploy", "cicd.pipeline.task.run.result=success",
				"resource:service.name=checkout", "resource:vcs.repository.name=shop-monorepo",
				"k8s.namespace.name=shop")
		},
		check: func(t *testing.T, evs []event.Event) {
			require.Len(t, evs, 1)
			assert.Equal(t, event.Service{Namespace: "shop", Environment: "production"}, evs[0].Service)
			assert.Equal(t, "checkout", evs[0].ServiceHint)
			assert.Equal(t, "shop-monorepo", evs[0].Repository)
		},
	}, {
		name: "k8s.deployment.name names the service",
		body: func(t testing.TB) []byte {
			return span(t, "deploy", false, "cicd.pipeline.task.type=deploy", "cicd.pipeline.task.run.result=success",
				"resource:service.name=argo-workflows", "k8s.namespace.name=shop", "k8s.deployment.name=cart")
		},
		check: func(t *testing.T, evs []event.Event) {
			require.Len(t, evs, 1)
			assert.Equal(t, event.Service{Namespace: "shop", Name: "cart", Environment: "production"}, evs[0].Service)
		},
	}, {
		name: "service.name derived from the repository is left out",
		cfg:  pipelines("deploy"),
		body: func(t testing.TB) []byte {
			return span(t, "Deploy", true, "resource:cicd.pipeline.run.status=success", "resource:service.name=payment-gateway",
				"resource:vcs.repository.name=Payment_Gateway",
				"resource:cicd.pipeline.run.url.full=https://github.com/acme/Payment_Gateway/actions/runs/42")
		},
		check: func(t *testing.T, evs []event.Event) {
			require.Len(t, evs, 1)
			assert.Empty(t, evs[0].Service.Name)
			assert.Equal(t, "acme/Payment_Gateway", evs[0].Repository)
		},
	}, {
		name: "github job timed out (the contrib receiver files it under the run status)",
		cfg:  tasks("deploy*"),
		body: func(t testing.TB) []byte {
			return span(t, "deploy (prod)", false, "resource:cicd.pipeline.task.run.id=27182818284",
				"resource:cicd.pipeline.run.status=timed_out", "resource:vcs.repository.name=api",
				"resource:cicd.pipeline.task.run.url.full=https://github.com/acme/api/actions/runs/1/job/27182818284")
		},
		check: func(t *testing.T, evs []event.Event) {
			require.Len(t, evs, 1)
			assert.Equal(t, event.DeploymentFailed, evs[0].Kind)
			assert.Equal(t, "timeout", evs[0].Reason)
			assert.Equal(t, "acme/api", evs[0].Repository)
		},
	}, {
		name: "globs are case insensitive and * crosses /",
		cfg:  tasks("deploy / *"),
		body: func(t testing.TB) []byte {
			return span(t, "Deploy / rollout", false, "cicd.pipeline.task.run.id=1", "cicd.pipeline.task.run.result=success")
		},
		check: func(t *testing.T, evs []event.Event) { require.Len(t, evs, 1) },
	}, {
		name: "cancelled, skipped, running and missing results emit nothing",
		body: func(t testing.TB) []byte {
			td := ptrace.NewTraces()
			ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
			for i, r := range []string{"cancellation", "cancelled", "canceled", "skip", "skipped", "running", "neutral", ""} {
				s := ss.AppendEmpty()
				s.SetName("deploy")
				s.SetTraceID(pcommon.TraceID{1})
				s.SetSpanID(pcommon.SpanID{byte(i + 1)})
				s.Attributes().PutStr("cicd.pipeline.task.type", "deploy")
				s.Attributes().PutStr("cicd.pipeline.task.run.result", r)
			}
			b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
			require.NoError(t, err)
			return b
		},
		check: func(t *testing.T, evs []event.Event) { assert.Empty(t, evs) },
	}, {
		name: "a branch name is not a revision",
		body: func(t testing.TB) []byte {
			return span(t, "deploy", false, "cicd.pipeline.task.type=deploy", "cicd.pipeline.task.run.result=success",
				"vcs.ref.head.revision=main", "resource:vcs.repository.name=api")
		},
		check: func(t *testing.T, evs []event.Event) {
			require.Len(t, evs, 1)
			assert.Empty(t, evs[0].Revision)
			assert.Equal(t, "api", evs[0].Repository)
		},
	}, {
		name: "span without times takes the receive time",
		body: func(t testing.TB) []byte {
			er := ptraceotlp.NewExportRequest()
			require.NoError(t, er.UnmarshalProto(span(t, "deploy", false, "cicd.pipeline.task.type=deploy", "cicd.pipeline.task.run.result=success")))
			s := er.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
			s.SetStartTimestamp(0)
			s.SetEndTimestamp(0)
			b, err := er.MarshalProto()
			require.NoError(t, err)
			return b
		},
		check: func(t *testing.T, evs []event.Event) {
			require.Len(t, evs, 1)
			assert.Equal(t, received, evs[0].Time)
		},
	}, {
		name: "a GitLab job matched by name keeps its environment",
		cfg:  tasks("plan-*"),
		body: func(t testing.TB) []byte {
			return span(t, "plan-production", false, "cicd.pipeline.task.name=plan-production", "cicd.pipeline.task.run.result=success",
				"cicd.pipeline.task.run.environment.name=production-eu", "gitlab.environment.action=prepare")
		},
		check: func(t *testing.T, evs []event.Event) {
			require.Len(t, evs, 1)
			assert.Equal(t, "production-eu", evs[0].Service.Environment)
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := provider(tc.cfg).Parse(protoReq(tc.body(t)))
			require.NoError(t, err)
			tc.check(t, res.Events)
		})
	}
}

func TestEmptyExport(t *testing.T) {
	res, err := provider(nil).Parse(protoReq(nil))
	require.NoError(t, err)
	assert.Equal(t, "no spans in this export", res.Ignored)
	res, err = provider(nil).Parse(jsonReq([]byte(`{}`)))
	require.NoError(t, err)
	assert.Equal(t, "no spans in this export", res.Ignored)
}

func TestMalformed(t *testing.T) {
	zeroTrace := func() []byte {
		td := ptrace.NewTraces()
		s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetName("deploy")
		s.SetSpanID(pcommon.SpanID{1})
		s.Attributes().PutStr("cicd.pipeline.task.type", "deploy")
		s.Attributes().PutStr("cicd.pipeline.task.run.result", "success")
		b, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		return b
	}()
	deepProto := func() []byte {
		td := ptrace.NewTraces()
		s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		v := s.Attributes().PutEmptySlice("nested")
		for range 5000 {
			v = v.AppendEmpty().SetEmptySlice()
		}
		b, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		return b
	}()
	tests := []struct {
		name string
		req  *webhook.Request
		want string
	}{
		{"protobuf nested too deep", protoReq(deepProto), "max recursion depth"},
		{"truncated JSON", jsonReq([]byte(`{"resourceSpans":[`)), "malformed OTLP/JSON"},
		{"empty JSON body", jsonReq(nil), "malformed OTLP/JSON"},
		{"JSON of the wrong shape", jsonReq([]byte(`{"resourceSpans":{"resource":1}}`)), "malformed OTLP/JSON"},
		{"JSON trace id not hex", jsonReq([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"eee19b7ec3c1b174"}]}]}]}`)), "malformed OTLP/JSON"},
		{"JSON nested too deep", jsonReq([]byte(strings.Repeat("[", 100) + strings.Repeat("]", 100))), "nested deeper than 64"},
		{"protobuf garbage", protoReq([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}), "malformed OTLP/protobuf"},
		{"JSON sent as protobuf", protoReq(webhooktest.Fixture(t, "github-ci.json")), "malformed OTLP/protobuf"},
		{"deployment span without trace id", protoReq(zeroTrace), `deployment span "deploy": trace_id and span_id must not be empty`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := provider(nil).Parse(tc.req)
			require.Error(t, err)
			assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "/v1/traces", cfg.Path)
	assert.Equal(t, "production", cfg.DefaultEnvironment)

	bad := Config{DeploymentPipelines: []string{" "}, DeploymentTasks: []string{"deploy", ""}}
	err := bad.Validate()
	require.Error(t, err)
	for _, key := range []string{"path", "deployment_pipelines[0]", "deployment_tasks[1]", "default_environment"} {
		assert.Contains(t, err.Error(), key)
	}
}

// TestHandler runs the provider behind the real webhook handler: OTLP
// clients get an ExportTraceServiceResponse in their own encoding for
// accepted and for ignored exports, and a 400 for malformed ones.
func TestHandler(t *testing.T) {
	var got []event.Event
	h := webhook.NewHandler(webhook.Options{
		Routes: []webhook.Route{{Path: "/v1/traces", Provider: provider(pipelines("deploy"))}},
		Sink: func(_ context.Context, source string, evs []event.Event) (webhook.SinkResult, error) {
			assert.Equal(t, event.SourceSpans, source)
			got = append(got, evs...)
			return webhook.SinkResult{Accepted: len(evs)}, nil
		},
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	post := func(ct string, body []byte) *http.Response {
		resp, err := http.Post(srv.URL+"/v1/traces", ct, bytes.NewReader(body))
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	success := webhooktest.Fixture(t, "github-deploy-success.json")
	tests := []struct {
		name, ct string
		body     []byte
		events   int
	}{
		{"protobuf", ContentTypeProtobuf, protobuf(t, success), 1},
		{"json", ContentTypeJSON, success, 1},
		{"ignored protobuf", ContentTypeProtobuf, protobuf(t, webhooktest.Fixture(t, "github-ci.json")), 0},
		{"ignored json", ContentTypeJSON + "; charset=utf-8", webhooktest.Fixture(t, "github-ci.json"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			resp := post(tc.ct, tc.body)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			er := ptraceotlp.NewExportResponse()
			if strings.HasPrefix(tc.ct, ContentTypeJSON) {
				assert.Equal(t, ContentTypeJSON, resp.Header.Get("Content-Type"))
				require.NoError(t, er.UnmarshalJSON(b))
			} else {
				assert.Equal(t, ContentTypeProtobuf, resp.Header.Get("Content-Type"))
				require.NoError(t, er.UnmarshalProto(b))
			}
			assert.Zero(t, er.PartialSuccess().RejectedSpans())
			assert.Empty(t, er.PartialSuccess().ErrorMessage())
			assert.Len(t, got, tc.events)
		})
	}
	t.Run("malformed", func(t *testing.T) {
		resp := post(ContentTypeProtobuf, []byte{0x0a, 0xff})
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		b, _ := io.ReadAll(resp.Body)
		assert.Contains(t, string(b), "malformed OTLP/protobuf")
	})
	t.Run("unsupported media type", func(t *testing.T) {
		resp := post("text/plain", success)
		assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
	})
}

// OTLP/HTTP exporters compress with gzip by default; the receiver's
// confighttp server decompresses before the handler sees the body.
func TestGzipThroughConfighttp(t *testing.T) {
	var got []event.Event
	h := webhook.NewHandler(webhook.Options{
		Routes: []webhook.Route{{Path: "/v1/traces", Provider: provider(pipelines("deploy"))}},
		Sink: func(_ context.Context, _ string, evs []event.Event) (webhook.SinkResult, error) {
			got = append(got, evs...)
			return webhook.SinkResult{Accepted: len(evs)}, nil
		},
	})
	sc := confighttp.NewDefaultServerConfig()
	sc.NetAddr.Endpoint = "127.0.0.1:0"
	ln, err := sc.ToListener(context.Background())
	require.NoError(t, err)
	srv, err := sc.ToServer(context.Background(), nil, componenttest.NewNopTelemetrySettings(), h)
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, err = zw.Write(protobuf(t, webhooktest.Fixture(t, "github-deploy-success.json")))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	req, err := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/v1/traces", &zipped)
	require.NoError(t, err)
	req.Header.Set("Content-Type", ContentTypeProtobuf)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, ContentTypeProtobuf, resp.Header.Get("Content-Type"))
	require.Len(t, got, 1)
	assert.Equal(t, event.DeploymentSucceeded, got[0].Kind)
}

func TestWriteError(t *testing.T) {
	p := provider(nil)
	rec := httptest.NewRecorder()
	p.WriteError(rec, http.Header{"Content-Type": {ContentTypeProtobuf}}, http.StatusBadRequest, "bad")
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, ContentTypeProtobuf, rec.Header().Get("Content-Type"))
	assert.Equal(t, []byte{0x08, 3, 0x12, 3, 'b', 'a', 'd'}, rec.Body.Bytes(), "google.rpc.Status{code: InvalidArgument, message: bad}")

	rec = httptest.NewRecorder()
	p.WriteError(rec, http.Header{"Content-Type": {"application/json; charset=utf-8"}}, http.StatusServiceUnavailable, "retry later")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, ContentTypeJSON, rec.Header().Get("Content-Type"))
	assert.JSONEq(t, `{"code":14,"message":"retry later"}`, rec.Body.String())
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"github-deploy-success.json", "github-deploy-failure.json", "github-ci.json", "gitlab-pipeline.json", "jenkins-deploy-success.json", "jenkins-deploy-failure.json"} {
		// Compact seeds keep minimization (which the fuzzer runs on every
		// new input) short.
		var body bytes.Buffer
		require.NoError(f, json.Compact(&body, webhooktest.Fixture(f, name)))
		f.Add(body.Bytes(), true)
		f.Add(protobuf(f, body.Bytes()), false)
	}
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","attributes":[{"key":"cicd.pipeline.task.type","value":{"stringValue":"deploy"}},{"key":"cicd.pipeline.task.run.result","value":{"stringValue":"failure"}}]}]}]}]}`), true)
	f.Add([]byte(strings.Repeat("[", 80)), true)
	f.Add([]byte{0x0a, 0xff, 0xff}, false)
	p := provider(func(c *Config) {
		c.DeploymentPipelines = []string{"deploy"}
		c.DeploymentTasks = []string{"deploy*"}
	})
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		req := protoReq(body)
		if isJSON {
			req = jsonReq(body)
		}
		res, err := p.Parse(req)
		if err != nil {
			// Refused as the sender's fault, never a 5xx or a panic.
			status := webhook.StatusOf(err)
			require.True(t, status >= 400 && status < 500, "a parse error is refused as the sender's: %d", status)
			return
		}
		if len(res.Events) == 0 {
			require.NotEmpty(t, res.Ignored)
		}
		for _, ev := range res.Events {
			require.True(t, ev.Kind == event.DeploymentSucceeded || ev.Kind == event.DeploymentFailed)
			require.NotEmpty(t, ev.ID)
			require.NotEmpty(t, ev.DeploymentID)
			require.NotEmpty(t, ev.Service.Environment)
			require.False(t, ev.Time.IsZero())
			if ev.Revision != "" {
				_, err := hex.DecodeString(ev.Revision)
				require.NoError(t, err)
			}
		}
	})
}

// spanOf builds one span of trace 5b8e...; attrs as in span(); parent is
// empty for a root span.
func spanOf(td ptrace.Traces, name string, id, parent byte, end time.Time, kv ...string) {
	rs := td.ResourceSpans().AppendEmpty()
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetName(name)
	s.SetTraceID(pcommon.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c})
	s.SetSpanID(pcommon.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, id})
	if parent != 0 {
		s.SetParentSpanID(pcommon.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, parent})
	}
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-5 * time.Minute)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	for _, pair := range kv {
		k, v, _ := strings.Cut(pair, "=")
		m := s.Attributes()
		if rk, ok := strings.CutPrefix(k, "resource:"); ok {
			k, m = rk, rs.Resource().Attributes()
		}
		m.PutStr(k, v)
	}
}

func export(t testing.TB, td ptrace.Traces) []byte {
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	return b
}

// The pipeline run deploy-search (its CI's service.name) and its deploy
// task (the Kubernetes workload) are one trace: one deployment of one
// service, whether they come in one export or two, in either order.
func TestTraceIsOneService(t *testing.T) {
	end := time.Date(2026, 11, 2, 11, 10, 0, 0, time.UTC)
	run := func(td ptrace.Traces) {
		spanOf(td, "deploy-search", 1, 0, end, "resource:service.name=search-ci",
			"cicd.pipeline.run.id=7001", "cicd.pipeline.result=success")
	}
	task := func(td ptrace.Traces) {
		spanOf(td, "rollout", 2, 1, end.Add(-time.Minute), "resource:service.name=search-ci",
			"cicd.pipeline.task.type=deploy", "cicd.pipeline.task.run.result=success",
			"k8s.namespace.name=search", "k8s.deployment.name=search")
	}
	want := event.Service{Namespace: "search", Name: "search", Environment: "production"}
	check := func(t *testing.T, p *Provider, exports ...[]byte) {
		eng, err := engine.New(engine.DefaultConfig(), end.Add(-48*time.Hour))
		require.NoError(t, err)
		var evs []event.Event
		for _, b := range exports {
			res, err := p.Parse(protoReq(b))
			require.NoError(t, err)
			evs = append(evs, res.Events...)
		}
		require.Len(t, evs, 2, "the run and the task are both deployments")
		for _, ev := range evs {
			_, err := eng.Apply(ev)
			require.NoError(t, err)
		}
		snap := eng.Snapshot()
		require.Len(t, snap.Deployments, 1, "one series: %+v", snap.Deployments)
		assert.Equal(t, uint64(1), snap.Deployments[0].Value)
		assert.Equal(t, evs[0].Service, evs[1].Service)
	}
	t.Run("one export", func(t *testing.T) {
		td := ptrace.NewTraces()
		run(td)
		task(td)
		p := provider(pipelines("deploy-*"))
		check(t, p, export(t, td))
		res, err := p.Parse(protoReq(export(t, td)))
		require.NoError(t, err)
		assert.Equal(t, want, res.Events[1].Service, "the workload beats service.name")
	})
	t.Run("task first, then run", func(t *testing.T) {
		t1, t2 := ptrace.NewTraces(), ptrace.NewTraces()
		task(t1)
		run(t2)
		p := provider(pipelines("deploy-*"))
		check(t, p, export(t, t1), export(t, t2))
		res, err := p.Parse(protoReq(export(t, t2)))
		require.NoError(t, err)
		assert.Equal(t, want, res.Events[0].Service, "the run takes the workload its task named")
	})
	t.Run("run first, then task", func(t *testing.T) {
		t1, t2 := ptrace.NewTraces(), ptrace.NewTraces()
		run(t1)
		task(t2)
		check(t, provider(pipelines("deploy-*")), export(t, t1), export(t, t2))
	})
	t.Run("a non-deployment span names the workload", func(t *testing.T) {
		td := ptrace.NewTraces()
		spanOf(td, "kubectl apply", 3, 1, end.Add(-2*time.Minute), "k8s.namespace.name=search", "k8s.deployment.name=search")
		p := provider(pipelines("deploy-*"))
		res, err := p.Parse(protoReq(export(t, td)))
		require.NoError(t, err)
		assert.Empty(t, res.Events)
		t2 := ptrace.NewTraces()
		run(t2)
		res, err = p.Parse(protoReq(export(t, t2)))
		require.NoError(t, err)
		require.Len(t, res.Events, 1)
		assert.Equal(t, want, res.Events[0].Service)
	})
}

// Without a workload, a span's service.name does not name the service when
// there is a repository: the receiver's services mapping does, with
// service.name as its hint, as for webhooks of the repository.
func TestServiceNameIsAHintBesideTheRepository(t *testing.T) {
	// The contrib GitHub receiver with a service_name custom property:
	// service.name "search" on the repository acme/search-api.
	res, err := provider(pipelines("deploy")).Parse(protoReq(span(t, "deploy", true,
		"resource:service.name=search", "resource:vcs.repository.name=search-api",
		"resource:cicd.pipeline.run.url.full=https://github.com/acme/search-api/actions/runs/9",
		"resource:cicd.pipeline.run.status=success")))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.Service{Environment: "production"}, res.Events[0].Service)
	assert.Equal(t, "acme/search-api", res.Events[0].Repository)
	assert.Equal(t, "search", res.Events[0].ServiceHint)

	// Without a repository, service.name is the service.
	res, err = provider(pipelines("deploy")).Parse(protoReq(span(t, "deploy", true,
		"resource:service.name=search", "cicd.pipeline.result=success")))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.Service{Name: "search", Environment: "production"}, res.Events[0].Service)
	assert.Empty(t, res.Events[0].ServiceHint)
}

// A step span that knows only the repository's bare name does not hide the
// full name that its job's URL gives.
func TestFullRepositoryNameWins(t *testing.T) {
	end := time.Date(2026, 11, 2, 11, 10, 0, 0, time.UTC)
	td := ptrace.NewTraces()
	spanOf(td, "Run ./deploy.sh", 3, 2, end, "cicd.pipeline.task.name=Run ./deploy.sh", "resource:vcs.repository.name=api")
	spanOf(td, "deploy", 2, 1, end, "resource:cicd.pipeline.task.run.id=31415926535", "resource:cicd.pipeline.run.task.status=success",
		"resource:vcs.repository.name=api",
		"resource:cicd.pipeline.task.run.url.full=https://github.com/acme/api/actions/runs/1/job/31415926535")
	res, err := provider(tasks("deploy")).Parse(protoReq(export(t, td)))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, "acme/api", res.Events[0].Repository)
}

func TestTraceMemoryIsBounded(t *testing.T) {
	m := newTraceMemory(2)
	id := func(b byte) pcommon.TraceID { return pcommon.TraceID{b} }
	m.merge(id(1), identity{workload: "a"}, false)
	m.merge(id(2), identity{workload: "b"}, false)
	m.merge(id(3), identity{workload: "c"}, false)
	assert.Len(t, m.byID, 2)
	assert.Equal(t, identity{service: "x"}, m.merge(id(1), identity{service: "x"}, false), "the oldest trace was forgotten")
	assert.Equal(t, identity{workload: "c", service: "y"}, m.merge(id(3), identity{service: "y"}, true))
	assert.Equal(t, identity{workload: "c", service: "y"}, m.merge(id(3), identity{namespace: "z"}, true), "fixed by its first event")
	assert.Equal(t, identity{}, m.merge(id(4), identity{}, false))
	assert.Len(t, m.byID, 2, "traces that say nothing are not remembered")
}

// TestOversizedIdentityIsNotRemembered: an export whose workload is longer
// than any limit the receiver accepts is refused there; the trace memory
// must not keep it, so the trace's next export resolves from itself (and
// megabytes are not held for thousands of traces).
func TestOversizedIdentityIsNotRemembered(t *testing.T) {
	m := newTraceMemory(4)
	trace := pcommon.TraceID{1}
	huge := identity{workload: strings.Repeat("x", maxRememberedLen+1)}
	assert.Equal(t, huge, m.merge(trace, huge, true))
	assert.Empty(t, m.byID)
	assert.Equal(t, identity{workload: "api"}, m.merge(trace, identity{workload: "api"}, true))

	atLimit := identity{workload: strings.Repeat("y", maxRememberedLen)}
	other := pcommon.TraceID{2}
	m.merge(other, atLimit, false)
	assert.Equal(t, atLimit, m.merge(other, identity{}, true), "a value at the limit is remembered")
}

// A Jenkins pipeline trace as the Jenkins OpenTelemetry plugin exports it
// (ci.pipeline.* on the root span, jenkins.pipeline.step.* on stages, the
// checkout span's git.repository), with the revision set by the
// documented Jenkinsfile snippet: its Deploy stage, or the job, is the
// deployment; the controller's service.name ("jenkins") is no hint.
func TestJenkinsPipeline(t *testing.T) {
	const trace = "3f9c1b0e5d7a4c2e8b6f0a1d2c3e4f50"
	stage := event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceSpans,
		ID:           "otlp/" + trace + "/b1b2c3d4e5f60717/deployment_succeeded",
		Time:         time.Date(2026, 11, 2, 10, 9, 45, 0, time.UTC),
		Service:      event.Service{Environment: "production"},
		Repository:   "acme/checkout-api",
		DeploymentID: "otlp/" + trace,
		Revision:     "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d",
		CommitTime:   time.Date(2026, 11, 2, 8, 41, 7, 0, time.UTC),
	}
	job := stage
	job.ID = "otlp/" + trace + "/a1b2c3d4e5f60718/deployment_succeeded"
	job.Time = time.Date(2026, 11, 2, 10, 9, 51, 0, time.UTC)

	body := webhooktest.Fixture(t, "jenkins-deploy-success.json")
	res, err := provider(tasks("deploy")).Parse(jsonReq(body))
	require.NoError(t, err)
	assert.Equal(t, []event.Event{stage}, res.Events, "the Deploy stage; Checkout and Build are not deployments")

	res, err = provider(pipelines("acme/*-deploy")).Parse(jsonReq(body))
	require.NoError(t, err)
	assert.Equal(t, []event.Event{job}, res.Events, "the job by its full name (ci.pipeline.id)")

	res, err = provider(pipelines("acme » checkout-api-deploy")).Parse(jsonReq(body))
	require.NoError(t, err)
	assert.Equal(t, []event.Event{job}, res.Events, "the job by its display name (ci.pipeline.name)")

	res, err = provider(nil).Parse(jsonReq(body))
	require.NoError(t, err)
	assert.Empty(t, res.Events, "nothing configured: no Jenkins span is a deployment")
	assert.NotEmpty(t, res.Ignored)

	res, err = provider(func(c *Config) {
		c.DeploymentPipelines = []string{"acme/checkout-api-deploy"}
		c.DeploymentTasks = []string{"deploy"}
	}).Parse(jsonReq(webhooktest.Fixture(t, "jenkins-deploy-failure.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	for _, ev := range res.Events {
		assert.Equal(t, event.DeploymentFailed, ev.Kind)
		assert.Equal(t, "failure", ev.Reason)
		assert.Equal(t, "otlp/4a0d2c1f6e8b5d3f9c7a1b2e3d4f5061", ev.DeploymentID, "the stage and the job are one deployment")
		assert.Equal(t, "acme/checkout-api", ev.Repository)
	}
}

// The Jenkins results (Result and the stages' GenericStatus, upper case)
// map as the plugin's own cicd.pipeline.result mapping does; UNSTABLE
// counts as a failed deployment, ABORTED and NOT_BUILT/NOT_EXECUTED as
// none.
func TestJenkinsResults(t *testing.T) {
	for result, want := range map[string]string{
		"SUCCESS": "deployment_succeeded", "FAILURE": "deployment_failed", "UNSTABLE": "deployment_failed",
		"ABORTED": "", "NOT_BUILT": "", "NOT_EXECUTED": "", "PAUSED_PENDING_INPUT": "", "IN_PROGRESS": "",
	} {
		for _, body := range [][]byte{
			span(t, "BUILD deploy", true, "ci.pipeline.id=deploy", "ci.pipeline.run.result="+result),
			span(t, "Stage: Deploy", false, "jenkins.pipeline.step.type=stage", "jenkins.pipeline.step.name=Deploy", "jenkins.pipeline.step.result="+result),
		} {
			res, err := provider(func(c *Config) {
				c.DeploymentPipelines = []string{"deploy"}
				c.DeploymentTasks = []string{"deploy"}
			}).Parse(protoReq(body))
			require.NoError(t, err)
			if want == "" {
				assert.Empty(t, res.Events, result)
				continue
			}
			require.Len(t, res.Events, 1, result)
			assert.Equal(t, want, res.Events[0].Kind.String(), result)
			if result == "UNSTABLE" {
				assert.Equal(t, "unstable", res.Events[0].Reason)
			}
		}
	}
	// A step span that is not a stage is never a deployment, whatever its name.
	res, err := provider(tasks("deploy*")).Parse(protoReq(span(t, "deploy.sh", false,
		"jenkins.pipeline.step.type=sh", "jenkins.pipeline.step.name=deploy.sh", "jenkins.pipeline.step.result=SUCCESS")))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
}

// TestRevisionIsTheTraces: a deployment span without a revision takes the
// one another span of its trace carries, with that span's commit time, in
// one export or from the trace memory of an earlier one (the OTel SDK
// exports a deploy task's span before its run's; CI templates often set
// vcs.ref.head.revision on the run only). A span's own revision stays.
func TestRevisionIsTheTraces(t *testing.T) {
	end := time.Date(2026, 11, 2, 11, 10, 0, 0, time.UTC)
	const sha = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
	committed := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	run := func(td ptrace.Traces) {
		spanOf(td, "deploy-api", 1, 0, end, "cicd.pipeline.run.id=7001", "cicd.pipeline.result=success",
			"vcs.ref.head.revision="+sha, "vcs.ref.head.revision.timestamp=2026-11-02 09:00:00 UTC")
	}
	task := func(td ptrace.Traces) {
		spanOf(td, "rollout", 2, 1, end.Add(-time.Minute), "cicd.pipeline.task.type=deploy",
			"cicd.pipeline.task.run.result=success", "k8s.namespace.name=shop", "k8s.deployment.name=api")
	}
	check := func(t *testing.T, evs []event.Event) {
		t.Helper()
		for _, ev := range evs {
			assert.Equal(t, sha, ev.Revision, ev.ID)
			assert.True(t, committed.Equal(ev.CommitTime), "%s: %s", ev.ID, ev.CommitTime)
		}
	}
	t.Run("one export, the task's span first", func(t *testing.T) {
		td := ptrace.NewTraces()
		task(td)
		run(td)
		res, err := provider(pipelines("deploy-*")).Parse(protoReq(export(t, td)))
		require.NoError(t, err)
		require.Len(t, res.Events, 2)
		check(t, res.Events)
	})
	t.Run("the run, then the task in a later export", func(t *testing.T) {
		t1, t2 := ptrace.NewTraces(), ptrace.NewTraces()
		run(t1)
		task(t2)
		p := provider(pipelines("deploy-*"))
		var evs []event.Event
		for _, td := range []ptrace.Traces{t1, t2} {
			res, err := p.Parse(protoReq(export(t, td)))
			require.NoError(t, err)
			evs = append(evs, res.Events...)
		}
		require.Len(t, evs, 2)
		check(t, evs)
	})
	t.Run("a span's own revision stays", func(t *testing.T) {
		const other = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"
		td := ptrace.NewTraces()
		spanOf(td, "rollout", 2, 1, end.Add(-time.Minute), "cicd.pipeline.task.type=deploy",
			"cicd.pipeline.task.run.result=success", "vcs.ref.head.revision="+other)
		run(td)
		res, err := provider(pipelines("deploy-*")).Parse(protoReq(export(t, td)))
		require.NoError(t, err)
		require.Len(t, res.Events, 2)
		assert.Equal(t, other, res.Events[0].Revision)
		assert.Equal(t, sha, res.Events[1].Revision)
	})
}
