package github

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

func fakeSHA(parts ...any) string {
	return fmt.Sprintf("%x", sha1.Sum([]byte(fmt.Sprint(parts...))))
}

// recordingSink keeps the batches; failAfter > 0 makes the batch after
// that many fail.
type recordingSink struct {
	batches   []history.Batch
	failAfter int
}

var errSinkDown = errors.New("sink down")

func (s *recordingSink) Apply(_ context.Context, b history.Batch) error {
	if s.failAfter > 0 && len(s.batches) == s.failAfter {
		return errSinkDown
	}
	s.batches = append(s.batches, b)
	return nil
}

func (s *recordingSink) events() []event.Event {
	var evs []event.Event
	for _, b := range s.batches {
		evs = append(evs, b.Events...)
	}
	return evs
}

func (s *recordingSink) cursor() string { return s.batches[len(s.batches)-1].Cursor }

// monthSpec describes a generated repository history.
type monthSpec struct {
	repo           string
	start          time.Time
	deployments    int
	every          time.Duration
	commitsPer     int
	bigDeployment  int // index of a deployment shipping bigCommits commits
	bigCommits     int
	failed         int // index of a failed deployment, -1: none
	incidentAfter  int // index of the deployment an incident follows, -1: none
	stagingToo     bool
	firstPullAfter int
}

type generated struct {
	inWindow  []fakeDeployment
	commits   []fakeCommit // in the window's chain, in order
	base      string
	pulls     []fakePull
	incidents []fakeIssue
}

// generate builds spec's history on f: a deployment before the window,
// then spec.deployments in it, each shipping its commits (the last one the
// merge commit of a pull request).
func generate(f *fakeGitHub, spec monthSpec) generated {
	r := f.repo(spec.repo)
	var g generated
	idBase := int64(len(f.repos)) * 1_000_000
	sha := func(i int) string { return fakeSHA(spec.repo, "commit", i) }
	n := 0
	addCommit := func(at time.Time, msg string) fakeCommit {
		at = at.Truncate(time.Second) // GitHub's times are in seconds
		c := fakeCommit{sha: sha(n), author: at.Add(-2 * time.Minute), committer: at, message: msg}
		n++
		r.addCommit(c)
		return c
	}
	before := spec.start.Add(-spec.every)
	base := addCommit(before.Add(-time.Hour), "before the window")
	g.base = base.sha
	r.deployments = append(r.deployments, fakeDeployment{id: idBase, sha: base.sha, env: "production", created: before,
		statuses: []fakeStatus{{id: idBase*10 + 1, state: "success", at: before.Add(time.Minute)}}})
	for k := range spec.deployments {
		at := spec.start.Add(time.Duration(k) * spec.every)
		count := spec.commitsPer
		if k == spec.bigDeployment && spec.bigCommits > 0 {
			count = spec.bigCommits
		}
		prev := at.Add(-spec.every)
		var last fakeCommit
		for j := range count {
			// Committed before the deployments that ship them (staging's
			// too, half an hour before production's).
			gap := min(time.Hour, spec.every/2)
			ct := prev.Add(time.Duration(j+1) * (spec.every - gap) / time.Duration(count+1))
			last = addCommit(ct, fmt.Sprintf("change %d of deployment %d", j, k))
			g.commits = append(g.commits, last)
		}
		num := spec.firstPullAfter + k
		pr := fakePull{number: num, created: last.author.Add(-20 * time.Hour), merged: last.committer, updated: last.committer.Add(time.Minute),
			mergeSHA: last.sha, title: fmt.Sprintf("Change %d", k), headRef: fmt.Sprintf("feature-%d", k), labels: []string{"enhancement"}}
		r.pulls = append(r.pulls, pr)
		g.pulls = append(g.pulls, pr)
		id := idBase + int64(k+1)
		outcome := "success"
		if k == spec.failed {
			outcome = "failure"
		}
		d := fakeDeployment{id: id, sha: last.sha, env: "production", created: at, statuses: []fakeStatus{
			{id: id*10 + 1, state: "queued", at: at.Add(10 * time.Second)},
			{id: id*10 + 2, state: "in_progress", at: at.Add(time.Minute)},
			{id: id*10 + 3, state: outcome, at: at.Add(5 * time.Minute)},
		}}
		r.deployments = append(r.deployments, d)
		g.inWindow = append(g.inWindow, d)
		if spec.stagingToo {
			sd := fakeDeployment{id: id + 500_000, sha: last.sha, env: "staging", created: at.Add(-30 * time.Minute), statuses: []fakeStatus{
				{id: (id+500_000)*10 + 1, state: "success", at: at.Add(-25 * time.Minute)},
			}}
			r.deployments = append(r.deployments, sd)
			g.inWindow = append(g.inWindow, sd)
		}
		if k == spec.incidentAfter {
			iss := fakeIssue{number: 9000 + k, created: at.Add(20 * time.Minute), closed: at.Add(80 * time.Minute), labels: []string{"sev2", "Incident"}}
			r.issues = append(r.issues, iss)
			g.incidents = append(g.incidents, iss)
		}
	}
	// Noise the import must leave out: a pull request closed without
	// merging, one merged before the window, an issue without the label,
	// a pull request carrying the label (the issues list holds them too),
	// an incident before the window.
	r.pulls = append(r.pulls,
		fakePull{number: 1, created: spec.start, updated: spec.start.Add(time.Hour), mergeSHA: base.sha, title: "Closed unmerged"},
		fakePull{number: 2, created: before.Add(-48 * time.Hour), merged: before.Add(-47 * time.Hour), updated: before.Add(-47 * time.Hour), mergeSHA: base.sha, title: "Old"},
	)
	r.issues = append(r.issues,
		fakeIssue{number: 3, created: spec.start.Add(time.Hour), labels: []string{"bug"}},
		fakeIssue{number: 4, created: spec.start.Add(time.Hour), labels: []string{"incident"}, pullRequest: true},
		fakeIssue{number: 5, created: before.Add(-time.Hour), closed: spec.start.Add(time.Hour), labels: []string{"incident"}},
	)
	return g
}

func historyConfig(baseURL string, repos ...string) Config {
	cfg := DefaultConfig()
	cfg.Secret = secret
	cfg.History = HistoryConfig{Enabled: true, Repositories: repos, TokenEnv: "DORA_TEST_GITHUB_TOKEN", BaseURL: baseURL + "/"}
	return cfg
}

var monthStart = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

func monthWindow() history.Window {
	return history.Window{From: monthStart, To: monthStart.Add(31 * 24 * time.Hour)}
}

func TestHistoryImportMonth(t *testing.T) {
	t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
	f := newFakeGitHub(t)
	api := generate(f, monthSpec{repo: "acme/api", start: monthStart.Add(time.Hour), deployments: 90, every: 8 * time.Hour, commitsPer: 4,
		bigDeployment: 40, bigCommits: 260, failed: 30, incidentAfter: 30, firstPullAfter: 100, stagingToo: true})
	web := generate(f, monthSpec{repo: "acme/web", start: monthStart.Add(2 * time.Hour), deployments: 30, every: 24 * time.Hour, commitsPer: 7,
		bigDeployment: -1, failed: -1, incidentAfter: -1, firstPullAfter: 500})
	srv := f.start()
	cfg := historyConfig(srv.URL, "acme/api", "acme/web")
	cfg.History.Environments = []string{"production", "staging"}
	src := NewHistorySource(srv.Client(), cfg)
	sink := &recordingSink{}
	require.NoError(t, src.Import(context.Background(), monthWindow(), "", sink))
	evs := sink.events()

	// Every event ID once.
	ids := map[string]bool{}
	for _, ev := range evs {
		require.False(t, ids[ev.ID], "event ID %s twice", ev.ID)
		ids[ev.ID] = true
		assert.Equal(t, event.SourceGitHub, ev.Source)
	}

	byKind := map[event.Kind][]event.Event{}
	for _, ev := range evs {
		byKind[ev.Kind] = append(byKind[ev.Kind], ev)
	}
	deployments := len(api.inWindow) + len(web.inWindow)
	// Started: one per deployment created, and one per in_progress status.
	inProgress := 0
	for _, d := range append(slices.Clone(api.inWindow), web.inWindow...) {
		for _, st := range d.statuses {
			if st.state == "in_progress" {
				inProgress++
			}
		}
	}
	assert.Equal(t, 90+30, inProgress)
	assert.Equal(t, deployments+inProgress, len(byKind[event.DeploymentStarted]))
	assert.Equal(t, deployments-1, len(byKind[event.DeploymentSucceeded]))
	require.Equal(t, 1, len(byKind[event.DeploymentFailed]))
	failed := byKind[event.DeploymentFailed][0]
	assert.Equal(t, deploymentID("acme/api", api.inWindow[2*30].id), failed.DeploymentID)
	assert.Equal(t, "failure", failed.Reason)
	assert.Equal(t, api.inWindow[2*30].statuses[2].at, failed.Time)
	assert.Equal(t, "production", failed.Service.Environment)
	assert.Equal(t, api.inWindow[2*30].sha, failed.Revision)

	// A deployment's start is its creation, with the live source's id.
	for _, d := range api.inWindow[:4] {
		i := slices.IndexFunc(evs, func(ev event.Event) bool {
			return ev.Kind == event.DeploymentStarted && ev.Time.Equal(d.created) && ev.DeploymentID == deploymentID("acme/api", d.id)
		})
		require.GreaterOrEqual(t, i, 0, "deployment %d not started at its creation", d.id)
		assert.Equal(t, d.env, evs[i].Service.Environment)
		assert.Equal(t, "acme/api", evs[i].Repository)
	}

	// Every commit of the window, once, linked to the one before it, at
	// its author time, before the deployment that ships it.
	commits := byKind[event.ChangeCommitted]
	require.Equal(t, len(api.commits)+len(web.commits), len(commits))
	pos := map[string]int{}
	for i, ev := range evs {
		pos[ev.ID] = i
	}
	for _, g := range []struct {
		repo string
		gen  generated
	}{{"acme/api", api}, {"acme/web", web}} {
		parent := g.gen.base
		for _, c := range g.gen.commits {
			id := "github/" + g.repo + "/commit/" + c.sha
			require.Contains(t, pos, id)
			ev := evs[pos[id]]
			assert.Equal(t, c.sha, ev.Revision)
			assert.Equal(t, parent, ev.ParentRevision, "parent of %s", c.sha)
			assert.Equal(t, c.author, ev.Time)
			assert.Equal(t, g.repo, ev.Repository)
			parent = c.sha
		}
		for _, d := range g.gen.inWindow {
			started := pos[deploymentID(g.repo, d.id)+"/created"]
			assert.Less(t, pos["github/"+g.repo+"/commit/"+d.sha], started, "commit %s handed on after its deployment", d.sha)
		}
	}

	// Merged pull requests: opened and merged, with the live ChangeID.
	mergedInWindow := 0
	for _, p := range append(slices.Clone(api.pulls), web.pulls...) {
		if monthWindow().Contains(p.merged) {
			mergedInWindow++
		}
	}
	assert.Equal(t, len(api.pulls)+len(web.pulls)-2, mergedInWindow, "the first deployments' pull requests are merged before the window")
	assert.Equal(t, mergedInWindow, len(byKind[event.ChangeMerged]))
	assert.Equal(t, mergedInWindow, len(byKind[event.ChangeOpened]))
	p := api.pulls[3]
	merged := evs[pos[changeID("acme/api", int64(p.number))+"/merged"]]
	assert.Equal(t, event.ChangeMerged, merged.Kind)
	assert.Equal(t, "github/acme/api/pull/103", merged.ChangeID)
	assert.Equal(t, p.mergeSHA, merged.Revision)
	assert.Equal(t, p.merged, merged.Time)
	opened := evs[pos[changeID("acme/api", int64(p.number))+"/opened"]]
	assert.Equal(t, event.ChangeOpened, opened.Kind)
	assert.Equal(t, "github/acme/api/pull/103", opened.ChangeID)
	assert.Equal(t, p.created, opened.Time)

	// The incident, opened and resolved; nothing of the noise.
	require.Equal(t, 1, len(byKind[event.IncidentOpened]))
	require.Equal(t, 1, len(byKind[event.IncidentResolved]))
	inc := api.incidents[0]
	o, res := byKind[event.IncidentOpened][0], byKind[event.IncidentResolved][0]
	assert.Equal(t, "github/acme/api/issues/9030", o.IncidentID)
	assert.Equal(t, "github/acme/api/issues/9030/opened", o.ID)
	assert.Equal(t, inc.created, o.Time)
	assert.Equal(t, inc.closed, res.Time)
	assert.Equal(t, o.IncidentID, res.IncidentID)
	assert.Equal(t, "production", o.Service.Environment)

	// Progress: Done grows to Total.
	last := sink.batches[len(sink.batches)-1]
	assert.Equal(t, deployments, last.Total)
	assert.Equal(t, deployments, last.Done)
	for i := 1; i < len(sink.batches); i++ {
		assert.GreaterOrEqual(t, sink.batches[i].Done, sink.batches[i-1].Done)
	}

	// Requests: one statuses request per deployment, the commits 250 a
	// page, and the lists.
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, deployments, f.byKind["statuses"])
	commitPages := (len(api.commits)+249)/250 + (len(web.commits)+249)/250
	assert.LessOrEqual(t, f.byKind["compare"], commitPages+2, "compare requests: %v", f.comparePages)
	listPages := f.byKind["deployments"] + f.byKind["pulls"] + f.byKind["issues"]
	assert.LessOrEqual(t, listPages, 2*((deployments+99)/100+2)+4)
	perDeployment := float64(f.requests.Load()) / float64(deployments)
	target := 1 + float64(len(commits))/100/float64(deployments)
	assert.LessOrEqual(t, perDeployment, target+0.1)
	t.Logf("%d requests for %d deployments and %d commits: %.3f a deployment (target %.3f + the lists)", f.requests.Load(), deployments, len(commits), perDeployment, target)
	assert.LessOrEqual(t, float64(f.byKind["statuses"]+f.byKind["compare"]), float64(deployments)+float64(len(commits))/100+2)

	// The events are valid for the engine.
	e := newTestEngine(t)
	for _, ev := range evs {
		_, err := e.Apply(named(ev))
		require.NoError(t, err, "%+v", ev)
	}
}

func newTestEngine(t testing.TB) *engine.Engine {
	e, err := engine.New(engine.DefaultConfig(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	return e
}

// named maps the repository to the service, as the receiver's services
// setting would.
func named(ev event.Event) event.Event {
	if ev.Service.Name == "" {
		ev.Service.Name = ev.Repository
	}
	return ev
}

// liveAPIHistory is acme/api's history as the webhook fixtures in
// testdata tell it: pull request 1287 merged as 14091a9f, deployed by
// deployment 1874460921 (succeeded), the pushed commits before it, and
// incident issue 1290, opened and closed.
func liveAPIHistory(f *fakeGitHub) {
	r := f.repo("acme/api")
	at := func(s string) time.Time { return ts(s) }
	base := fakeCommit{sha: "51de2b835bd35a67eb32dbcd3d77d4b96e5aa39d", author: at("2026-10-30T10:00:00Z"), committer: at("2026-10-30T10:00:00Z")}
	r.addCommit(base)
	r.addCommit(fakeCommit{sha: "2f22765d04931a078909145ca628d2264c852d7d", author: at("2026-11-02T09:12:44+01:00"), committer: at("2026-11-02T09:12:44+01:00")})
	r.addCommit(fakeCommit{sha: "6b1f53303a732ccc8c6aae6640399827c15250e3", author: at("2026-11-02T09:40:03+01:00"), committer: at("2026-11-02T09:40:03+01:00")})
	r.addCommit(fakeCommit{sha: "a625406f6977d45c1391b078f4d3656e0b75bfcb", author: at("2026-11-02T08:55:31Z"), committer: at("2026-11-02T08:55:31Z")})
	r.addCommit(fakeCommit{sha: "14091a9f2461267ee7e02525b4f1f2923f1c9849", author: at("2026-11-02T09:03:16Z"), committer: at("2026-11-02T09:03:16Z"), message: "Merge pull request #1287"})
	r.deployments = []fakeDeployment{
		{id: 1874400000, sha: base.sha, env: "production", created: at("2026-10-30T11:00:00Z"), statuses: []fakeStatus{{id: 1, state: "success", at: at("2026-10-30T11:05:00Z")}}},
		{id: 1874460921, sha: "14091a9f2461267ee7e02525b4f1f2923f1c9849", env: "production", created: at("2026-11-02T09:10:02Z"), statuses: []fakeStatus{
			{id: 2, state: "in_progress", at: at("2026-11-02T09:11:00Z")},
			{id: 3, state: "success", at: at("2026-11-02T09:14:47Z")},
		}},
	}
	r.pulls = []fakePull{{number: 1287, created: at("2026-11-01T15:20:09Z"), merged: at("2026-11-02T09:03:16Z"), updated: at("2026-11-02T09:03:20Z"),
		mergeSHA: "14091a9f2461267ee7e02525b4f1f2923f1c9849", title: "Faster checkout", headRef: "faster-checkout"}}
	r.issues = []fakeIssue{{number: 1290, created: at("2026-11-02T09:41:20Z"), closed: at("2026-11-02T10:02:53Z"), labels: []string{"incident", "sev2"}}}
}

func liveWindow() history.Window {
	return history.Window{From: ts("2026-11-01T00:00:00Z"), To: ts("2026-11-03T00:00:00Z")}
}

// liveEvents are the webhook fixtures' events for the same facts, each
// delivery with its own GUID.
func liveEvents(t *testing.T) []event.Event {
	p := provider()
	var evs []event.Event
	for i, d := range []struct{ kind, file string }{
		{"pull_request", "pull_request_merged.json"},
		{"push", "push.json"},
		{"deployment", "deployment.json"},
		{"deployment_status", "deployment_status.json"},
		{"issues", "issues_opened.json"},
		{"issues", "issues_closed.json"},
	} {
		res := parse(t, p, delivered(d.kind, fmt.Sprintf("0e7a1c2e-0000-4000-8000-%012d", i), fixture(t, d.file)))
		require.NotEmpty(t, res.Events, d.file)
		evs = append(evs, res.Events...)
	}
	return evs
}

func importEvents(t *testing.T, f *fakeGitHub, w history.Window, repos ...string) []event.Event {
	t.Helper()
	srv := f.start()
	sink := &recordingSink{}
	require.NoError(t, NewHistorySource(srv.Client(), historyConfig(srv.URL, repos...)).Import(context.Background(), w, "", sink))
	return sink.events()
}

func totals(s engine.Snapshot) map[string]uint64 {
	m := map[string]uint64{}
	for _, p := range s.Deployments {
		m["deployments/"+p.Label] += p.Value
	}
	for _, p := range s.Incidents {
		m["incidents"] += p.Value
	}
	for _, p := range s.Failures {
		m["failures"] += p.Value
	}
	for _, h := range s.RecoveryTime {
		m["recoveries"] += h.Histogram.Count
	}
	for _, h := range s.LeadTime {
		m["lead_times"] += h.Histogram.Count
	}
	for _, h := range s.LeadTimeStages {
		m["stages/"+h.Label] += h.Histogram.Count
	}
	return m
}

// TestHistoryImportThenLiveCountsOnce: a deployment, its commits, its pull
// request and an incident imported, then delivered live by the webhooks
// (testdata's fixtures of the same facts), or live first then imported, or
// imported twice, count once on a real engine.
func TestHistoryImportThenLiveCountsOnce(t *testing.T) {
	t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
	f := newFakeGitHub(t)
	liveAPIHistory(f)
	imported := importEvents(t, f, liveWindow(), "acme/api")
	live := liveEvents(t)

	apply := func(e *engine.Engine, evs []event.Event) (changed int) {
		for _, ev := range evs {
			out, err := e.Apply(named(ev))
			require.NoError(t, err, "%+v", ev)
			if out.Changed {
				changed++
			}
		}
		return changed
	}

	importedOnly := newTestEngine(t)
	apply(importedOnly, imported)
	want := totals(importedOnly.Snapshot())
	assert.Equal(t, uint64(1), want["deployments/success"], "%v", want)
	assert.Equal(t, uint64(1), want["incidents"], "%v", want)
	assert.Equal(t, uint64(1), want["recoveries"], "the incident resolved: %v", want)
	assert.Equal(t, uint64(4), want["lead_times"], "the 3 commits pushed and the merge commit: %v", want)

	t.Run("imported then live", func(t *testing.T) {
		e := newTestEngine(t)
		apply(e, imported)
		assert.Zero(t, apply(e, live), "the live deliveries of imported facts changed a metric")
		assert.Equal(t, want, totals(e.Snapshot()))
	})
	t.Run("imported twice", func(t *testing.T) {
		e := newTestEngine(t)
		apply(e, imported)
		assert.Zero(t, apply(e, imported))
		assert.Equal(t, want, totals(e.Snapshot()))
	})
	t.Run("live then imported", func(t *testing.T) {
		e := newTestEngine(t)
		apply(e, live)
		before := totals(e.Snapshot())
		assert.Equal(t, uint64(1), before["deployments/success"])
		apply(e, imported)
		after := totals(e.Snapshot())
		assert.Equal(t, uint64(1), after["deployments/success"])
		assert.Equal(t, uint64(1), after["incidents"])
		assert.Equal(t, uint64(1), after["recoveries"])
		assert.Equal(t, before["lead_times"], after["lead_times"], "lead times counted again")
	})
}

// TestHistoryImportResume: an import stopped after some batches (the sink
// down) resumes from the last applied cursor and hands on the rest:
// nothing twice, nothing lost, no deployment's statuses read twice.
func TestHistoryImportResume(t *testing.T) {
	t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
	f := newFakeGitHub(t)
	generate(f, monthSpec{repo: "acme/api", start: monthStart.Add(time.Hour), deployments: 120, every: 6 * time.Hour, commitsPer: 9,
		bigDeployment: 50, bigCommits: 700, failed: 10, incidentAfter: 10, firstPullAfter: 100})
	generate(f, monthSpec{repo: "acme/web", start: monthStart.Add(2 * time.Hour), deployments: 60, every: 12 * time.Hour, commitsPer: 12,
		bigDeployment: -1, failed: -1, incidentAfter: -1, firstPullAfter: 500})
	srv := f.start()
	cfg := historyConfig(srv.URL, "acme/api", "acme/web")

	source := func() *HistorySource {
		s := NewHistorySource(srv.Client(), cfg)
		s.batchEvents = 200
		return s
	}
	full := &recordingSink{}
	require.NoError(t, source().Import(context.Background(), monthWindow(), "", full))
	want := full.events()
	require.Greater(t, len(full.batches), 4)

	for _, stop := range []int{1, 2, len(full.batches) / 2, len(full.batches) - 1} {
		t.Run(fmt.Sprint("stopped after ", stop), func(t *testing.T) {
			f.mu.Lock()
			clear(f.statusReads)
			clear(f.comparePages)
			f.mu.Unlock()
			first := &recordingSink{failAfter: stop}
			err := source().Import(context.Background(), monthWindow(), "", first)
			require.ErrorIs(t, err, errSinkDown)
			require.Equal(t, stop, len(first.batches))
			applied := map[int64]bool{}
			for _, ev := range first.events() {
				if id, ok := strings.CutSuffix(ev.ID, "/created"); ok {
					n, err := strconv.ParseInt(id[strings.LastIndexByte(id, '/')+1:], 10, 64)
					require.NoError(t, err)
					applied[n] = true
				}
			}
			f.mu.Lock()
			clear(f.statusReads)
			f.mu.Unlock()
			second := &recordingSink{}
			require.NoError(t, source().Import(context.Background(), monthWindow(), first.cursor(), second))
			got := append(first.events(), second.events()...)
			seen := map[string]bool{}
			for _, ev := range got {
				require.False(t, seen[ev.ID], "%s handed on twice", ev.ID)
				seen[ev.ID] = true
			}
			var wantIDs, gotIDs []string
			for _, ev := range want {
				wantIDs = append(wantIDs, ev.ID)
			}
			for _, ev := range got {
				gotIDs = append(gotIDs, ev.ID)
			}
			if !assert.Equal(t, len(wantIDs), len(gotIDs)) || !slices.Equal(wantIDs, gotIDs) {
				t.Fatalf("the resumed import does not hand on the rest in order (first difference at %d)", firstDiff(wantIDs, gotIDs))
			}
			last := second.batches[len(second.batches)-1]
			assert.Equal(t, last.Total, last.Done)
			f.mu.Lock()
			defer f.mu.Unlock()
			for id, n := range f.statusReads {
				// Deployments applied before the stop are not read again.
				assert.False(t, applied[id], "statuses of deployment %d, applied, read again", id)
				assert.Equal(t, 1, n, "statuses of deployment %d", id)
			}
			pagesAgain := 0
			for page, n := range f.comparePages {
				assert.LessOrEqual(t, n, 2, "compare page %s read %d times", page, n)
				if n == 2 {
					pagesAgain++
				}
			}
			// The page the first run stopped in (and the next, when the
			// stop fell on a page's end) is read again.
			assert.LessOrEqual(t, pagesAgain, 2)
		})
	}
}

func TestHistoryImportSettingErrors(t *testing.T) {
	f := newFakeGitHub(t)
	generate(f, monthSpec{repo: "acme/api", start: monthStart.Add(time.Hour), deployments: 3, every: 24 * time.Hour, commitsPer: 2,
		bigDeployment: -1, failed: -1, incidentAfter: -1, firstPullAfter: 10})
	srv := f.start()

	var se *history.SettingError
	t.Run("401 names token_env", func(t *testing.T) {
		t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_revoked")
		err := NewHistorySource(srv.Client(), historyConfig(srv.URL, "acme/api")).Import(context.Background(), monthWindow(), "", &recordingSink{})
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "webhooks::github::history::token_env", se.Setting)
		assert.Contains(t, err.Error(), "401")
	})
	t.Run("401 names token_file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(file, []byte("ghp_revoked\n"), 0o600))
		cfg := historyConfig(srv.URL, "acme/api")
		cfg.History.TokenFile = file
		err := NewHistorySource(srv.Client(), cfg).Import(context.Background(), monthWindow(), "", &recordingSink{})
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "webhooks::github::history::token_file", se.Setting)
	})
	t.Run("token_file read", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(file, []byte("ghp_fake\n"), 0o600))
		cfg := historyConfig(srv.URL, "acme/api")
		cfg.History.TokenFile = file
		sink := &recordingSink{}
		require.NoError(t, NewHistorySource(srv.Client(), cfg).Import(context.Background(), monthWindow(), "", sink))
		assert.NotEmpty(t, sink.events())
	})
	t.Run("no token", func(t *testing.T) {
		t.Setenv("DORA_TEST_GITHUB_TOKEN", "")
		err := NewHistorySource(srv.Client(), historyConfig(srv.URL, "acme/api")).Import(context.Background(), monthWindow(), "", &recordingSink{})
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "webhooks::github::history::token_env", se.Setting)
		assert.Contains(t, err.Error(), "DORA_TEST_GITHUB_TOKEN")
	})
	t.Run("404 names repositories", func(t *testing.T) {
		t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
		sink := &recordingSink{}
		err := NewHistorySource(srv.Client(), historyConfig(srv.URL, "acme/api", "acme/gone")).Import(context.Background(), monthWindow(), "", sink)
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "webhooks::github::history::repositories", se.Setting)
		assert.Contains(t, err.Error(), "acme/gone")
		assert.Empty(t, sink.batches, "the repositories are all listed before anything is handed on")
	})
	t.Run("403 names the token", func(t *testing.T) {
		t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
		f.fail["/issues"] = http.StatusForbidden
		defer delete(f.fail, "/issues")
		err := NewHistorySource(srv.Client(), historyConfig(srv.URL, "acme/api")).Import(context.Background(), monthWindow(), "", &recordingSink{})
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "webhooks::github::history::token_env", se.Setting)
		assert.Contains(t, err.Error(), "Issues")
	})
	t.Run("5xx is no setting error", func(t *testing.T) {
		t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
		f.fail["/statuses"] = http.StatusBadGateway
		defer delete(f.fail, "/statuses")
		err := NewHistorySource(srv.Client(), historyConfig(srv.URL, "acme/api")).Import(context.Background(), monthWindow(), "", &recordingSink{})
		require.Error(t, err)
		assert.False(t, errors.As(err, &se), "%v", err)
	})
	t.Run("rate limited is no setting error", func(t *testing.T) {
		t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
		f.fail["/pulls"] = rateLimited
		defer delete(f.fail, "/pulls")
		err := NewHistorySource(srv.Client(), historyConfig(srv.URL, "acme/api")).Import(context.Background(), monthWindow(), "", &recordingSink{})
		require.Error(t, err)
		assert.False(t, errors.As(err, &se), "%v", err)
		assert.Contains(t, err.Error(), "rate limit")
	})
	t.Run("request budget spent", func(t *testing.T) {
		t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
		// The polite client's answer once the budget is spent.
		client := &http.Client{Transport: &budget{n: 3, next: srv.Client().Transport}}
		err := NewHistorySource(client, historyConfig(srv.URL, "acme/api")).Import(context.Background(), monthWindow(), "", &recordingSink{})
		require.ErrorIs(t, err, history.ErrBudgetSpent)
	})
	t.Run("canceled", func(t *testing.T) {
		t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := NewHistorySource(srv.Client(), historyConfig(srv.URL, "acme/api")).Import(ctx, monthWindow(), "", &recordingSink{})
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestHistoryConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Secret = secret
	require.NoError(t, cfg.Validate(), "off by default")
	cfg.History.Enabled = true
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "history::repositories")

	cfg.History.Repositories = []string{"acme/api", "nope", "a/b/c"}
	cfg.History.Environments = []string{" "}
	cfg.History.TokenEnv = ""
	cfg.History.BaseURL = "ftp://x"
	err = cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{`history::repositories[1]: "nope"`, `history::repositories[2]: "a/b/c"`, "history::environments[0]", "history::token_env", "history::base_url"} {
		assert.Contains(t, err.Error(), want)
	}
	cfg.History = HistoryConfig{Enabled: true, Repositories: []string{"acme/api"}, TokenFile: "/run/secrets/github", BaseURL: "https://ghe.example.com/api/v3/"}
	assert.NoError(t, cfg.Validate())
	assert.True(t, strings.HasSuffix(DefaultConfig().History.BaseURL, "/"))
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestHistoryConfigUnmarshal(t *testing.T) {
	cfg := DefaultConfig()
	err := confmap.NewFromStringMap(map[string]any{
		"secret": "s3cr3t",
		"history": map[string]any{
			"enabled":      true,
			"repositories": []any{"acme/api", "acme/web"},
			"environments": []any{"production"},
			"token_file":   "/run/secrets/github",
		},
	}).Unmarshal(&cfg)
	require.NoError(t, err)
	assert.Equal(t, HistoryConfig{
		Enabled: true, Repositories: []string{"acme/api", "acme/web"}, Environments: []string{"production"},
		TokenEnv: DefaultHistoryTokenEnv, TokenFile: "/run/secrets/github", BaseURL: DefaultHistoryBaseURL,
	}, cfg.History)
	assert.NoError(t, cfg.Validate())
	assert.Equal(t, "webhooks::github::history::token_file", cfg.History.tokenSetting())
}

// TestHistoryImportBranchDeployment: a deployment of a branch (its SHA off
// the line the chain compares, here unknown to compare), the newest of the
// window, neither stops the chain nor costs more than its own compare.
func TestHistoryImportBranchDeployment(t *testing.T) {
	t.Setenv("DORA_TEST_GITHUB_TOKEN", "ghp_fake")
	f := newFakeGitHub(t)
	g := generate(f, monthSpec{repo: "acme/api", start: monthStart.Add(time.Hour), deployments: 40, every: 12 * time.Hour, commitsPer: 10,
		bigDeployment: -1, failed: -1, incidentAfter: -1, firstPullAfter: 100})
	r := f.repo("acme/api")
	branch := fakeSHA("acme/api", "topic-branch")
	last := g.inWindow[len(g.inWindow)-1]
	r.deployments = append(r.deployments, fakeDeployment{id: 77, sha: branch, env: "review", created: last.created.Add(time.Hour),
		statuses: []fakeStatus{{id: 771, state: "success", at: last.created.Add(time.Hour + time.Minute)}}})
	evs := importEvents(t, f, monthWindow(), "acme/api")
	commits := 0
	for _, ev := range evs {
		if ev.Kind == event.ChangeCommitted {
			commits++
		}
	}
	assert.Equal(t, len(g.commits), commits)
	assert.True(t, slices.ContainsFunc(evs, func(ev event.Event) bool {
		return ev.Kind == event.DeploymentSucceeded && ev.DeploymentID == "github/acme/api/deployment/77" && ev.Service.Environment == "review"
	}))
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.LessOrEqual(t, f.byKind["compare"], (len(g.commits)+249)/250+1, "compare requests: %v", f.comparePages)
}

// budget lets n requests through, then answers history.ErrBudgetSpent.
type budget struct {
	n    int64
	used atomic.Int64
	next http.RoundTripper
}

func (b *budget) RoundTrip(req *http.Request) (*http.Response, error) {
	if b.used.Add(1) > b.n {
		return nil, history.ErrBudgetSpent
	}
	return b.next.RoundTrip(req)
}
