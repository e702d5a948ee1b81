package github

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeGitHub is a local GitHub REST API serving the response shapes of
// testdata/history (GitHub's published examples) with the ids, SHAs and
// times of a generated history, paginated with Link headers as GitHub
// does.
type fakeGitHub struct {
	t     testing.TB
	repos map[string]*fakeRepo
	token string
	tmpl  *fakeTemplates
	// fail answers a request whose path contains the key with the status.
	fail map[string]int

	requests atomic.Int64
	mu       sync.Mutex
	byKind   map[string]int
	// statusReads counts the statuses requests per deployment id.
	statusReads map[int64]int
	// comparePages counts the compare pages served, by "base...head page".
	comparePages map[string]int
}

type fakeRepo struct {
	commits     []fakeCommit
	index       map[string]int
	deployments []fakeDeployment
	pulls       []fakePull
	issues      []fakeIssue
}

type fakeCommit struct {
	sha               string
	author, committer time.Time
	message           string
}

type fakeDeployment struct {
	id       int64
	sha      string
	env      string
	created  time.Time
	statuses []fakeStatus
}

type fakeStatus struct {
	id    int64
	state string
	at    time.Time
}

type fakePull struct {
	number                   int
	created, updated, merged time.Time
	mergeSHA, title, headRef string
	labels                   []string
}

type fakeIssue struct {
	number          int
	created, closed time.Time
	labels          []string
	pullRequest     bool
}

func (iss fakeIssue) updated() time.Time {
	if iss.closed.After(iss.created) {
		return iss.closed
	}
	return iss.created
}

func newFakeGitHub(t testing.TB) *fakeGitHub {
	return &fakeGitHub{t: t, repos: map[string]*fakeRepo{}, token: "ghp_fake", tmpl: loadFakeTemplates(t),
		byKind: map[string]int{}, statusReads: map[int64]int{}, comparePages: map[string]int{}, fail: map[string]int{}}
}

// start serves f on 127.0.0.1.
func (f *fakeGitHub) start() *httptest.Server {
	srv := httptest.NewServer(f)
	f.t.Cleanup(srv.Close)
	return srv
}

func (f *fakeGitHub) repo(name string) *fakeRepo {
	r := f.repos[name]
	if r == nil {
		r = &fakeRepo{index: map[string]int{}}
		f.repos[name] = r
	}
	return r
}

func (r *fakeRepo) addCommit(c fakeCommit) {
	r.index[c.sha] = len(r.commits)
	r.commits = append(r.commits, c)
}

var repoPath = regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/(deployments|compare|pulls|issues)(?:/(.*))?$`)

func (f *fakeGitHub) count(kind string) {
	f.requests.Add(1)
	f.mu.Lock()
	f.byKind[kind]++
	f.mu.Unlock()
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	for k, code := range f.fail {
		if strings.Contains(req.URL.Path, k) {
			f.count("failed")
			writeError(w, code)
			return
		}
	}
	if req.Header.Get("Authorization") != "Bearer "+f.token {
		f.count("unauthorized")
		writeError(w, http.StatusUnauthorized)
		return
	}
	m := repoPath.FindStringSubmatch(req.URL.Path)
	if m == nil {
		writeError(w, http.StatusNotFound)
		return
	}
	repo := f.repos[m[1]+"/"+m[2]]
	if repo == nil {
		f.count("missing")
		writeError(w, http.StatusNotFound)
		return
	}
	q := req.URL.Query()
	switch m[3] {
	case "deployments":
		if m[4] == "" {
			f.count("deployments")
			f.deployments(w, req, repo)
			return
		}
		idText, ok := strings.CutSuffix(m[4], "/statuses")
		id, err := strconv.ParseInt(idText, 10, 64)
		if !ok || err != nil {
			writeError(w, http.StatusNotFound)
			return
		}
		f.count("statuses")
		f.mu.Lock()
		f.statusReads[id]++
		f.mu.Unlock()
		f.statuses(w, req, repo, id)
	case "compare":
		f.count("compare")
		base, head, ok := strings.Cut(m[4], "...")
		if !ok {
			writeError(w, http.StatusNotFound)
			return
		}
		f.mu.Lock()
		f.comparePages[base+"..."+head+" "+q.Get("page")]++
		f.mu.Unlock()
		f.compare(w, req, repo, base, head)
	case "pulls":
		f.count("pulls")
		f.pulls(w, req, repo)
	case "issues":
		f.count("issues")
		f.issues(w, req, repo)
	}
}

// rateLimited is a fail code: 403 with GitHub's primary rate limit
// headers.
const rateLimited = 4031

// writeError answers as GitHub does.
func writeError(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if code == rateLimited {
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}`)
		return
	}
	w.WriteHeader(code)
	msg := map[int]string{401: "Bad credentials", 403: "Resource not accessible by personal access token", 404: "Not Found"}[code]
	fmt.Fprintf(w, `{"message":%q,"documentation_url":"https://docs.github.com/rest","status":"%d"}`, msg, code)
}

// page returns the bounds of the requested page of n items and sets the
// Link header GitHub sends.
func page(w http.ResponseWriter, req *http.Request, n, defaultPer, maxPer int) (from, to int) {
	q := req.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = defaultPer
	}
	per = min(per, maxPer)
	p, _ := strconv.Atoi(q.Get("page"))
	p = max(p, 1)
	last := max((n+per-1)/per, 1)
	link := func(pg int, rel string) string {
		u := url.URL{Scheme: "http", Host: req.Host, Path: req.URL.Path}
		qq := req.URL.Query()
		qq.Set("page", strconv.Itoa(pg))
		u.RawQuery = qq.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if p < last {
		links = append(links, link(p+1, "next"), link(last, "last"))
	}
	if p > 1 {
		links = append(links, link(1, "first"), link(p-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	from = min((p-1)*per, n)
	return from, min(from+per, n)
}

func ghTime(t time.Time) string { return strconv.Quote(t.UTC().Format(time.RFC3339)) }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (f *fakeGitHub) deployments(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
	list := slices.Clone(r.deployments)
	slices.SortFunc(list, func(a, b fakeDeployment) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c
		}
		return int(b.id - a.id)
	})
	from, to := page(w, req, len(list), 30, 100)
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, d := range list[from:to] {
		if i > 0 {
			buf.WriteByte(',')
		}
		f.tmpl.deployment.render(&buf, func(name string) string {
			switch name {
			case "ID":
				return strconv.FormatInt(d.id, 10)
			case "SHA":
				return strconv.Quote(d.sha)
			case "ENV":
				return strconv.Quote(d.env)
			}
			return ghTime(d.created)
		})
	}
	buf.WriteByte(']')
	writeJSON(w, buf.Bytes())
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}

func (f *fakeGitHub) statuses(w http.ResponseWriter, req *http.Request, r *fakeRepo, id int64) {
	i := slices.IndexFunc(r.deployments, func(d fakeDeployment) bool { return d.id == id })
	if i < 0 {
		writeError(w, http.StatusNotFound)
		return
	}
	d := r.deployments[i]
	list := slices.Clone(d.statuses)
	slices.Reverse(list) // newest first
	from, to := page(w, req, len(list), 30, 100)
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, st := range list[from:to] {
		if i > 0 {
			buf.WriteByte(',')
		}
		f.tmpl.status.render(&buf, func(name string) string {
			switch name {
			case "ID":
				return strconv.FormatInt(st.id, 10)
			case "STATE":
				return strconv.Quote(st.state)
			case "ENV":
				return strconv.Quote(d.env)
			}
			return ghTime(st.at)
		})
	}
	buf.WriteByte(']')
	writeJSON(w, buf.Bytes())
}

func (f *fakeGitHub) compare(w http.ResponseWriter, req *http.Request, r *fakeRepo, base, head string) {
	bi, ok1 := r.index[base]
	hi, ok2 := r.index[head]
	if !ok1 || !ok2 {
		writeError(w, http.StatusNotFound)
		return
	}
	var list []fakeCommit
	status := "identical"
	switch {
	case hi > bi:
		list, status = r.commits[bi+1:hi+1], "ahead"
	case hi < bi:
		status = "behind"
	}
	// GitHub pages compare's commits 250 at most.
	from, to := page(w, req, len(list), 250, 250)
	var commits bytes.Buffer
	commits.WriteByte('[')
	for i := from; i < to; i++ {
		if i > from {
			commits.WriteByte(',')
		}
		c := list[i]
		parent := base
		if i > 0 {
			parent = list[i-1].sha
		}
		f.tmpl.commit.render(&commits, func(name string) string {
			switch name {
			case "SHA":
				return strconv.Quote(c.sha)
			case "PARENT":
				return strconv.Quote(parent)
			case "AUTHORED":
				return ghTime(c.author)
			case "COMMITTED":
				return ghTime(c.committer)
			}
			return jsonString(c.message)
		})
	}
	commits.WriteByte(']')
	files := "[]"
	if from == 0 {
		// Only the first page lists the files.
		files = f.tmpl.files
	}
	var buf bytes.Buffer
	f.tmpl.compare.render(&buf, func(name string) string {
		switch name {
		case "STATUS":
			return strconv.Quote(status)
		case "AHEAD":
			return strconv.Itoa(len(list))
		case "TOTAL":
			return strconv.Itoa(len(list))
		case "COMMITS":
			return commits.String()
		}
		return files
	})
	writeJSON(w, buf.Bytes())
}

func (f *fakeGitHub) pulls(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
	q := req.URL.Query()
	if q.Get("state") != "closed" || q.Get("sort") != "updated" || q.Get("direction") != "desc" {
		f.t.Errorf("pulls listed with %s, want state=closed&sort=updated&direction=desc", req.URL.RawQuery)
	}
	list := slices.Clone(r.pulls)
	slices.SortFunc(list, func(a, b fakePull) int { return b.updated.Compare(a.updated) })
	from, to := page(w, req, len(list), 30, 100)
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, p := range list[from:to] {
		if i > 0 {
			buf.WriteByte(',')
		}
		f.tmpl.pull.render(&buf, func(name string) string {
			switch name {
			case "NUMBER":
				return strconv.Itoa(p.number)
			case "CREATED":
				return ghTime(p.created)
			case "UPDATED":
				return ghTime(p.updated)
			case "MERGED":
				if p.merged.IsZero() {
					return "null"
				}
				return ghTime(p.merged)
			case "SHA":
				return strconv.Quote(p.mergeSHA)
			case "TITLE":
				return jsonString(p.title)
			case "REF":
				return jsonString(p.headRef)
			}
			return f.tmpl.labels(p.labels)
		})
	}
	buf.WriteByte(']')
	writeJSON(w, buf.Bytes())
}

func (f *fakeGitHub) issues(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
	q := req.URL.Query()
	since, _ := time.Parse(time.RFC3339, q.Get("since"))
	want := strings.Split(q.Get("labels"), ",")
	var list []fakeIssue
	for _, iss := range r.issues {
		updated := iss.updated()
		if updated.Before(since) {
			continue
		}
		if q.Get("labels") != "" && !slices.ContainsFunc(want, func(l string) bool {
			return slices.ContainsFunc(iss.labels, func(have string) bool { return strings.EqualFold(have, l) })
		}) {
			continue
		}
		list = append(list, iss)
	}
	slices.SortFunc(list, func(a, b fakeIssue) int { return a.created.Compare(b.created) })
	from, to := page(w, req, len(list), 30, 100)
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, iss := range list[from:to] {
		if i > 0 {
			buf.WriteByte(',')
		}
		f.tmpl.issue.render(&buf, func(name string) string {
			switch name {
			case "NUMBER":
				return strconv.Itoa(iss.number)
			case "STATE":
				if iss.closed.IsZero() {
					return `"open"`
				}
				return `"closed"`
			case "CREATED":
				return ghTime(iss.created)
			case "UPDATED":
				return ghTime(iss.updated())
			case "CLOSED":
				if iss.closed.IsZero() {
					return "null"
				}
				return ghTime(iss.closed)
			case "PR":
				if iss.pullRequest {
					return f.tmpl.pullRequestLinks
				}
				return "null"
			}
			return f.tmpl.labels(iss.labels)
		})
	}
	buf.WriteByte(']')
	writeJSON(w, buf.Bytes())
}

// fakeTemplates are the fixtures with markers where the generated values
// go.
type fakeTemplates struct {
	deployment, status, commit, compare, pull, issue template
	files, pullRequestLinks                          string
	label                                            map[string]any
	labelCache                                       sync.Map
}

func (t *fakeTemplates) labels(names []string) string {
	key := strings.Join(names, "\x00")
	if v, ok := t.labelCache.Load(key); ok {
		return v.(string)
	}
	list := make([]any, 0, len(names))
	for _, n := range names {
		l := map[string]any{}
		for k, v := range t.label {
			l[k] = v
		}
		l["name"] = n
		l["url"] = "https://api.github.com/repos/octocat/Hello-World/labels/" + n
		list = append(list, l)
	}
	b, _ := json.Marshal(list)
	t.labelCache.Store(key, string(b))
	return string(b)
}

// template is JSON split at its markers, "\u0000NAME\u0000" strings.
type template struct {
	parts []string
	names []string
}

var markerRE = regexp.MustCompile(`"\\u0000([A-Z]+)\\u0000"`)

func marker(name string) string { return "\x00" + name + "\x00" }

func newTemplate(t testing.TB, v any) template {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	var tm template
	last := 0
	for _, m := range markerRE.FindAllStringSubmatchIndex(s, -1) {
		tm.parts = append(tm.parts, s[last:m[0]])
		tm.names = append(tm.names, s[m[2]:m[3]])
		last = m[1]
	}
	tm.parts = append(tm.parts, s[last:])
	return tm
}

func (tm template) render(buf *bytes.Buffer, value func(name string) string) {
	for i, name := range tm.names {
		buf.WriteString(tm.parts[i])
		buf.WriteString(value(name))
	}
	buf.WriteString(tm.parts[len(tm.parts)-1])
}

func readFixture(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "history", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func loadFakeTemplates(t testing.TB) *fakeTemplates {
	var tm fakeTemplates

	var deps []map[string]any
	readFixture(t, "deployments.json", &deps)
	d := deps[0]
	d["id"], d["sha"], d["environment"], d["created_at"], d["updated_at"] = marker("ID"), marker("SHA"), marker("ENV"), marker("AT"), marker("AT")
	tm.deployment = newTemplate(t, d)

	var sts []map[string]any
	readFixture(t, "deployment_statuses.json", &sts)
	st := sts[0]
	st["id"], st["state"], st["environment"], st["created_at"], st["updated_at"] = marker("ID"), marker("STATE"), marker("ENV"), marker("AT"), marker("AT")
	tm.status = newTemplate(t, st)

	var cmp map[string]any
	readFixture(t, "compare.json", &cmp)
	c := cmp["commits"].([]any)[0].(map[string]any)
	c["sha"] = marker("SHA")
	gc := c["commit"].(map[string]any)
	gc["author"].(map[string]any)["date"] = marker("AUTHORED")
	gc["committer"].(map[string]any)["date"] = marker("COMMITTED")
	gc["message"] = marker("MESSAGE")
	c["parents"].([]any)[0].(map[string]any)["sha"] = marker("PARENT")
	tm.commit = newTemplate(t, c)
	files, _ := json.Marshal(cmp["files"])
	tm.files = string(files)
	cmp["status"], cmp["ahead_by"], cmp["behind_by"], cmp["total_commits"] = marker("STATUS"), marker("AHEAD"), 0, marker("TOTAL")
	cmp["commits"], cmp["files"] = marker("COMMITS"), marker("FILES")
	tm.compare = newTemplate(t, cmp)

	var prs []map[string]any
	readFixture(t, "pulls.json", &prs)
	pr := prs[0]
	tm.label = pr["labels"].([]any)[0].(map[string]any)
	pr["number"], pr["state"], pr["title"] = marker("NUMBER"), "closed", marker("TITLE")
	pr["created_at"], pr["updated_at"], pr["closed_at"], pr["merged_at"] = marker("CREATED"), marker("UPDATED"), marker("UPDATED"), marker("MERGED")
	pr["merge_commit_sha"], pr["labels"] = marker("SHA"), marker("LABELS")
	pr["head"].(map[string]any)["ref"] = marker("REF")
	tm.pull = newTemplate(t, pr)

	var issues []map[string]any
	readFixture(t, "issues.json", &issues)
	iss := issues[0]
	links, _ := json.Marshal(iss["pull_request"])
	tm.pullRequestLinks = string(links)
	iss["number"], iss["state"], iss["created_at"], iss["updated_at"], iss["closed_at"] = marker("NUMBER"), marker("STATE"), marker("CREATED"), marker("UPDATED"), marker("CLOSED")
	iss["labels"], iss["pull_request"] = marker("LABELS"), marker("PR")
	tm.issue = newTemplate(t, iss)
	return &tm
}
