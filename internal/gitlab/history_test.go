package gitlab

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// The fake GitLab below serves the response shapes of GitLab's published
// examples (testdata/history, README.md there), with the ids, dates, SHAs
// and states changed to make a history, paginated as GitLab paginates
// (X-Page, X-Next-Page, X-Total, Link), two items a page so that a short
// history has several pages.

const (
	apiToken    = "glpat-history-test"
	apiTokenEnv = "DORA_TEST_GITLAB_TOKEN"
	pageSize    = 2
)

// sha is a commit SHA made of name.
func sha(name string) string {
	s := sha1.Sum([]byte(name))
	return hex.EncodeToString(s[:])
}

func template(t testing.TB, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "history", name))
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal(b, &v))
	return v
}

// item is the first element of a list fixture, a fresh copy.
func item(t testing.TB, name string) map[string]any {
	return template(t, name).([]any)[0].(map[string]any)
}

type fakeGitLab struct {
	t       testing.TB
	project string

	// before answers the query for the last deployment before the window.
	before      []map[string]any
	deployments []map[string]any
	// compares are keyed by from..to.
	compares map[string][]map[string]any
	mrs      []map[string]any
	typed    []map[string]any
	labelled []map[string]any

	mu       sync.Mutex
	requests []string
}

func (f *fakeGitLab) deployment(id int64, status, env, rev string, updated, started time.Time) {
	d := item(f.t, "deployments.json")
	d["id"], d["iid"], d["status"], d["sha"] = id, id-20900, status, rev
	d["created_at"] = started.Add(-time.Minute).Format(time.RFC3339Nano)
	d["updated_at"] = updated.Format(time.RFC3339Nano)
	d["environment"].(map[string]any)["name"] = env
	job := d["deployable"].(map[string]any)
	job["status"], job["started_at"], job["finished_at"] = status, started.Format(time.RFC3339Nano), updated.Format(time.RFC3339Nano)
	job["commit"].(map[string]any)["id"] = rev
	job["pipeline"].(map[string]any)["sha"] = rev
	f.deployments = append(f.deployments, d)
}

// commits makes n commits after from, ending at to, one an hour from
// start; it returns their SHAs.
func (f *fakeGitLab) commits(from, to string, n int, start time.Time, name string) []string {
	var list []map[string]any
	var shas []string
	for i := range n {
		c := template(f.t, "compare.json").(map[string]any)["commits"].([]any)[0].(map[string]any)
		id := sha(fmt.Sprintf("%s-%d", name, i))
		if i == n-1 {
			id = to
		}
		c["id"], c["short_id"] = id, id[:11]
		c["created_at"] = start.Add(time.Duration(i) * time.Hour).Format(time.RFC3339)
		list = append(list, c)
		shas = append(shas, id)
	}
	if f.compares == nil {
		f.compares = map[string][]map[string]any{}
	}
	f.compares[from+".."+to] = list
	return shas
}

func (f *fakeGitLab) count(pathPart string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.Contains(r, pathPart) {
			n++
		}
	}
	return n
}

func (f *fakeGitLab) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = nil
}

func (f *fakeGitLab) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.URL.Path+"?"+r.URL.RawQuery)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Private-Token") != apiToken {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"401 Unauthorized"}`)
		return
	}
	// The project is the path's URL-encoded segment.
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v4/projects/")
	seg, endpoint, _ := strings.Cut(rest, "/")
	project, _ := url.PathUnescape(seg)
	if !ok || project != f.project {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"404 Project Not Found"}`)
		return
	}
	q := r.URL.Query()
	switch endpoint {
	case "deployments":
		if q.Get("updated_after") == "" {
			// The last success before the window (per_page=1, sort=desc).
			assert.Equal(f.t, "success", q.Get("status"))
			assert.Equal(f.t, "desc", q.Get("sort"))
			f.page(w, r, f.before)
			return
		}
		assert.Equal(f.t, "updated_at", q.Get("order_by"))
		f.page(w, r, f.deployments)
	case "repository/compare":
		list, ok := f.compares[q.Get("from")+".."+q.Get("to")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"404 Not found"}`)
			return
		}
		c := template(f.t, "compare.json").(map[string]any)
		c["commits"], c["commit"] = list, list[len(list)-1]
		_ = json.NewEncoder(w).Encode(c)
	case "merge_requests":
		assert.Equal(f.t, "merged", q.Get("state"))
		f.page(w, r, f.mrs)
	case "issues":
		if q.Get("issue_type") == "incident" {
			f.page(w, r, f.typed)
		} else {
			assert.Equal(f.t, "incident", q.Get("labels"))
			f.page(w, r, f.labelled)
		}
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"404 Not found"}`)
	}
}

// page writes one page of items with GitLab's offset pagination headers.
func (f *fakeGitLab) page(w http.ResponseWriter, r *http.Request, items []map[string]any) {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	size := pageSize
	if pp, _ := strconv.Atoi(r.URL.Query().Get("per_page")); pp > 0 && pp < size {
		size = pp
	}
	pages := max((len(items)+size-1)/size, 1)
	lo, hi := min((page-1)*size, len(items)), min(page*size, len(items))
	h := w.Header()
	link := func(p int) string {
		u := *r.URL
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		u.RawQuery = q.Encode()
		return "http://" + r.Host + u.String()
	}
	h.Set("X-Page", strconv.Itoa(page))
	h.Set("X-Per-Page", strconv.Itoa(size))
	h.Set("X-Total", strconv.Itoa(len(items)))
	h.Set("X-Total-Pages", strconv.Itoa(pages))
	next := ""
	links := []string{}
	if page < pages {
		next = strconv.Itoa(page + 1)
		links = append(links, fmt.Sprintf(`<%s>; rel="next"`, link(page+1)))
	}
	h.Set("X-Next-Page", next)
	if page > 1 {
		h.Set("X-Prev-Page", strconv.Itoa(page-1))
	} else {
		h.Set("X-Prev-Page", "")
	}
	links = append(links, fmt.Sprintf(`<%s>; rel="first"`, link(1)), fmt.Sprintf(`<%s>; rel="last"`, link(pages)))
	h.Set("Link", strings.Join(links, ", "))
	_ = json.NewEncoder(w).Encode(items[lo:hi])
}

// The history: acme/platform/billing (the project of the webhook fixtures
// in testdata), deployed to production four times in the window.
var (
	window    = history.Window{From: ts("2026-10-01T00:00:00Z"), To: ts("2026-11-10T00:00:00Z")}
	beforeSHA = sha("before-window")
	firstSHA  = sha("first")
	failedSHA = sha("failed")
)

func billingHistory(t testing.TB) *fakeGitLab {
	f := &fakeGitLab{t: t, project: repoName}
	// The last success before the window: the first compare starts there.
	f.deployment(20800, "success", "production", beforeSHA, ts("2026-09-28T10:00:00Z"), ts("2026-09-28T09:50:00Z"))
	f.before, f.deployments = f.deployments, nil
	f.deployment(20901, "success", "production", firstSHA, ts("2026-10-05T10:00:00Z"), ts("2026-10-05T09:50:00Z"))
	f.deployment(20915, "failed", "production", failedSHA, ts("2026-10-12T10:00:00Z"), ts("2026-10-12T09:55:00Z"))
	f.deployment(20920, "canceled", "production", failedSHA, ts("2026-10-13T10:00:00Z"), ts("2026-10-13T09:55:00Z"))
	// The deployment of the webhook fixture deployment.json.
	f.deployment(20931, "success", "production", mergeSHA, ts("2026-11-02T09:14:47Z"), ts("2026-11-02T09:05:00Z"))
	f.commits(beforeSHA, firstSHA, 3, ts("2026-10-04T08:00:00Z"), "first")
	// 150 commits from the first deployment to the last (the failed one's
	// among them).
	f.commits(firstSHA, mergeSHA, 150, ts("2026-10-06T00:00:00Z"), "main")
	// The 11th reverts the 4th, as git revert writes it (the compare
	// example leaves out message, which GitLab's commits carry).
	f.compares[firstSHA+".."+mergeSHA][10]["message"] = "Revert \"Round invoice totals\"\n\nThis reverts commit " + sha("main-3") + ".\n"

	// Merge request !57 of the webhook fixture merge_request_merged.json,
	// and a fast-forward merge (no merge commit).
	mr := item(t, "merge_requests.json")
	mr["iid"], mr["state"], mr["merge_commit_sha"], mr["source_branch"] = 57, "merged", mergeSHA, "half-even"
	mr["created_at"], mr["merged_at"], mr["updated_at"] = "2026-11-01T15:20:09Z", "2026-11-02T09:03:16Z", "2026-11-02T09:03:17Z"
	ff := item(t, "merge_requests.json")
	ff["iid"], ff["state"], ff["merge_commit_sha"] = 58, "merged", nil
	ff["created_at"], ff["merged_at"], ff["updated_at"] = "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z", "2026-11-03T11:00:00Z"
	f.mrs = []map[string]any{mr, ff}

	// Incident #318 of the webhook fixture issue_incident_opened.json,
	// resolved; #320, an issue with the incident label, still open.
	inc := item(t, "issues.json")
	inc["iid"], inc["type"], inc["issue_type"], inc["state"] = 318, "INCIDENT", "incident", "closed"
	inc["labels"] = []string{"incident"}
	inc["created_at"], inc["closed_at"], inc["updated_at"] = "2026-11-02T09:41:20Z", "2026-11-02T10:30:00Z", "2026-11-02T10:30:00Z"
	labelled := item(t, "issues.json")
	labelled["iid"], labelled["state"], labelled["labels"] = 320, "opened", []string{"incident", "service::payments"}
	labelled["created_at"], labelled["updated_at"] = "2026-11-05T12:00:00Z", "2026-11-05T12:00:00Z"
	f.typed = []map[string]any{inc}
	f.labelled = []map[string]any{inc, labelled}
	return f
}

func historyConfig(base string, projects ...string) Config {
	cfg := DefaultConfig()
	cfg.Secret = token
	cfg.History = HistoryConfig{Enabled: true, BaseURL: base, Projects: projects, TokenEnv: apiTokenEnv, CompletePushes: true}
	return cfg
}

// recorder is a history.Sink that keeps the batches.
type recorder struct {
	batches []history.Batch
	// failAfter makes Apply fail after that many batches (0: never).
	failAfter int
}

var errStopped = errors.New("receiver stopped")

func (r *recorder) Apply(_ context.Context, b history.Batch) error {
	if r.failAfter > 0 && len(r.batches) == r.failAfter {
		return errStopped
	}
	r.batches = append(r.batches, b)
	return nil
}

func (r *recorder) events() []event.Event {
	var out []event.Event
	for _, b := range r.batches {
		out = append(out, b.Events...)
	}
	return out
}

func ids(events []event.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

func startGitLab(t *testing.T, f *fakeGitLab) *httptest.Server {
	t.Setenv(apiTokenEnv, apiToken)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	require.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"), srv.URL)
	return srv
}

func TestHistoryImport(t *testing.T) {
	f := billingHistory(t)
	srv := startGitLab(t, f)
	h := NewHistory(historyConfig(srv.URL, repoName), srv.Client())
	assert.Equal(t, "gitlab", h.Name())
	var rec recorder
	require.NoError(t, h.Import(context.Background(), window, "", &rec))
	events := rec.events()

	byID := map[string]event.Event{}
	for _, ev := range events {
		_, dup := byID[ev.ID]
		require.False(t, dup, "event %s imported twice", ev.ID)
		byID[ev.ID] = ev
	}
	dep := "gitlab/acme/platform/billing/deployment/"
	// Deployments: the identities of the deployment hook; the failed one
	// failed, the canceled one is no outcome.
	assert.Equal(t, event.Event{
		Kind: event.DeploymentSucceeded, Source: "gitlab", ID: dep + "20931/success", Time: ts("2026-11-02T09:14:47Z"),
		Service: event.Service{Environment: "production"}, Repository: repoName, DeploymentID: dep + "20931", Revision: mergeSHA,
	}, byID[dep+"20931/success"])
	assert.Equal(t, ts("2026-11-02T09:05:00Z"), byID[dep+"20931/running"].Time)
	assert.Equal(t, event.DeploymentStarted, byID[dep+"20931/running"].Kind)
	failed := byID[dep+"20915/failed"]
	assert.Equal(t, event.DeploymentFailed, failed.Kind)
	assert.Equal(t, "failed", failed.Reason)
	assert.Equal(t, failedSHA, failed.Revision)
	assert.NotContains(t, byID, dep+"20920/canceled")
	assert.NotContains(t, byID, dep+"20920/running")
	assert.NotContains(t, byID, dep+"20800/success", "the deployment before the window is only the first compare's start")

	// Commits: the 3 + 150 of the two compares, each linked to the one
	// before, the first of each to the SHA deployed before.
	var commits []event.Event
	for _, ev := range events {
		if ev.Kind == event.ChangeCommitted {
			commits = append(commits, ev)
		}
	}
	require.Len(t, commits, 153)
	assert.Equal(t, beforeSHA, commits[0].ParentRevision)
	assert.Equal(t, ts("2026-10-04T08:00:00Z"), commits[0].Time)
	assert.Equal(t, firstSHA, commits[2].Revision)
	assert.Equal(t, firstSHA, commits[3].ParentRevision)
	for i := 4; i < len(commits); i++ {
		assert.Equal(t, commits[i-1].Revision, commits[i].ParentRevision)
	}
	assert.Equal(t, mergeSHA, commits[152].Revision)
	assert.Equal(t, sha("main-3"), commits[3+10].Reverts, "reverts read from the message, as in a push")
	assert.Empty(t, commits[3+9].Reverts)
	assert.Equal(t, "gitlab/acme/platform/billing/commit/"+mergeSHA, commits[152].ID)
	// Each deployment comes after the commits it shipped.
	at := func(id string) int { return slices.Index(ids(events), id) }
	assert.Greater(t, at(dep+"20931/success"), at(commits[152].ID))
	assert.Greater(t, at(dep+"20901/success"), at(commits[2].ID))

	// The merge request: opened and merged, with the webhook's change id;
	// the fast-forward merge is left to its commits, as the webhook does.
	mr := "gitlab/acme/platform/billing/merge_requests/57"
	assert.Equal(t, event.Event{Kind: event.ChangeOpened, Source: "gitlab", ID: mr + "/opened", Time: ts("2026-11-01T15:20:09Z"), Repository: repoName, ChangeID: mr}, byID[mr+"/opened"])
	assert.Equal(t, event.Event{Kind: event.ChangeMerged, Source: "gitlab", ID: mr + "/merged", Time: ts("2026-11-02T09:03:16Z"), Repository: repoName, Revision: mergeSHA, ChangeID: mr}, byID[mr+"/merged"])
	assert.NotContains(t, byID, "gitlab/acme/platform/billing/merge_requests/58/merged")
	assert.Less(t, at(mr+"/merged"), at(dep+"20901/running"), "merge requests come before the deployments")

	// Incidents: the typed one opened and resolved, the labelled one
	// opened with the service its label names; #318 read once.
	inc := "gitlab/acme/platform/billing/issues/318"
	assert.Equal(t, event.Event{Kind: event.IncidentOpened, Source: "gitlab", ID: inc + "/opened", Time: ts("2026-11-02T09:41:20Z"),
		Service: event.Service{Environment: "production"}, Repository: repoName, IncidentID: inc}, byID[inc+"/opened"])
	closed := fmt.Sprintf("%s/closed/%d", inc, ts("2026-11-02T10:30:00Z").Unix())
	assert.Equal(t, event.IncidentResolved, byID[closed].Kind)
	assert.Equal(t, ts("2026-11-02T10:30:00Z"), byID[closed].Time)
	assert.Equal(t, "payments", byID["gitlab/acme/platform/billing/issues/320/opened"].Service.Name)

	// Every event in the window, but the opening of nothing before it.
	for _, ev := range events {
		if ev.Kind != event.ChangeCommitted && ev.Kind != event.ChangeOpened {
			assert.True(t, window.Contains(ev.Time), "%s at %s", ev.ID, ev.Time)
		}
	}

	// Requests: the deployment pages, one for the deployment before the
	// window, one compare per deployment that shipped new commits (however
	// many commits), the merge request and the two incident listings.
	assert.Equal(t, 2, f.count("/deployments")-1)
	assert.Equal(t, 1, f.count("status=success"))
	assert.Equal(t, 2, f.count("/repository/compare"))
	assert.Equal(t, 1, f.count("/merge_requests"))
	assert.Equal(t, 2, f.count("/issues"))
	assert.Len(t, f.requests, 8)

	// Progress: the batches count the items read.
	last := rec.batches[len(rec.batches)-1]
	assert.Equal(t, 2+4+1+2, last.Done)
}

// A redelivered or late live webhook of an imported deployment, merge and
// incident counts once: on a real engine, the live events are duplicates.
func TestHistoryImportThenLiveCountsOnce(t *testing.T) {
	f := billingHistory(t)
	srv := startGitLab(t, f)
	var rec recorder
	require.NoError(t, NewHistory(historyConfig(srv.URL, repoName), srv.Client()).Import(context.Background(), window, "", &rec))

	e, err := engine.New(engine.DefaultConfig(), window.From)
	require.NoError(t, err)
	// The receiver maps the repository to its service (services setting).
	apply := func(ev event.Event) engine.Outcome {
		if ev.Service.Name == "" {
			ev.Service.Name = "billing"
		}
		out, err := e.Apply(ev)
		require.NoError(t, err, ev.ID)
		return out
	}
	for _, ev := range rec.events() {
		apply(ev)
	}
	before := e.Snapshot()
	require.Equal(t, uint64(2), counter(before.Deployments, "success"))
	require.Equal(t, uint64(1), counter(before.Deployments, "failure")+counter(before.Deployments, "failed"))
	require.NotEmpty(t, before.LeadTime)
	leadTimes := before.LeadTime[0].Histogram.Count
	assert.Equal(t, uint64(3+150), leadTimes, "every imported commit has its lead time")

	p := provider()
	for _, d := range []struct{ hook, file string }{
		{"Deployment Hook", "deployment.json"},
		{"Merge Request Hook", "merge_request_merged.json"},
		{"Issue Hook", "issue_incident_opened.json"},
	} {
		res := parse(t, p, hooked(d.hook, fixture(t, d.file)))
		require.Len(t, res.Events, 1, d.file)
		require.Contains(t, ids(rec.events()), res.Events[0].ID, "%s: the live event has the imported one's identity", d.file)
		// The engine forgets event IDs a day (dedup_window) before the
		// newest event time; past it, the deployment, change and incident
		// identities keep the live event from counting again.
		out := apply(res.Events[0])
		assert.False(t, out.Changed, "%s: live %s after the import", d.file, res.Events[0].ID)
	}
	assert.Equal(t, canonical(before), canonical(e.Snapshot()))
}

// canonical sorts a snapshot's points (the engine lists them in map
// order).
func canonical(s engine.Snapshot) engine.Snapshot {
	key := func(svc event.Service, label string) string {
		return svc.Namespace + "/" + svc.Name + "/" + svc.Environment + "/" + label
	}
	for _, ps := range [][]engine.CounterPoint{s.Deployments, s.Failures, s.LeadTimeDropped, s.Incidents, s.Rework} {
		slices.SortFunc(ps, func(a, b engine.CounterPoint) int {
			return strings.Compare(key(a.Service, a.Label), key(b.Service, b.Label))
		})
	}
	for _, ps := range [][]engine.HistogramPoint{s.LeadTime, s.LeadTimeStages, s.RecoveryTime} {
		slices.SortFunc(ps, func(a, b engine.HistogramPoint) int {
			return strings.Compare(key(a.Service, a.Label), key(b.Service, b.Label))
		})
	}
	return s
}

func counter(points []engine.CounterPoint, label string) uint64 {
	var n uint64
	for _, p := range points {
		if p.Label == label {
			n += p.Value
		}
	}
	return n
}

// An import stopped after some batches resumes from the last applied
// batch's cursor: it reads no page and yields no event a second time, and
// the two runs together are the whole import.
func TestHistoryImportResumes(t *testing.T) {
	f := billingHistory(t)
	srv := startGitLab(t, f)
	h := NewHistory(historyConfig(srv.URL, repoName), srv.Client())
	var whole recorder
	require.NoError(t, h.Import(context.Background(), window, "", &whole))
	wholeRequests := slices.Clone(f.requests)

	for stop := 1; stop < len(whole.batches); stop++ {
		f.reset()
		first := recorder{failAfter: stop}
		err := h.Import(context.Background(), window, "", &first)
		require.ErrorIs(t, err, errStopped)
		firstRequests := slices.Clone(f.requests)

		f.reset()
		var second recorder
		require.NoError(t, h.Import(context.Background(), window, first.batches[stop-1].Cursor, &second))
		got := append(ids(first.events()), ids(second.events())...)
		assert.Equal(t, ids(whole.events()), got, "stopped after %d batches", stop)
		// The second run reads where the first stopped: the end of the
		// whole run's requests, of which the first made only those of the
		// page whose batch was refused.
		require.Less(t, len(f.requests), len(wholeRequests))
		assert.Equal(t, wholeRequests[len(wholeRequests)-len(f.requests):], f.requests, "stopped after %d batches", stop)
		again := len(firstRequests) + len(f.requests) - len(wholeRequests)
		require.Positive(t, again)
		assert.Equal(t, firstRequests[len(firstRequests)-again:], f.requests[:again], "only the refused page is read again")
		assert.LessOrEqual(t, again, 3, "a page, its compares and the deployment before the window")
	}
}

// 401 names the token setting, 404 the project; the import of this source
// stops there.
func TestHistoryImportSettingErrors(t *testing.T) {
	f := billingHistory(t)
	srv := startGitLab(t, f)

	t.Setenv(apiTokenEnv, "glpat-revoked")
	var rec recorder
	err := NewHistory(historyConfig(srv.URL, repoName), srv.Client()).Import(context.Background(), window, "", &rec)
	var se *history.SettingError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "webhooks::gitlab::history::token_env", se.Setting)
	assert.Empty(t, rec.batches)
	assert.Len(t, f.requests, 1, "stopped at the first refusal")

	t.Setenv(apiTokenEnv, apiToken)
	f.reset()
	err = NewHistory(historyConfig(srv.URL, repoName, "acme/platform/gone"), srv.Client()).Import(context.Background(), window, "", &rec)
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "webhooks::gitlab::history::projects[1]", se.Setting)
	assert.Contains(t, se.Error(), "acme/platform/gone")
	assert.NotEmpty(t, rec.batches, "the project before it was imported")

	t.Setenv(apiTokenEnv, "")
	err = NewHistory(historyConfig(srv.URL, repoName), srv.Client()).Import(context.Background(), window, "", &rec)
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "webhooks::gitlab::history::token_env", se.Setting)

	dir := t.TempDir()
	cfg := historyConfig(srv.URL, repoName)
	cfg.History.TokenEnv, cfg.History.TokenFile = "", filepath.Join(dir, "missing")
	err = NewHistory(cfg, srv.Client()).Import(context.Background(), window, "", &rec)
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "webhooks::gitlab::history::token_file", se.Setting)
}

func TestHistoryConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Secret = token
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "https://gitlab.com", cfg.History.BaseURL)
	assert.True(t, cfg.History.CompletePushes)

	cfg.History.Enabled = true
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "history::projects")
	assert.Contains(t, err.Error(), "token_env or token_file")

	cfg.History.Projects = []string{"acme/api", "nogroup"}
	cfg.History.TokenEnv, cfg.History.TokenFile = "A", "/b"
	cfg.History.BaseURL = "gitlab.example.com"
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "history::projects[1]")
	assert.Contains(t, err.Error(), "not both")
	assert.Contains(t, err.Error(), "history::base_url")
}

// largePush is GitLab's push hook example (testdata/history/
// push_hook_docs.json) for a push of 25 commits: the hook lists the newest
// 20, as GitLab does, made from the example's first commit with their ids
// and timestamps changed; before, after (the newest commit) and the rest
// are the example's. all are the push's 25 SHAs, oldest first.
func largePush(t testing.TB) (hook []byte, all []string, times []time.Time) {
	var m map[string]any
	b, err := os.ReadFile(filepath.Join("testdata", "history", "push_hook_docs.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	after := m["after"].(string)
	tmpl := m["commits"].([]any)[0].(map[string]any)
	start := ts("2026-11-02T07:00:00Z")
	var listed []any
	for i := range 25 {
		id := sha(fmt.Sprintf("push-%d", i))
		if i == 24 {
			id = after
		}
		all = append(all, id)
		times = append(times, start.Add(time.Duration(i)*time.Minute))
		if i < 5 {
			continue // left out by GitLab
		}
		c := map[string]any{}
		for k, v := range tmpl {
			c[k] = v
		}
		c["id"] = id
		c["url"] = "http://example.com/mike/diaspora/commit/" + id
		c["timestamp"] = times[i].Format(time.RFC3339)
		listed = append(listed, c)
	}
	m["commits"], m["total_commits_count"] = listed, 25
	hook, err = json.Marshal(m)
	require.NoError(t, err)
	return hook, all, times
}

func TestPushCompletion(t *testing.T) {
	hook, all, times := largePush(t)
	before := "95790bf891e76fee5e1747ab589903a6a1f80f22"
	after := all[24]
	f := &fakeGitLab{t: t, project: "mike/diaspora"}
	var list []map[string]any
	for i, id := range all {
		c := template(t, "compare.json").(map[string]any)["commits"].([]any)[0].(map[string]any)
		c["id"], c["short_id"], c["created_at"] = id, id[:11], times[i].Format(time.RFC3339)
		list = append(list, c)
	}
	f.compares = map[string][]map[string]any{before + ".." + after: list}
	srv := startGitLab(t, f)

	cfg := historyConfig(srv.URL, "mike/diaspora")
	completed := make(chan []event.Event, 4)
	c := NewPushCompleter(cfg, srv.Client(), func(_ context.Context, evs []event.Event) error {
		completed <- evs
		return nil
	}, nil)
	c.Start()
	t.Cleanup(func() { require.NoError(t, c.Stop(context.Background())) })
	p := New(cfg)
	p.CompletePushesWith(c)

	// The delivery is answered with the hook's 20 commits, as before; the
	// oldest one's parent is unknown.
	res := parse(t, p, hooked("Push Hook", hook))
	require.Len(t, res.Events, 20)
	assert.Equal(t, all[5], res.Events[0].Revision)
	assert.Empty(t, res.Events[0].ParentRevision)

	var evs []event.Event
	select {
	case evs = <-completed:
	case <-time.After(10 * time.Second):
		t.Fatal("the push was not completed")
	}
	key := "gitlab/mike/diaspora/push/" + before + ".." + after + "/"
	require.Len(t, evs, 6)
	parent := before
	for i := range 5 {
		assert.Equal(t, event.Event{Kind: event.ChangeCommitted, Source: "gitlab", ID: key + all[i], Time: times[i],
			Repository: "mike/diaspora", Revision: all[i], ParentRevision: parent}, evs[i])
		parent = all[i]
	}
	assert.Equal(t, event.Event{Kind: event.ChangeCommitted, Source: "gitlab", ID: key + all[5] + "/parent", Time: times[5],
		Repository: "mike/diaspora", Revision: all[5], ParentRevision: all[4]}, evs[5])
	assert.Equal(t, 1, f.count("/repository/compare"))

	// On a real engine, deploying after ships all 25 commits, with the
	// completion; 20 without it.
	leadTimes := func(withCompletion bool) uint64 {
		e, err := engine.New(engine.DefaultConfig(), ts("2026-11-01T00:00:00Z"))
		require.NoError(t, err)
		svc := event.Service{Name: "diaspora", Environment: "production"}
		deploy := func(id, rev string, at time.Time) {
			_, err := e.Apply(event.Event{Kind: event.DeploymentSucceeded, Source: "gitlab", ID: id, Time: at, Service: svc, Repository: "mike/diaspora", DeploymentID: id, Revision: rev})
			require.NoError(t, err)
		}
		deploy("d1", before, ts("2026-11-02T06:00:00Z"))
		applied := slices.Clone(res.Events)
		if withCompletion {
			applied = append(applied, evs...)
		}
		for _, ev := range applied {
			ev.Service.Name = "diaspora"
			_, err := e.Apply(ev)
			require.NoError(t, err)
		}
		deploy("d2", after, ts("2026-11-02T08:00:00Z"))
		return e.Snapshot().LeadTime[0].Histogram.Count
	}
	assert.Equal(t, uint64(25), leadTimes(true))
	assert.Equal(t, uint64(20), leadTimes(false))

	// A redelivered hook is not completed again (nothing to count twice,
	// and no second request).
	parse(t, p, hooked("Push Hook", hook))
	select {
	case evs := <-completed:
		t.Fatalf("completed again: %v", ids(evs))
	case <-time.After(200 * time.Millisecond):
	}
	assert.Equal(t, 1, f.count("/repository/compare"))
}

func TestPushCompletionWithoutToken(t *testing.T) {
	hook, _, _ := largePush(t)
	f := &fakeGitLab{t: t, project: "mike/diaspora"}
	srv := startGitLab(t, f)
	cfg := DefaultConfig()
	cfg.Secret = token
	cfg.History.BaseURL = srv.URL
	core, logs := observer.New(zap.WarnLevel)
	c := NewPushCompleter(cfg, srv.Client(), func(context.Context, []event.Event) error {
		t.Error("nothing to apply without a token")
		return nil
	}, zap.New(core))
	c.Start()
	t.Cleanup(func() { require.NoError(t, c.Stop(context.Background())) })
	p := New(cfg)
	p.CompletePushesWith(c)
	for range 3 {
		res := parse(t, p, hooked("Push Hook", hook))
		assert.Len(t, res.Events, 20, "today's behaviour")
	}
	require.Equal(t, 1, logs.FilterMessageSnippet("only the newest 20").Len(), "logged once")
	assert.Contains(t, logs.All()[0].Message, "token_env")
	assert.Empty(t, f.requests)
}

// The queue is bounded: a push arriving when it is full keeps its hook's
// commits, and is logged; the delivery is never held.
func TestPushCompletionQueueBounded(t *testing.T) {
	t.Setenv(apiTokenEnv, apiToken)
	core, logs := observer.New(zap.WarnLevel)
	c := NewPushCompleter(historyConfig("http://127.0.0.1:1", "acme/api"), nil, nil, zap.New(core)) // not started
	for i := range pushCompletionQueue + 1 {
		c.enqueue(pushJob{repo: "acme/api", before: sha("b"), after: sha(strconv.Itoa(i)), total: 30, listed: []string{sha("x")}})
	}
	assert.Equal(t, 1, logs.FilterMessageSnippet("queue full").Len())
	require.NoError(t, c.Stop(context.Background()))
}

// A canceled import returns ctx's error; a GitLab that keeps failing
// (after the polite client's retries) stops the import with an error that
// names no setting, after the batches it could apply.
func TestHistoryImportCanceledAndFailing(t *testing.T) {
	f := billingHistory(t)
	srv := startGitLab(t, f)
	h := NewHistory(historyConfig(srv.URL, repoName), srv.Client())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var rec recorder
	require.ErrorIs(t, h.Import(ctx, window, "", &rec), context.Canceled)
	assert.Empty(t, rec.batches)

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/issues") {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, `{"message":"502 Bad Gateway"}`)
			return
		}
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(failing.Close)
	err := NewHistory(historyConfig(failing.URL, repoName), failing.Client()).Import(context.Background(), window, "", &rec)
	require.Error(t, err)
	var se *history.SettingError
	assert.False(t, errors.As(err, &se), "a failing GitLab is not a setting to fix: %v", err)
	assert.Contains(t, err.Error(), "502")
	require.Len(t, rec.batches, 3, "the merge requests and the deployments were applied")
}

// The history example of docs/sources/gitlab.md unmarshals and validates.
func TestHistoryDocExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "sources", "gitlab.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "## History import")
	require.True(t, ok)
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	require.True(t, ok)
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(block), &m))
	cfg := DefaultConfig()
	sub, err := confmap.NewFromStringMap(m).Sub("receivers::dora::webhooks::gitlab")
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(&cfg))
	cfg.Secret = token // ${env:...} in the example
	require.NoError(t, cfg.Validate())
	assert.Equal(t, HistoryConfig{Enabled: true, BaseURL: "https://gitlab.example.com", Projects: []string{"acme/platform/billing", "acme/platform/web"},
		TokenEnv: "DORA_GITLAB_API_TOKEN", CompletePushes: true}, cfg.History)
}
