package explain

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

var (
	t0  = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	api = event.Service{Namespace: "shop", Name: "api", Environment: "production"}
	b   = Builder{ScopeName: "github.com/otelcol-dora/dorareceiver", ScopeVersion: "test"}
)

func at(d time.Duration) time.Time { return t0.Add(d) }

// report runs events through a real engine and returns the report of the
// last one.
func report(t *testing.T, events ...event.Event) *engine.DeploymentReport {
	t.Helper()
	e, err := engine.New(engine.DefaultConfig(), t0)
	require.NoError(t, err)
	var last *engine.DeploymentReport
	for i, ev := range events {
		if ev.Source == "" {
			ev.Source = "test"
		}
		if ev.ID == "" {
			ev.ID = fmt.Sprintf("ev-%d", i)
		}
		out, err := e.Apply(ev)
		require.NoError(t, err, "event %d", i)
		last = out.Deployment
	}
	require.NotNil(t, last, "the last event finishes a production deployment")
	return last
}

func deploy(kind event.Kind, id, rev string, t time.Duration) event.Event {
	return event.Event{Kind: kind, Time: at(t), Service: api, Repository: "acme/api", DeploymentID: id, Revision: rev}
}

func commit(rev, parent string, t time.Duration) event.Event {
	return event.Event{Kind: event.ChangeCommitted, Time: at(t), Revision: rev, ParentRevision: parent}
}

// reviewed is a deployment of three commits: c1 at 0, c2 at 10m, the merge
// commit m1 at 30m of the change opened at 15m; the rollout starts at 40m
// and reaches production at 60m. The service's history started the day
// before.
func reviewed(t *testing.T) *engine.DeploymentReport {
	return report(t,
		deploy(event.DeploymentSucceeded, "d0", "c0", -24*time.Hour),
		commit("c1aaaaaaaa", "c0", 0),
		commit("c2bbbbbbbb", "c1aaaaaaaa", 10*time.Minute),
		event.Event{Kind: event.ChangeOpened, Time: at(15 * time.Minute), ChangeID: "pr-1"},
		commit("m1cccccccc", "c2bbbbbbbb", 30*time.Minute),
		event.Event{Kind: event.ChangeMerged, Time: at(30 * time.Minute), Revision: "m1cccccccc", ChangeID: "pr-1"},
		deploy(event.DeploymentStarted, "d1", "m1cccccccc", 40*time.Minute),
		deploy(event.DeploymentSucceeded, "d1", "m1cccccccc", time.Hour),
	)
}

type spanView struct {
	name       string
	parent     string
	start, end time.Time
}

// tree renders the spans of the single trace in td as name -> view, and
// returns the attributes by span name.
func tree(t *testing.T, td ptrace.Traces) ([]spanView, map[string]pcommon.Map, pcommon.TraceID) {
	t.Helper()
	require.Equal(t, 1, td.ResourceSpans().Len())
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	names := map[pcommon.SpanID]string{}
	for i := 0; i < spans.Len(); i++ {
		names[spans.At(i).SpanID()] = spans.At(i).Name()
	}
	var out []spanView
	attrs := map[string]pcommon.Map{}
	tid := spans.At(0).TraceID()
	for i := 0; i < spans.Len(); i++ {
		s := spans.At(i)
		require.Equal(t, tid, s.TraceID(), "one trace")
		require.False(t, s.SpanID().IsEmpty())
		out = append(out, spanView{s.Name(), names[s.ParentSpanID()], s.StartTimestamp().AsTime(), s.EndTimestamp().AsTime()})
		attrs[s.Name()] = s.Attributes()
	}
	return out, attrs, tid
}

func TestTraceOfDeployment(t *testing.T) {
	r := reviewed(t)
	td := b.Traces(r)
	assert.Equal(t, 8, td.SpanCount())

	res := td.ResourceSpans().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, map[string]any{
		"service.name":                "api",
		"deployment.environment.name": "production",
		"k8s.namespace.name":          "shop",
		"k8s.deployment.name":         "api",
	}, res)
	scope := td.ResourceSpans().At(0).ScopeSpans().At(0).Scope()
	assert.Equal(t, "github.com/otelcol-dora/dorareceiver", scope.Name())
	assert.Equal(t, "test", scope.Version())

	spans, attrs, tid := tree(t, td)
	assert.Equal(t, TraceID(r), tid)
	// The root spans the first commit to production; its stages split
	// the first change's lead time; each change runs from its commit to
	// production.
	assert.Equal(t, []spanView{
		{"deploy api", "", at(0), at(time.Hour)},
		{"stage coding", "deploy api", at(0), at(15 * time.Minute)},
		{"stage review", "deploy api", at(15 * time.Minute), at(30 * time.Minute)},
		{"stage build", "deploy api", at(30 * time.Minute), at(40 * time.Minute)},
		{"stage deploy", "deploy api", at(40 * time.Minute), at(time.Hour)},
		{"change m1ccccc", "deploy api", at(30 * time.Minute), at(time.Hour)},
		{"change c2bbbbb", "deploy api", at(10 * time.Minute), at(time.Hour)},
		{"change c1aaaaa", "deploy api", at(0), at(time.Hour)},
	}, spans)

	assert.Equal(t, map[string]any{
		"deployment.id":                 "d1",
		"deployment.status":             "succeeded",
		"dora.deployment.source":        "test",
		"vcs.ref.head.revision":         "m1cccccccc",
		"vcs.repository.name":           "acme/api",
		"dora.rework":                   false,
		"dora.rollback":                 false,
		"dora.hotfix":                   false,
		"dora.history_start":            false,
		"dora.commits":                  int64(3),
		"dora.changes":                  int64(3),
		"dora.lead_time_seconds":        3600.0,
		"dora.lead_time.median_seconds": 3000.0,
		"dora.lead_time.min_seconds":    1800.0,
		"dora.lead_time.max_seconds":    3600.0,
		"dora.lead_time.dropped.count":  int64(0),
		"dora.stage.coding_seconds":     900.0,
		"dora.stage.review_seconds":     900.0,
		"dora.stage.build_seconds":      600.0,
		"dora.stage.deploy_seconds":     1200.0,
	}, attrs["deploy api"].AsRaw())
	assert.Equal(t, map[string]any{
		"vcs.ref.head.revision":     "c2bbbbbbbb",
		"dora.lead_time_seconds":    3000.0,
		"dora.stage.coding_seconds": 300.0,
		"dora.stage.review_seconds": 900.0,
		"dora.stage.build_seconds":  600.0,
		"dora.stage.deploy_seconds": 1200.0,
	}, attrs["change c2bbbbb"].AsRaw())
	assert.Equal(t, map[string]any{
		"dora.stage.name":             "review",
		"dora.stage.duration_seconds": 900.0,
		"vcs.ref.head.revision":       "c1aaaaaaaa",
	}, attrs["stage review"].AsRaw())

	root := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	assert.Equal(t, ptrace.StatusCodeUnset, root.Status().Code())
	assert.Zero(t, root.Links().Len(), "no CI/CD spans reported this deployment")
	assert.Zero(t, root.Events().Len(), "every commit has a lead time")
}

func TestTraceIsDeterministic(t *testing.T) {
	r := reviewed(t)
	first, second := b.Traces(r), b.Traces(reviewed(t))
	assert.Equal(t, first, second, "the same deployment gives the same trace, ids included")

	other := *r
	other.DeploymentID = "d2"
	assert.NotEqual(t, TraceID(r), TraceID(&other))
	other = *r
	other.Service.Name = "web"
	assert.NotEqual(t, TraceID(r), TraceID(&other), "a deployment id is only unique within a service")

	// Span ids differ within the trace.
	spans := first.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	ids := map[pcommon.SpanID]bool{}
	for i := 0; i < spans.Len(); i++ {
		ids[spans.At(i).SpanID()] = true
	}
	assert.Len(t, ids, spans.Len())
}

func TestCommitsWithoutLeadTime(t *testing.T) {
	// The first deployment of the service ships c2, known only from the
	// deployment (its commit time), committed before the service's history
	// started (this deployment): before_history.
	first := deploy(event.DeploymentSucceeded, "d0", "c2", 0)
	first.CommitTime = at(-time.Hour)
	r := report(t, first)
	td := b.Traces(r)
	require.Equal(t, 1, td.SpanCount(), "no change span, no stage span")
	root := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	assert.Equal(t, at(0), root.StartTimestamp().AsTime(), "without a change the root is the deployment")
	assert.Equal(t, at(0), root.EndTimestamp().AsTime())
	require.Equal(t, 1, root.Events().Len())
	assert.Equal(t, map[string]any{
		"vcs.ref.head.revision":         "c2",
		"dora.lead_time.dropped.reason": "before_history",
		"dora.commit.time":              "2026-11-02T08:00:00Z",
	}, root.Events().At(0).Attributes().AsRaw())
	a := root.Attributes().AsRaw()
	assert.Equal(t, true, a["dora.history_start"])
	assert.Equal(t, int64(1), a["dora.lead_time.dropped.count"])
	assert.Equal(t, int64(1), a["dora.lead_time.dropped.before_history"])
	assert.NotContains(t, a, "dora.lead_time_seconds")

	// Many commits: the events are bounded.
	many := *r
	many.Commits = nil
	for i := range 100 {
		many.Commits = append(many.Commits, engine.ShippedCommit{Revision: fmt.Sprint(i)})
	}
	root = b.Traces(&many).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	assert.Equal(t, maxCommitEvents, root.Events().Len())
	assert.EqualValues(t, 100-maxCommitEvents, root.DroppedEventsCount())
	assert.Equal(t, "unknown_commit_time", root.Events().At(0).Attributes().AsRaw()["dora.lead_time.dropped.reason"])
}

func TestFailedDeployment(t *testing.T) {
	fail := deploy(event.DeploymentFailed, "d1", "c1", 2*time.Hour)
	fail.Reason = "ProgressDeadlineExceeded"
	r := report(t, deploy(event.DeploymentStarted, "d1", "c1", time.Hour), fail)
	td := b.Traces(r)
	require.Equal(t, 1, td.SpanCount())
	root := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	assert.Equal(t, at(time.Hour), root.StartTimestamp().AsTime())
	assert.Equal(t, at(2*time.Hour), root.EndTimestamp().AsTime())
	assert.Equal(t, ptrace.StatusCodeError, root.Status().Code())
	assert.Equal(t, "deployment failed: ProgressDeadlineExceeded", root.Status().Message())
	a := root.Attributes().AsRaw()
	assert.Equal(t, "failed", a["deployment.status"])
	assert.Equal(t, "ProgressDeadlineExceeded", a["dora.failure.reason"])

	lr := b.Logs(at(3*time.Hour), r).ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	assert.Equal(t, plog.SeverityNumberWarn, lr.SeverityNumber())
	assert.Equal(t, "deployment of api to production failed (ProgressDeadlineExceeded)", lr.Body().Str())
}

func TestLogRecordOfDeployment(t *testing.T) {
	r := reviewed(t)
	ld := b.Logs(at(2*time.Hour), r)
	require.Equal(t, 1, ld.LogRecordCount())
	rl := ld.ResourceLogs().At(0)
	assert.Equal(t, "api", rl.Resource().Attributes().AsRaw()["service.name"])
	lr := rl.ScopeLogs().At(0).LogRecords().At(0)
	assert.Equal(t, at(time.Hour), lr.Timestamp().AsTime())
	assert.Equal(t, at(2*time.Hour), lr.ObservedTimestamp().AsTime())
	assert.Equal(t, plog.SeverityNumberInfo, lr.SeverityNumber())
	assert.Equal(t, "INFO", lr.SeverityText())
	assert.Equal(t, EventName, lr.EventName())
	assert.Equal(t, "deployment of api to production: lead time p50 50m0s, max 1h0m0s, 3 changes; first change: coding 15m0s, review 15m0s, build 10m0s, deploy 20m0s", lr.Body().Str())
	// The record and the trace's root are correlated and carry the same
	// numbers.
	assert.Equal(t, TraceID(r), lr.TraceID())
	assert.Equal(t, RootSpanID(r), lr.SpanID())
	root := b.Traces(r).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	assert.Equal(t, root.SpanID(), lr.SpanID())
	assert.Equal(t, root.Attributes().AsRaw(), lr.Attributes().AsRaw())
}

func TestSummary(t *testing.T) {
	r := &engine.DeploymentReport{Service: api, Rollback: true, Rework: true, Commits: []engine.ShippedCommit{
		{Revision: "a", Recorded: true, LeadTime: 90 * time.Minute},
		{Revision: "b", Dropped: engine.DropClockSkew},
		{Revision: "c", Dropped: engine.DropTooLong},
		{Revision: "d", Dropped: engine.DropClockSkew},
	}}
	assert.Equal(t, "deployment of api to production: lead time p50 1h30m0s, max 1h30m0s, 1 change; dropped: 2 clock_skew, 1 too_long (rollback, rework)", Summary(r))
	assert.Equal(t, "deployment of api to production: no change with a lead time", Summary(&engine.DeploymentReport{Service: api}))

	n := NumbersOf(&engine.DeploymentReport{Commits: []engine.ShippedCommit{
		{Recorded: true, LeadTime: 4 * time.Minute}, {Recorded: true, LeadTime: time.Minute},
		{Recorded: true, LeadTime: 2 * time.Minute}, {Recorded: true, LeadTime: 10 * time.Minute},
	}})
	assert.Equal(t, Numbers{Changes: 4, Median: 3 * time.Minute, Min: time.Minute, Max: 10 * time.Minute, Dropped: map[string]int{}}, n)
}

// otlpDeploy is an OTLP export of a CI/CD run whose job deploys to
// production, as the contrib GitHub receiver sends it.
func otlpDeploy(t *testing.T, tid pcommon.TraceID, sid pcommon.SpanID, end time.Time) []byte {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("vcs.repository.name", "api")
	rs.Resource().Attributes().PutStr("vcs.repository.url.full", "https://github.com/acme/api")
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(tid)
	s.SetSpanID(sid)
	s.SetName("deploy")
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-5 * time.Minute)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	s.Attributes().PutStr("cicd.pipeline.name", "deploy")
	s.Attributes().PutStr("cicd.pipeline.result", "success")
	s.Attributes().PutStr("deployment.environment.name", "production")
	s.Attributes().PutStr("service.name", "api")
	s.Attributes().PutStr("k8s.namespace.name", "shop")
	s.Attributes().PutStr("vcs.ref.head.revision", "c1aaaaaaaa")
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	require.NoError(t, err)
	return body
}

func TestLinksToCISpans(t *testing.T) {
	tid := pcommon.TraceID{0xe6, 0x3f, 0xf8, 0x8f, 0xcd, 0x41, 0x3c, 0xb5, 0xe8, 0x11, 0x59, 0x1b, 0x4e, 0x28, 0xba, 0x13}
	sid := pcommon.SpanID{0xa8, 0xab, 0x05, 0x2c, 0x0d, 0x15, 0x6f, 0x73}
	cfg := cicdspans.DefaultConfig()
	cfg.DeploymentPipelines = []string{"deploy"}
	h := http.Header{}
	h.Set("Content-Type", cicdspans.ContentTypeJSON)
	res, err := cicdspans.New(cfg).Parse(&webhook.Request{Header: h, Body: otlpDeploy(t, tid, sid, at(time.Hour)), Received: at(2 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, res.Events, 1, "the span is a deployment")

	ci := res.Events[0]
	if ci.Service.Name == "" {
		// The receiver maps the repository to its service.
		ci.Service.Name = "api"
	}
	r := report(t, deploy(event.DeploymentSucceeded, "d0", "c0", -24*time.Hour), commit("c1aaaaaaaa", "c0", 0), ci)
	assert.Equal(t, "otlp/"+tid.String(), r.DeploymentID)
	links := b.Traces(r).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Links()
	require.Equal(t, 1, links.Len())
	assert.Equal(t, tid, links.At(0).TraceID())
	assert.Equal(t, sid, links.At(0).SpanID(), "the link names the CI/CD span that reported the deployment")
	assert.Equal(t, LinkCISpan, links.At(0).Attributes().AsRaw()[AttrLinkKind])

	t.Run("a deployment id alone links the CI trace", func(t *testing.T) {
		r := *r
		r.Events = nil
		r.DeploymentID = "k8s/shop/api/3"
		r.Aliases = []string{"otlp/" + tid.String(), "otlp/not-hex", "otlp/" + pcommon.TraceID{}.String()}
		links := b.Traces(&r).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Links()
		require.Equal(t, 1, links.Len())
		assert.Equal(t, tid, links.At(0).TraceID())
		assert.True(t, links.At(0).SpanID().IsEmpty())
		assert.Equal(t, LinkCITrace, links.At(0).Attributes().AsRaw()[AttrLinkKind])
	})
}
