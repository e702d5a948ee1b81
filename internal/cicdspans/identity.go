package cicdspans

import (
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// identity is what the spans of one trace say about the service it
// deploys. A trace is one deployment (its DeploymentID is the trace id), so
// all its events get one service, resolved from the most specific
// attribute found on any of its spans, in this order:
//
//  1. k8s.deployment.name, with k8s.namespace.name: the workload itself.
//     The services mapping does not change it.
//  2. the repository (vcs.repository.url.full, vcs.owner.name +
//     vcs.repository.name, the run or job URL): the receiver's services
//     mapping resolves it exactly as it does for webhooks, so the spans
//     and the webhooks of one repository land on one series.
//     service.name (unless it only restates the repository) is a hint the
//     mapping uses when it does not map the repository to one service:
//     to pick a monorepo's service, else as the service name; without it,
//     the repository's last path element. k8s.namespace.name alone stays
//     the namespace unless the mapping names one.
//  3. service.name alone (no repository).
//
// service.name is the weakest: the contrib GitHub receiver sets it to the
// repository name, a custom property or one name for all repositories,
// and CI systems to their own name (search-ci), not the workload's.
//
// Each attribute is taken from the first span that has it (the span's own
// attributes before its resource's); a full repository name (org/repo)
// beats a bare one.
//
// The deployed revision is the trace's too: a deployment span without
// vcs.ref.head.revision takes the one another span of the trace carries
// (SDKs export a deploy task's span before its run's, and CI templates set
// the revision on the run only), with that span's commit time.
type identity struct {
	namespace, workload string // k8s.namespace.name, k8s.deployment.name
	repo, repoName      string // repository(): full name and short name
	service             string // service.name
	revision            string // vcs.ref.head.revision, a full SHA
	revisionTime        string // its span's vcs.ref.head.revision.timestamp
}

func (id identity) empty() bool { return id == identity{} }

// maxRememberedLen is the longest value an identity field may have to be
// remembered across exports: the receiver's longest limit on the fields it
// fills (a repository, 1024 bytes). An export with a longer value is
// refused whole, and must leave nothing behind that shapes later exports
// of the same trace or holds megabytes in the trace memory.
const maxRememberedLen = 1024

func (id identity) oversized() bool {
	for _, v := range [...]string{id.namespace, id.workload, id.repo, id.repoName, id.service, id.revisionTime} {
		if len(v) > maxRememberedLen {
			return true
		}
	}
	return false
}

// fill takes from a what id does not have yet.
func (id *identity) fill(a attrs) {
	if id.namespace == "" {
		id.namespace = a.get(attrK8sNamespace)
	}
	if id.workload == "" {
		id.workload = a.get(attrK8sDeployment)
	}
	if !strings.Contains(id.repo, "/") {
		// A full name (org/repo) beats a bare name from an earlier span.
		if repo, name := repository(a); repo != "" && (id.repo == "" || strings.Contains(repo, "/")) {
			id.repo, id.repoName = repo, name
		}
	}
	if id.service == "" {
		svc := a.onSpan(attrServiceName)
		if svc == "" && a.onResource(attrJenkinsPluginVer) == "" {
			// The Jenkins plugin's resource service.name names the
			// Jenkins controller ("jenkins"), never what a job deploys.
			svc = a.onResource(attrServiceName)
		}
		if !strings.HasPrefix(svc, "unknown_service") {
			id.service = svc
		}
	}
	if id.revision == "" {
		if rev := revision(a.get(attrHeadRevision, attrHeadRevisionOld)); rev != "" {
			id.revision, id.revisionTime = rev, a.get(attrHeadRevisionTime)
		}
	}
}

// merge fills id from more, field by field.
func (id *identity) merge(more identity) {
	if id.namespace == "" {
		id.namespace = more.namespace
	}
	if id.workload == "" {
		id.workload = more.workload
	}
	if more.repo != "" && (id.repo == "" || !strings.Contains(id.repo, "/") && strings.Contains(more.repo, "/")) {
		id.repo, id.repoName = more.repo, more.repoName
	}
	if id.service == "" {
		id.service = more.service
	}
	if id.revision == "" {
		id.revision, id.revisionTime = more.revision, more.revisionTime
	}
}

// apply sets the service and the repository of ev by the precedence above,
// and the trace's revision when ev has none.
func (id identity) apply(ev *event.Event) {
	if ev.Revision == "" && id.revision != "" {
		ev.Revision, ev.CommitTime = id.revision, commitTime(id.revisionTime)
	}
	ev.Repository = id.repo
	ev.Service.Namespace = id.namespace
	switch {
	case id.workload != "":
		ev.Service.Name = id.workload
	case id.repo != "":
		// The receiver's services mapping decides (event.ServiceHint).
		if !derivedServiceName(id.service, id.repo, id.repoName) {
			ev.ServiceHint = id.service
		}
	default:
		ev.Service.Name = id.service
	}
}

// traceIdentity is a trace of one export: its id, what its spans say, and
// whether one of them is a deployment.
type traceIdentity struct {
	trace   pcommon.TraceID
	id      identity
	deploys bool
}

// traceIndex returns the index of trace in *ts, appending it when new. The
// spans of a trace usually come together: the last one is tried first.
func traceIndex(ts *[]traceIdentity, trace pcommon.TraceID) int {
	s := *ts
	if n := len(s); n > 0 && s[n-1].trace == trace {
		return n - 1
	}
	for i := range s {
		if s[i].trace == trace {
			return i
		}
	}
	*ts = append(s, traceIdentity{trace: trace})
	return len(s)
}

// traceMemorySize bounds the traces remembered across exports: a few
// thousand pipelines in flight at once.
const traceMemorySize = 8192

// traceMemory remembers the identity of recent traces, because the spans
// of one trace arrive in several exports: the contrib GitHub receiver sends
// a workflow run and each of its jobs apart, and SDKs export a pipeline's
// task spans as they end, before its run span. It is bounded (the oldest
// trace is forgotten first) and in memory: after a restart, or on another
// replica, a trace's later spans are resolved from themselves.
type traceMemory struct {
	mu    sync.Mutex
	max   int
	byID  map[pcommon.TraceID]*remembered
	order []pcommon.TraceID // ring of the remembered ids, oldest at next
	next  int
}

type remembered struct {
	id identity
	// used: an event of the trace got this identity, so it is final; a
	// later span cannot move the trace's deployment to another series.
	used bool
}

func newTraceMemory(size int) *traceMemory {
	return &traceMemory{max: size, byID: map[pcommon.TraceID]*remembered{}}
}

// merge returns the identity of trace from what was remembered and what
// this export says (local), and remembers it; deploys says the export has
// an event of the trace, which fixes the identity from then on. A trace's
// identity is merged until its first event: attributes seen before it (a
// task span's workload) count, attributes first seen after it do not.
func (m *traceMemory) merge(trace pcommon.TraceID, local identity, deploys bool) identity {
	if local.oversized() {
		return local
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.byID[trace]
	if !ok {
		if local.empty() && !deploys {
			return local
		}
		r = &remembered{id: local}
		m.remember(trace, r)
	} else if !r.used {
		r.id.merge(local)
	}
	r.used = r.used || deploys
	return r.id
}

func (m *traceMemory) remember(trace pcommon.TraceID, r *remembered) {
	if len(m.order) < m.max {
		m.order = append(m.order, trace)
	} else {
		delete(m.byID, m.order[m.next])
		m.order[m.next] = trace
		m.next = (m.next + 1) % m.max
	}
	m.byID[trace] = r
}
