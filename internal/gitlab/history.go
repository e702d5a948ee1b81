package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go/v2"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// HistoryConfig is the GitLab API access of the source
// (webhooks::gitlab::history): the history import of its projects, and the
// completion of pushes of more than 20 commits, which needs the same token.
type HistoryConfig struct {
	// Enabled imports the projects' history (deployments, the commits they
	// shipped, merged merge requests, incidents).
	Enabled bool `mapstructure:"enabled"`
	// BaseURL is GitLab's address (a self-managed instance's
	// https://gitlab.example.com); the client adds /api/v4.
	BaseURL string `mapstructure:"base_url"`
	// Projects are the projects to import, as paths ("group/name").
	Projects []string `mapstructure:"projects"`
	// TokenEnv names the environment variable holding the access token
	// (scope read_api); TokenFile is a file holding it. One of them.
	TokenEnv  string `mapstructure:"token_env"`
	TokenFile string `mapstructure:"token_file"`
	// CompletePushes fetches the commits a push hook left out (GitLab lists
	// the newest 20) when a token is set.
	CompletePushes bool `mapstructure:"complete_pushes"`
}

// The setting keys the errors of the import name.
const (
	settingPrefix   = "webhooks::gitlab::history::"
	settingProjects = settingPrefix + "projects"
)

// DefaultBaseURL is GitLab.com.
const DefaultBaseURL = "https://gitlab.com"

func defaultHistoryConfig() HistoryConfig {
	return HistoryConfig{BaseURL: DefaultBaseURL, CompletePushes: true}
}

// HasToken reports whether a token is configured.
func (c *HistoryConfig) HasToken() bool { return c.TokenEnv != "" || c.TokenFile != "" }

// tokenSetting is the key of the configured token.
func (c *HistoryConfig) tokenSetting() string {
	if c.TokenFile != "" {
		return settingPrefix + "token_file"
	}
	return settingPrefix + "token_env"
}

func (c *HistoryConfig) check() error {
	var errs []error
	if c.TokenEnv != "" && c.TokenFile != "" {
		errs = append(errs, errors.New("history: set token_env or token_file, not both"))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("history::base_url: %q is not an http(s) URL", c.BaseURL))
	}
	if c.Enabled {
		if len(c.Projects) == 0 {
			errs = append(errs, errors.New("history::projects: name at least one project (group/name) when history is enabled"))
		}
		if !c.HasToken() {
			errs = append(errs, errors.New("history: set token_env or token_file (a token with scope read_api) when history is enabled"))
		}
	}
	for i, p := range c.Projects {
		if strings.TrimSpace(p) == "" || !strings.Contains(p, "/") {
			errs = append(errs, fmt.Errorf("history::projects[%d]: %q is not a project path (group/name)", i, p))
		}
	}
	return errors.Join(errs...)
}

// token reads the configured token, at each use, so that a rotated token
// file is read again.
func (c *HistoryConfig) token() (string, error) {
	var tok string
	switch {
	case c.TokenFile != "":
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return "", &history.SettingError{Setting: c.tokenSetting(), Err: err}
		}
		tok = string(b)
	case c.TokenEnv != "":
		tok = os.Getenv(c.TokenEnv)
	}
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", &history.SettingError{Setting: c.tokenSetting(), Err: errors.New("no GitLab token (empty or unset)")}
	}
	return tok, nil
}

// apiClient is GitLab's Go client for the configured instance and token,
// through hc. Retries and rate limits are hc's (the receiver's polite
// client): the library's own are off, so that one policy applies.
func (c *HistoryConfig) apiClient(hc *http.Client) (*gl.Client, error) {
	tok, err := c.token()
	if err != nil {
		return nil, err
	}
	return gl.NewClient(tok,
		gl.WithBaseURL(c.BaseURL),
		gl.WithHTTPClient(hc),
		gl.WithoutRetries(),
		gl.WithCustomLimiter(noLimit{}),
		gl.WithURLWarningLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
}

type noLimit struct{}

func (noLimit) Wait(context.Context) error { return nil }

// History imports the history of the configured projects: a
// history.Source.
type History struct {
	p    *Provider
	cfg  HistoryConfig
	http *http.Client
}

// NewHistory returns the importer of cfg.History.Projects, reading GitLab
// at cfg.History.BaseURL through client (the receiver's polite client).
// cfg should have passed Validate.
func NewHistory(cfg Config, client *http.Client) *History {
	if client == nil {
		client = http.DefaultClient
	}
	return &History{p: New(cfg), cfg: cfg.History, http: client}
}

var _ history.Source = (*History)(nil)

// Name is the event source's.
func (h *History) Name() string { return event.SourceGitLab }

// perPage is GitLab's largest page.
const perPage = 100

// The phases of one project's import, in the order the engine wants them:
// merged merge requests first (they mark their merge commits with the
// merge and open times), then the deployments, each after the commits it
// shipped (a deployment's lead time is taken when it succeeds), then the
// incidents (attributed to the deployments before them).
const (
	phaseMergeRequests = iota
	phaseDeployments
	phaseIncidents         // issue_type=incident
	phaseLabelledIncidents // labels=<incident_label>, not of type incident
	phaseCount
)

// cursor is where an import resumes: the next page of one phase of one
// project, and what the deployments read so far left for the next ones.
type cursor struct {
	Project string `json:"project"`
	Phase   int    `json:"phase"`
	Page    int64  `json:"page"`
	// Deployed is the SHA last deployed with success per environment of
	// the project, the start of the next deployment's compare.
	Deployed map[string]string `json:"deployed,omitempty"`
	Done     int               `json:"done"`
}

// Import reads the window's history of every project, project by project,
// a page at a time: each page is one batch, whose cursor is the next page.
func (h *History) Import(ctx context.Context, w history.Window, cur string, sink history.Sink) error {
	c, err := h.cfg.apiClient(h.http)
	if err != nil {
		return err
	}
	var pos cursor
	if cur != "" {
		if err := json.Unmarshal([]byte(cur), &pos); err != nil {
			pos = cursor{} // not ours (an older version's): start over; IDs keep it counted once
		}
	}
	start := 0
	if pos.Project != "" {
		if i := slices.Index(h.cfg.Projects, pos.Project); i >= 0 {
			start = i
		} else {
			pos = cursor{Done: pos.Done}
		}
	}
	for i := start; i < len(h.cfg.Projects); i++ {
		project := h.cfg.Projects[i]
		if pos.Project != project {
			pos = cursor{Project: project, Done: pos.Done}
		}
		r := &projectReader{h: h, c: c, w: w, repo: project, index: i, pos: pos}
		if err := r.run(ctx, sink); err != nil {
			return err
		}
		pos = r.pos
	}
	return nil
}

// projectReader imports one project.
type projectReader struct {
	h     *History
	c     *gl.Client
	w     history.Window
	repo  string
	index int
	pos   cursor
	// total is the items of the listing being read (0: unknown), base the
	// items done before it.
	total, base int
}

func (r *projectReader) run(ctx context.Context, sink history.Sink) error {
	for r.pos.Phase < phaseCount {
		if r.pos.Page < 1 {
			r.pos.Page = 1
		}
		// The items of this listing read before (a resumed import's).
		r.base = max(r.pos.Done-int(r.pos.Page-1)*perPage, 0)
		for r.pos.Page != 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			events, items, next, err := r.page(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return r.settingError(err)
			}
			r.pos.Page = next
			r.pos.Done += items
			if next == 0 {
				r.pos.Phase++
				r.pos.Page = 1
				if r.pos.Phase == phaseCount {
					r.pos.Page = 0
				}
			}
			b := history.Batch{Events: events, Cursor: r.encode(), Done: r.pos.Done}
			if r.total > 0 {
				b.Total = r.base + r.total
			}
			if err := sink.Apply(ctx, b); err != nil {
				return err
			}
			if next == 0 {
				break
			}
		}
	}
	return nil
}

func (r *projectReader) encode() string {
	b, _ := json.Marshal(r.pos)
	return string(b)
}

// settingError names the setting that a 401, 403 or 404 of a listing says
// to fix; other errors are returned as they are.
func (r *projectReader) settingError(err error) error {
	switch status(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return &history.SettingError{Setting: r.h.cfg.tokenSetting(), Err: fmt.Errorf("GitLab refused the token (it needs scope read_api and access to %s): %w", r.repo, err)}
	case http.StatusNotFound:
		return &history.SettingError{Setting: fmt.Sprintf("%s[%d]", settingProjects, r.index), Err: fmt.Errorf("GitLab has no project %q that the token can read: %w", r.repo, err)}
	}
	return fmt.Errorf("GitLab project %s: %w", r.repo, err)
}

// status is the HTTP status of a client error, 0 for none.
func status(err error) int {
	if errors.Is(err, gl.ErrNotFound) {
		return http.StatusNotFound
	}
	var er *gl.ErrorResponse
	if errors.As(err, &er) {
		if er.Response != nil {
			return er.Response.StatusCode
		}
		return er.StatusCode
	}
	return 0
}

// page reads the cursor's page: its events, how many items it had and the
// next page (0 after the last).
func (r *projectReader) page(ctx context.Context) ([]event.Event, int, int64, error) {
	list := gl.ListOptions{PerPage: perPage, Page: r.pos.Page}
	from, to := r.w.From, r.w.To
	asc, byUpdate := "asc", "updated_at"
	opt := gl.WithContext(ctx)
	var resp *gl.Response
	var err error
	var events []event.Event
	items := 0
	switch r.pos.Phase {
	case phaseMergeRequests:
		var mrs []*gl.BasicMergeRequest
		state := "merged"
		mrs, resp, err = r.c.MergeRequests.ListProjectMergeRequests(r.repo, &gl.ListProjectMergeRequestsOptions{
			ListOptions: list, State: &state, OrderBy: &byUpdate, Sort: &asc, UpdatedAfter: &from, UpdatedBefore: &to,
		}, opt)
		if err != nil {
			return nil, 0, 0, err
		}
		items = len(mrs)
		for _, mr := range mrs {
			events = r.mergeRequest(events, mr)
		}
	case phaseDeployments:
		var ds []*gl.Deployment
		ds, resp, err = r.c.Deployments.ListProjectDeployments(r.repo, &gl.ListProjectDeploymentsOptions{
			ListOptions: list, OrderBy: &byUpdate, Sort: &asc, UpdatedAfter: &from, UpdatedBefore: &to,
		}, opt)
		if err != nil {
			return nil, 0, 0, err
		}
		items = len(ds)
		for _, d := range ds {
			if events, err = r.deployment(ctx, events, d); err != nil {
				return nil, 0, 0, err
			}
		}
	case phaseIncidents, phaseLabelledIncidents:
		o := &gl.ListProjectIssuesOptions{ListOptions: list, OrderBy: &byUpdate, Sort: &asc, UpdatedAfter: &from, UpdatedBefore: &to}
		if r.pos.Phase == phaseIncidents {
			typ := "incident"
			o.IssueType = &typ
		} else {
			o.Labels = &gl.LabelOptions{r.h.p.cfg.IncidentLabel}
		}
		var issues []*gl.Issue
		issues, resp, err = r.c.Issues.ListProjectIssues(r.repo, o, opt)
		if err != nil {
			return nil, 0, 0, err
		}
		items = len(issues)
		for _, is := range issues {
			if r.pos.Phase == phaseLabelledIncidents && isIncidentType(is) {
				continue // read in the incidents phase
			}
			events = r.incident(events, is)
		}
	}
	r.total = int(resp.TotalItems)
	next := resp.NextPage
	if items == 0 || next <= r.pos.Page {
		next = 0 // the last page (or a server that pages backwards)
	}
	return events, items, next, nil
}

func isIncidentType(is *gl.Issue) bool {
	return is.IssueType != nil && strings.EqualFold(*is.IssueType, "incident")
}

// mergeRequest appends a merged merge request's ChangeOpened and
// ChangeMerged, as the webhook makes ChangeMerged: one without a merge
// commit (fast-forward) is left to its commits. The merge time is
// merged_at, which the hook does not carry (it has updated_at).
func (r *projectReader) mergeRequest(events []event.Event, mr *gl.BasicMergeRequest) []event.Event {
	merged := mr.MergedAt
	if merged == nil {
		merged = mr.UpdatedAt
	}
	if merged == nil || !r.w.Contains(*merged) || mr.IID <= 0 || !gitpush.IsSHA(mr.MergeCommitSHA) {
		return events
	}
	rev := strings.ToLower(mr.MergeCommitSHA)
	if mr.CreatedAt != nil {
		events = append(events, event.Event{
			Kind:       event.ChangeOpened,
			Source:     event.SourceGitLab,
			ID:         changeID(r.repo, mr.IID) + "/opened",
			Time:       mr.CreatedAt.UTC(),
			Repository: r.repo,
			ChangeID:   changeID(r.repo, mr.IID),
		})
	}
	return append(events, r.h.p.mergedEvent(r.repo, mr.IID, rev, merged.UTC(), mr.Title, mr.Description, mr.SourceBranch, mr.Labels))
}

// deployment appends a deployment's events as the deployment hook makes
// them (running, then success or failed; other statuses are no outcome),
// a successful one after the commits it shipped: those between the SHA
// last deployed with success to its environment and its own (compare).
func (r *projectReader) deployment(ctx context.Context, events []event.Event, d *gl.Deployment) ([]event.Event, error) {
	if d.ID <= 0 || d.Environment == nil || d.Environment.Name == "" || d.UpdatedAt == nil {
		return events, nil
	}
	env := d.Environment.Name
	rev := ""
	if gitpush.IsSHA(d.SHA) {
		rev = strings.ToLower(d.SHA)
	}
	switch d.Status {
	case "running", "success", "failed":
	default: // created, canceled, blocked, skipped: deployed nothing
		return events, nil
	}
	// Running: when its job started (the hook's running event), else when
	// the deployment was created.
	started := d.Deployable.StartedAt
	if started == nil {
		started = d.CreatedAt
	}
	if started != nil {
		events = append(events, deploymentEvent(r.repo, d.ID, "running", env, rev, started.UTC()))
	}
	if d.Status == "running" {
		return events, nil
	}
	if d.Status == "success" && rev != "" {
		var err error
		if events, err = r.shipped(ctx, events, env, rev); err != nil {
			return nil, err
		}
	}
	// A finished deployment's last update is its transition to success or
	// failed, the hook's status_changed_at.
	return append(events, deploymentEvent(r.repo, d.ID, d.Status, env, rev, d.UpdatedAt.UTC())), nil
}

// shipped appends the commits that deploying rev to env shipped, and
// notes rev as env's last deployed SHA. The first deployment of an
// environment in the window starts from the last one before the window.
func (r *projectReader) shipped(ctx context.Context, events []event.Event, env, rev string) ([]event.Event, error) {
	if r.pos.Deployed == nil {
		r.pos.Deployed = map[string]string{}
	}
	prev, known := r.pos.Deployed[env]
	if !known {
		var err error
		if prev, err = r.deployedBefore(ctx, env); err != nil {
			return nil, err
		}
	}
	r.pos.Deployed[env] = rev
	if prev == "" || prev == rev {
		return events, nil
	}
	cmp, _, err := r.c.Repositories.Compare(r.repo, &gl.CompareOptions{From: &prev, To: &rev}, gl.WithContext(ctx))
	if status(err) == http.StatusNotFound {
		return events, nil // a deployed commit that is gone (force push): its commits are unknown
	}
	if err != nil {
		return nil, err
	}
	return r.h.p.appendCommits(events, r.repo, "gitlab/"+r.repo+"/commit/", prev, cmp.Commits), nil
}

// deployedBefore is the SHA deployed last with success to env before the
// window, "" when there is none.
func (r *projectReader) deployedBefore(ctx context.Context, env string) (string, error) {
	desc, byUpdate, success := "desc", "updated_at", "success"
	before := r.w.From
	ds, _, err := r.c.Deployments.ListProjectDeployments(r.repo, &gl.ListProjectDeploymentsOptions{
		ListOptions: gl.ListOptions{PerPage: 1}, OrderBy: &byUpdate, Sort: &desc, Environment: &env, Status: &success, UpdatedBefore: &before,
	}, gl.WithContext(ctx))
	if err != nil {
		return "", err
	}
	if len(ds) == 0 || !gitpush.IsSHA(ds[0].SHA) {
		return "", nil
	}
	return strings.ToLower(ds[0].SHA), nil
}

// appendCommits appends a ChangeCommitted per commit, in the order GitLab
// lists them (oldest first, as the push hook does: both are git's
// commits between the two SHAs), each linked to the one before it and the
// first to parent, with the revert its message names, as the push hook's
// commits are: idPrefix+SHA is the event ID.
func (p *Provider) appendCommits(events []event.Event, repo, idPrefix, parent string, commits []*gl.Commit) []event.Event {
	for _, c := range commits {
		if c == nil || !gitpush.IsSHA(c.ID) {
			continue
		}
		rev := strings.ToLower(c.ID)
		at := commitTimeOf(c)
		if at.IsZero() {
			parent = rev
			continue
		}
		ev := event.Event{
			Kind:           event.ChangeCommitted,
			Source:         event.SourceGitLab,
			ID:             idPrefix + rev,
			Time:           at,
			Repository:     repo,
			Revision:       rev,
			ParentRevision: parent,
		}
		if msg := c.Message; msg != "" && p.signals.ReadsReverts() {
			ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted([]byte(msg)), '!', changeID)
		}
		events = append(events, ev)
		parent = rev
	}
	return events
}

// commitTimeOf is the commit's committed_date, the push hook's timestamp;
// the API's created_at is the same time where committed_date is left out.
func commitTimeOf(c *gl.Commit) time.Time {
	switch {
	case c.CommittedDate != nil:
		return c.CommittedDate.UTC()
	case c.CreatedAt != nil:
		return c.CreatedAt.UTC()
	}
	return time.Time{}
}

// incident appends an incident issue's opening and, once closed, its
// resolution, as the issue hook makes them. Reopenings are not in the
// issue (its resource state events would have them). The opening of an
// incident resolved in the window is imported with it, wherever it falls,
// so that its time to restore is known.
func (r *projectReader) incident(events []event.Event, is *gl.Issue) []event.Event {
	if is.IID <= 0 || is.CreatedAt == nil {
		return events
	}
	opened := is.CreatedAt.UTC()
	var closed time.Time
	if is.State == "closed" && is.ClosedAt != nil {
		closed = is.ClosedAt.UTC()
	}
	resolvedInWindow := !closed.IsZero() && r.w.Contains(closed)
	if !r.w.Contains(opened) && !resolvedInWindow {
		return events
	}
	labels := []string(is.Labels)
	events = append(events, r.h.p.incidentEvent(r.repo, is.IID, "opened", opened, labels))
	if resolvedInWindow {
		events = append(events, r.h.p.incidentEvent(r.repo, is.IID, "closed", closed, labels))
	}
	return events
}
