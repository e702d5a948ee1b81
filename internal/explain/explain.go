// Package explain turns the engine's deployment reports into traces and log
// records, so that a user can see where a deployment's lead time went:
//
//   - one trace per production deployment: a root span "deploy <service>"
//     from its first (oldest) change's commit to production, a child span
//     "change <sha7>" per change it shipped (commit to production), and a
//     child span "stage <name>" per lead time stage of its first change
//     whose boundaries are known (coding, review, build, deploy); links to
//     the CI/CD spans that reported the deployment, when it came from the
//     OTLP spans source;
//   - one log record per production deployment carrying every number
//     computed for it.
//
// The trace id is derived from the service and the deployment id, so a
// deployment reported again gives the same trace. The numbers are those of
// the metrics (platform.lead_time, platform.lead_time.stage,
// platform.lead_time.dropped, platform.deployments.rework); METRICS.md
// describes them.
package explain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Attribute keys. The OTel semantic conventions' names where they exist
// (service, deployment, vcs, k8s), dora.* for the computed numbers.
const (
	AttrServiceName     = "service.name"
	AttrEnvironment     = "deployment.environment.name"
	AttrK8sNamespace    = "k8s.namespace.name"
	AttrK8sDeployment   = "k8s.deployment.name"
	AttrK8sCluster      = "k8s.cluster.name"
	AttrDeploymentID    = "deployment.id"
	AttrDeploymentState = "deployment.status"
	AttrRevision        = "vcs.ref.head.revision"
	AttrRepository      = "vcs.repository.name"

	AttrSource        = "dora.deployment.source"
	AttrAliases       = "dora.deployment.aliases"
	AttrFailureReason = "dora.failure.reason"
	AttrRework        = "dora.rework"
	AttrRollback      = "dora.rollback"
	AttrHotfix        = "dora.hotfix"
	AttrHistoryStart  = "dora.history_start"
	// AttrCommits: commits shipped for the first time; AttrChanges: those
	// with a recorded lead time.
	AttrCommits = "dora.commits"
	AttrChanges = "dora.changes"
	// AttrLeadTime is the lead time of a change span; on the root span and
	// the log record, the longest of the deployment (its first change).
	AttrLeadTime       = "dora.lead_time_seconds"
	AttrLeadTimeMedian = "dora.lead_time.median_seconds"
	AttrLeadTimeMin    = "dora.lead_time.min_seconds"
	AttrLeadTimeMax    = "dora.lead_time.max_seconds"
	// AttrDropped counts the commits whose lead time was dropped
	// (platform.lead_time.dropped); AttrDroppedPrefix + reason counts each
	// reason.
	AttrDropped       = "dora.lead_time.dropped.count"
	AttrDroppedPrefix = "dora.lead_time.dropped."
	// AttrDroppedReason says why a commit has no lead time (span events).
	AttrDroppedReason = "dora.lead_time.dropped.reason"
	AttrCommitTime    = "dora.commit.time"
	// AttrStagePrefix + stage + "_seconds": a stage's duration (on the
	// root span and the log record, of the deployment's first change).
	AttrStagePrefix   = "dora.stage."
	AttrStage         = "dora.stage.name"
	AttrStageDuration = "dora.stage.duration_seconds"
	AttrLinkKind      = "dora.link.kind"
)

// Values of AttrDroppedReason for commits without a lead time that are not
// counted as dropped (see engine.ShippedCommit).
const (
	NoLeadTimeUnknownCommitTime = "unknown_commit_time"
	NoLeadTimeRollback          = "rollback"
)

// Values of AttrLinkKind.
const (
	// LinkCISpan links the CI/CD span that reported the deployment.
	LinkCISpan = "ci_span"
	// LinkCITrace links the CI/CD run's trace, when its span is unknown.
	LinkCITrace = "ci_trace"
)

// EventName is the log record's event name.
const EventName = "dora.deployment"

// maxCommitEvents bounds the span events listing commits without a lead
// time (the first deployment of a service can ship up to 1000).
const maxCommitEvents = 64

// Builder renders reports; ScopeName and ScopeVersion name the
// instrumentation scope.
type Builder struct {
	ScopeName    string
	ScopeVersion string
}

// TraceID is the id of the trace of the deployment r: the first 16 bytes of
// the SHA-256 of its service and deployment id (and cluster, when set:
// the same rollout in two clusters is two deployments; without one the id
// is what it was before clusters existed).
func TraceID(r *engine.DeploymentReport) pcommon.TraceID {
	h := sha256.New()
	for _, s := range []string{"dora", r.Service.Namespace, r.Service.Name, r.Service.Environment, r.DeploymentID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if r.Service.Cluster != "" {
		h.Write([]byte(r.Service.Cluster))
		h.Write([]byte{0})
	}
	var id pcommon.TraceID
	copy(id[:], h.Sum(nil))
	return id
}

// spanID is the id of the span named part in trace tid.
func spanID(tid pcommon.TraceID, part string) pcommon.SpanID {
	h := sha256.New()
	h.Write(tid[:])
	h.Write([]byte(part))
	var id pcommon.SpanID
	copy(id[:], h.Sum(nil))
	return id
}

// RootSpanID is the id of the root span of r's trace.
func RootSpanID(r *engine.DeploymentReport) pcommon.SpanID {
	return spanID(TraceID(r), "root")
}

// AppendTraces adds the trace of each report to td.
func (b Builder) AppendTraces(td ptrace.Traces, reports ...*engine.DeploymentReport) {
	for _, r := range reports {
		rs := td.ResourceSpans().AppendEmpty()
		putResource(rs.Resource().Attributes(), r)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName(b.ScopeName)
		ss.Scope().SetVersion(b.ScopeVersion)
		appendSpans(ss.Spans(), r)
	}
}

// Traces returns the traces of the reports.
func (b Builder) Traces(reports ...*engine.DeploymentReport) ptrace.Traces {
	td := ptrace.NewTraces()
	b.AppendTraces(td, reports...)
	return td
}

// AppendLogs adds the log record of each report to ld, observed at
// observed.
func (b Builder) AppendLogs(ld plog.Logs, observed time.Time, reports ...*engine.DeploymentReport) {
	for _, r := range reports {
		rl := ld.ResourceLogs().AppendEmpty()
		putResource(rl.Resource().Attributes(), r)
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName(b.ScopeName)
		sl.Scope().SetVersion(b.ScopeVersion)
		appendRecord(sl.LogRecords(), r, observed)
	}
}

// Logs returns the log records of the reports.
func (b Builder) Logs(observed time.Time, reports ...*engine.DeploymentReport) plog.Logs {
	ld := plog.NewLogs()
	b.AppendLogs(ld, observed, reports...)
	return ld
}

func putResource(m pcommon.Map, r *engine.DeploymentReport) {
	m.PutStr(AttrServiceName, r.Service.Name)
	m.PutStr(AttrEnvironment, r.Service.Environment)
	if r.Service.Namespace != "" {
		// A namespace says the service is (mapped to) a Kubernetes
		// Deployment of that name.
		m.PutStr(AttrK8sNamespace, r.Service.Namespace)
		m.PutStr(AttrK8sDeployment, r.Service.Name)
	}
	if r.Service.Cluster != "" {
		m.PutStr(AttrK8sCluster, r.Service.Cluster)
	}
}

func ts(t time.Time) pcommon.Timestamp { return pcommon.NewTimestampFromTime(t) }

// start is when the root span starts: the commit of the deployment's first
// change, else its first event; never after its finish.
func start(r *engine.DeploymentReport) time.Time {
	s := r.Started
	if c := r.Oldest(); c != nil {
		s = c.CommitTime
	}
	if s.IsZero() || s.After(r.Finished) {
		s = r.Finished
	}
	return s
}

func appendSpans(spans ptrace.SpanSlice, r *engine.DeploymentReport) {
	tid := TraceID(r)
	rootID := spanID(tid, "root")

	root := spans.AppendEmpty()
	root.SetTraceID(tid)
	root.SetSpanID(rootID)
	root.SetName("deploy " + r.Service.Name)
	root.SetKind(ptrace.SpanKindInternal)
	root.SetStartTimestamp(ts(start(r)))
	root.SetEndTimestamp(ts(r.Finished))
	putNumbers(root.Attributes(), r)
	if r.Failed {
		root.Status().SetCode(ptrace.StatusCodeError)
		root.Status().SetMessage("deployment failed: " + r.Reason)
	}
	appendLinks(root.Links(), r)
	appendCommitEvents(root, r)

	child := func(part, name string, from, to time.Time) ptrace.Span {
		s := spans.AppendEmpty()
		s.SetTraceID(tid)
		s.SetSpanID(spanID(tid, part))
		s.SetParentSpanID(rootID)
		s.SetName(name)
		s.SetKind(ptrace.SpanKindInternal)
		s.SetStartTimestamp(ts(from))
		s.SetEndTimestamp(ts(to))
		return s
	}
	if c := r.Oldest(); c != nil {
		for _, st := range c.Stages.Stages() {
			s := child("stage/"+st.Name, "stage "+st.Name, st.Start, st.End)
			s.Attributes().PutStr(AttrStage, st.Name)
			s.Attributes().PutDouble(AttrStageDuration, st.Duration().Seconds())
			s.Attributes().PutStr(AttrRevision, c.Revision)
		}
	}
	for _, c := range r.Commits {
		if !c.Recorded {
			continue
		}
		s := child("change/"+c.Revision, "change "+short(c.Revision), c.CommitTime, c.CommitTime.Add(c.LeadTime))
		a := s.Attributes()
		a.PutStr(AttrRevision, c.Revision)
		a.PutDouble(AttrLeadTime, c.LeadTime.Seconds())
		for _, st := range c.Stages.Stages() {
			a.PutDouble(AttrStagePrefix+st.Name+"_seconds", st.Duration().Seconds())
		}
	}
}

// appendCommitEvents lists, as events of the root span, the commits that
// have no lead time, with the reason.
func appendCommitEvents(root ptrace.Span, r *engine.DeploymentReport) {
	n := 0
	for _, c := range r.Commits {
		if c.Recorded {
			continue
		}
		if n == maxCommitEvents {
			root.SetDroppedEventsCount(root.DroppedEventsCount() + 1)
			continue
		}
		n++
		ev := root.Events().AppendEmpty()
		ev.SetName("commit without lead time")
		ev.SetTimestamp(ts(r.Finished))
		a := ev.Attributes()
		a.PutStr(AttrRevision, c.Revision)
		a.PutStr(AttrDroppedReason, noLeadTimeReason(r, c))
		if !c.CommitTime.IsZero() {
			a.PutStr(AttrCommitTime, c.CommitTime.UTC().Format(time.RFC3339Nano))
		}
	}
}

func noLeadTimeReason(r *engine.DeploymentReport, c engine.ShippedCommit) string {
	switch {
	case c.Dropped != "":
		return c.Dropped
	case r.Rollback:
		return NoLeadTimeRollback
	}
	return NoLeadTimeUnknownCommitTime
}

// appendLinks links the CI/CD spans of the deployment: the spans of the
// OTLP spans source's events (their id is "otlp/<trace id>/<span id>/<kind>",
// see internal/cicdspans), and the traces of its "otlp/<trace id>"
// deployment ids that no event span covers.
func appendLinks(links ptrace.SpanLinkSlice, r *engine.DeploymentReport) {
	seen := map[pcommon.TraceID]bool{}
	type spanKey struct {
		t pcommon.TraceID
		s pcommon.SpanID
	}
	linked := map[spanKey]bool{}
	for _, ev := range r.Events {
		if ev.Source != event.SourceSpans {
			continue
		}
		tid, sid, ok := parseSpanEventID(ev.ID)
		if !ok || linked[spanKey{tid, sid}] {
			continue
		}
		linked[spanKey{tid, sid}] = true
		seen[tid] = true
		l := links.AppendEmpty()
		l.SetTraceID(tid)
		l.SetSpanID(sid)
		l.Attributes().PutStr(AttrLinkKind, LinkCISpan)
	}
	for _, id := range append([]string{r.DeploymentID}, r.Aliases...) {
		tid, ok := parseDeploymentID(id)
		if !ok || seen[tid] {
			continue
		}
		seen[tid] = true
		l := links.AppendEmpty()
		l.SetTraceID(tid)
		l.Attributes().PutStr(AttrLinkKind, LinkCITrace)
	}
}

// parseDeploymentID reads the trace id of an "otlp/<trace id>" deployment id.
func parseDeploymentID(id string) (pcommon.TraceID, bool) {
	var tid pcommon.TraceID
	hexID, ok := strings.CutPrefix(id, "otlp/")
	if !ok || strings.Contains(hexID, "/") {
		return tid, false
	}
	return tid, decodeID(tid[:], hexID)
}

// parseSpanEventID reads an "otlp/<trace id>/<span id>/<kind>" event id.
func parseSpanEventID(id string) (pcommon.TraceID, pcommon.SpanID, bool) {
	var tid pcommon.TraceID
	var sid pcommon.SpanID
	parts := strings.Split(id, "/")
	if len(parts) != 4 || parts[0] != "otlp" {
		return tid, sid, false
	}
	return tid, sid, decodeID(tid[:], parts[1]) && decodeID(sid[:], parts[2])
}

// decodeID decodes a non-zero hex id of exactly len(dst) bytes.
func decodeID(dst []byte, s string) bool {
	if hex.DecodedLen(len(s)) != len(dst) {
		return false
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return false
	}
	return slices.ContainsFunc(dst, func(b byte) bool { return b != 0 })
}

// short is a revision's 7-character abbreviation.
func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

// Numbers are the deployment's computed numbers.
type Numbers struct {
	Changes int
	// Median, Min and Max of the recorded lead times; valid when Changes > 0.
	Median, Min, Max time.Duration
	// Dropped counts the dropped lead times by reason.
	Dropped map[string]int
	// Stages of the deployment's first change.
	Stages []engine.Stage
}

// NumbersOf computes the numbers of r.
func NumbersOf(r *engine.DeploymentReport) Numbers {
	n := Numbers{Dropped: map[string]int{}}
	lts := r.LeadTimes()
	n.Changes = len(lts)
	if len(lts) > 0 {
		slices.Sort(lts)
		n.Min, n.Max = lts[0], lts[len(lts)-1]
		if k := len(lts); k%2 == 1 {
			n.Median = lts[k/2]
		} else {
			n.Median = (lts[k/2-1] + lts[k/2]) / 2
		}
	}
	for _, c := range r.Commits {
		if c.Dropped != "" {
			n.Dropped[c.Dropped]++
		}
	}
	if c := r.Oldest(); c != nil {
		n.Stages = c.Stages.Stages()
	}
	return n
}

// putNumbers puts the attributes of the root span and the log record.
func putNumbers(m pcommon.Map, r *engine.DeploymentReport) {
	m.PutStr(AttrDeploymentID, r.DeploymentID)
	status := "succeeded"
	if r.Failed {
		status = "failed"
		m.PutStr(AttrFailureReason, r.Reason)
	}
	m.PutStr(AttrDeploymentState, status)
	if r.Source != "" {
		m.PutStr(AttrSource, r.Source)
	}
	if len(r.Aliases) > 0 {
		s := m.PutEmptySlice(AttrAliases)
		for _, a := range r.Aliases {
			s.AppendEmpty().SetStr(a)
		}
	}
	if r.Revision != "" {
		m.PutStr(AttrRevision, r.Revision)
	}
	if r.Repository != "" {
		m.PutStr(AttrRepository, r.Repository)
	}
	m.PutBool(AttrRework, r.Rework)
	m.PutBool(AttrRollback, r.Rollback)
	m.PutBool(AttrHotfix, r.Hotfix)
	m.PutBool(AttrHistoryStart, r.HistoryStart)

	n := NumbersOf(r)
	m.PutInt(AttrCommits, int64(len(r.Commits)))
	m.PutInt(AttrChanges, int64(n.Changes))
	if n.Changes > 0 {
		m.PutDouble(AttrLeadTime, n.Max.Seconds())
		m.PutDouble(AttrLeadTimeMedian, n.Median.Seconds())
		m.PutDouble(AttrLeadTimeMin, n.Min.Seconds())
		m.PutDouble(AttrLeadTimeMax, n.Max.Seconds())
	}
	total := 0
	for _, reason := range slices.Sorted(maps.Keys(n.Dropped)) {
		m.PutInt(AttrDroppedPrefix+reason, int64(n.Dropped[reason]))
		total += n.Dropped[reason]
	}
	m.PutInt(AttrDropped, int64(total))
	for _, st := range n.Stages {
		m.PutDouble(AttrStagePrefix+st.Name+"_seconds", st.Duration().Seconds())
	}
}

func appendRecord(records plog.LogRecordSlice, r *engine.DeploymentReport, observed time.Time) {
	lr := records.AppendEmpty()
	lr.SetTimestamp(ts(r.Finished))
	lr.SetObservedTimestamp(ts(observed))
	lr.SetEventName(EventName)
	if r.Failed {
		lr.SetSeverityNumber(plog.SeverityNumberWarn)
		lr.SetSeverityText("WARN")
	} else {
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.SetSeverityText("INFO")
	}
	lr.SetTraceID(TraceID(r))
	lr.SetSpanID(RootSpanID(r))
	lr.Body().SetStr(Summary(r))
	putNumbers(lr.Attributes(), r)
}

// Summary is the log record's body: one line saying what the deployment
// shipped and how long its changes took.
func Summary(r *engine.DeploymentReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "deployment of %s to %s", r.Service.Name, r.Service.Environment)
	if r.Failed {
		fmt.Fprintf(&b, " failed (%s)", r.Reason)
		return b.String()
	}
	n := NumbersOf(r)
	switch n.Changes {
	case 0:
		b.WriteString(": no change with a lead time")
	default:
		fmt.Fprintf(&b, ": lead time p50 %s, max %s, %d %s", round(n.Median), round(n.Max), n.Changes, plural(n.Changes, "change", "changes"))
	}
	if len(n.Stages) > 0 {
		b.WriteString("; first change:")
		for i, st := range n.Stages {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s %s", st.Name, round(st.Duration()))
		}
	}
	if len(n.Dropped) > 0 {
		var parts []string
		for _, reason := range slices.Sorted(maps.Keys(n.Dropped)) {
			parts = append(parts, fmt.Sprintf("%d %s", n.Dropped[reason], reason))
		}
		fmt.Fprintf(&b, "; dropped: %s", strings.Join(parts, ", "))
	}
	var kinds []string
	for _, k := range []struct {
		on   bool
		name string
	}{{r.Rollback, "rollback"}, {r.Hotfix, "hotfix"}, {r.Rework, "rework"}, {r.HistoryStart, "start of history"}} {
		if k.on {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(kinds, ", "))
	}
	return b.String()
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
