package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	gh "github.com/google/go-github/v93/github"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// The history import reads, through GitHub's REST API (go-github), what
// the webhooks would have delivered over the import window: deployments
// and their statuses, the commits between deployed SHAs (compare), merged
// pull requests and issues carrying the incident label. Its events carry
// the identities the live source gives the same facts (DeploymentID,
// Revision, ChangeID, IncidentID) and IDs derived from those facts, so an
// import repeated, or followed by the live delivery of the same fact,
// counts once.

// DefaultHistoryBaseURL is GitHub.com's REST API.
const DefaultHistoryBaseURL = "https://api.github.com/"

// DefaultHistoryTokenEnv is the environment variable the token is read from
// unless token_env or token_file say otherwise.
const DefaultHistoryTokenEnv = "GITHUB_TOKEN"

// The configuration keys the import's errors name.
const (
	historyKey             = "webhooks::github::history::"
	historyRepositoriesKey = historyKey + "repositories"
)

// Bounds on what one import reads.
const (
	// maxHistoryRepositories bounds the repositories setting.
	maxHistoryRepositories = 1000
	// historyPerPage is GitHub's largest page of lists (per_page max 100).
	historyPerPage = 100
	// comparePerPage is compare's largest page: 250 commits. (Were it
	// capped at 100, the pages followed are GitHub's all the same: the
	// same per_page is asked for every page.)
	comparePerPage = 250
	// maxListPages bounds the pages of one list (deployments, pull
	// requests, issues) of one repository: 100,000 items.
	maxListPages = 1000
	// maxCompareCommits bounds the commits read for one deployment: the
	// lead time walk stops long before (engine: maxLeadTimeWalk).
	maxCompareCommits = 10000
	// maxTokenFileBytes bounds token_file.
	maxTokenFileBytes = 64 << 10
	// historyBatchEvents is the size a batch is handed on at, at the end
	// of the deployment, pull request or issue that reaches it.
	historyBatchEvents = 1000
	// commitTimeSlack is how much later than a deployment's creation a
	// commit may be dated (clock skew) and still be looked for as one of
	// its commits.
	commitTimeSlack = 10 * time.Minute
)

// HistoryConfig is the history import's part of the GitHub source's
// configuration (webhooks::github::history).
type HistoryConfig struct {
	// Enabled turns the import on.
	Enabled bool `mapstructure:"enabled"`
	// Repositories are the repositories imported, as owner/name.
	Repositories []string `mapstructure:"repositories"`
	// Environments, when set, limits the deployments imported to these
	// GitHub deployment environments; empty: every environment.
	Environments []string `mapstructure:"environments"`
	// TokenEnv names the environment variable holding the token (default
	// GITHUB_TOKEN); TokenFile, when set, is a file holding it instead.
	TokenEnv  string `mapstructure:"token_env"`
	TokenFile string `mapstructure:"token_file"`
	// BaseURL is the REST API's URL: https://api.github.com/ or, for
	// GitHub Enterprise Server, https://HOST/api/v3/.
	BaseURL string `mapstructure:"base_url"`
}

// DefaultHistoryConfig is the import's configuration when the user sets
// nothing: off.
func DefaultHistoryConfig() HistoryConfig {
	return HistoryConfig{TokenEnv: DefaultHistoryTokenEnv, BaseURL: DefaultHistoryBaseURL}
}

// Check checks the configuration; errors name the key (under history::).
// (Not Validate: Config.Validate calls it, and the collector would call a
// Validate of a nested struct a second time.)
func (c *HistoryConfig) Check() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if len(c.Repositories) == 0 {
		errs = append(errs, errors.New("history::repositories: at least one owner/name is needed when history::enabled"))
	}
	if len(c.Repositories) > maxHistoryRepositories {
		errs = append(errs, fmt.Errorf("history::repositories: %d repositories, at most %d", len(c.Repositories), maxHistoryRepositories))
	}
	for i, r := range c.Repositories {
		if _, _, ok := splitRepository(r); !ok {
			errs = append(errs, fmt.Errorf("history::repositories[%d]: %q is not owner/name", i, r))
		}
	}
	for i, e := range c.Environments {
		if strings.TrimSpace(e) == "" {
			errs = append(errs, fmt.Errorf("history::environments[%d]: empty environment", i))
		}
	}
	if c.TokenFile == "" && strings.TrimSpace(c.TokenEnv) == "" {
		errs = append(errs, errors.New("history::token_env: set token_env (an environment variable) or token_file"))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("history::base_url: %q is not an http(s) URL", c.BaseURL))
	}
	return errors.Join(errs...)
}

// tokenSetting is the key of the setting the token comes from.
func (c *HistoryConfig) tokenSetting() string {
	if c.TokenFile != "" {
		return historyKey + "token_file"
	}
	return historyKey + "token_env"
}

// token reads the token from token_file or token_env.
func (c *HistoryConfig) token() (string, error) {
	if c.TokenFile != "" {
		f, err := os.Open(c.TokenFile)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
		if err != nil {
			return "", err
		}
		if len(b) > maxTokenFileBytes {
			return "", fmt.Errorf("%s is larger than %d bytes", c.TokenFile, maxTokenFileBytes)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("%s is empty", c.TokenFile)
	}
	if t := strings.TrimSpace(os.Getenv(c.TokenEnv)); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("environment variable %s is empty", c.TokenEnv)
}

func splitRepository(r string) (owner, name string, ok bool) {
	owner, name, ok = strings.Cut(r, "/")
	ok = ok && owner != "" && name != "" && !strings.ContainsAny(name, "/ ") && !strings.ContainsAny(owner, " ")
	return owner, name, ok
}

// HistorySource imports a GitHub history: a history.Source.
type HistorySource struct {
	client *http.Client
	cfg    HistoryConfig
	live   *Provider
	envs   map[string]bool
	// batchEvents is historyBatchEvents, smaller in tests.
	batchEvents int
}

// NewHistorySource returns the importer of cfg.History, requesting through
// client (the receiver's polite API client: rate limits, retries, budget)
// and mapping facts to events as the live source configured by cfg does
// (incident_label, revert_patterns, hotfix_labels, hotfix_branches). cfg
// should have passed Validate.
func NewHistorySource(client *http.Client, cfg Config) *HistorySource {
	if client == nil {
		client = http.DefaultClient
	}
	s := &HistorySource{client: client, cfg: cfg.History, live: New(cfg), batchEvents: historyBatchEvents}
	if len(cfg.History.Environments) > 0 {
		s.envs = map[string]bool{}
		for _, e := range cfg.History.Environments {
			s.envs[strings.TrimSpace(e)] = true
		}
	}
	return s
}

// Name is the source's name in logs, telemetry and saved progress.
func (s *HistorySource) Name() string { return event.SourceGitHub }

var _ history.Source = (*HistorySource)(nil)

// historyCursor is where an import resumes: in repository R, after the
// timeline item (T, K), with the commit chain read up to page P, item I
// (S the last commit handed on, the parent of the next). End: R is done.
type historyCursor struct {
	R   string `json:"r"`
	End bool   `json:"end,omitempty"`
	T   int64  `json:"t,omitempty"`
	K   string `json:"k,omitempty"`
	B   string `json:"b,omitempty"`
	H   string `json:"h,omitempty"`
	P   int    `json:"p,omitempty"`
	I   int    `json:"i,omitempty"`
	S   string `json:"s,omitempty"`
}

// repoDeployment is what the import keeps of a listed deployment.
type repoDeployment struct {
	id      int64
	sha     string
	env     string
	created time.Time
}

// Import reads the window's history of every configured repository, one
// repository after the other, each in time order.
func (s *HistorySource) Import(ctx context.Context, w history.Window, cursor string, sink history.Sink) error {
	var cur historyCursor
	if cursor != "" {
		// An unreadable cursor (a newer version's) restarts the import:
		// everything it hands on again is counted once.
		if json.Unmarshal([]byte(cursor), &cur) != nil {
			cur = historyCursor{}
		}
	}
	token, err := s.cfg.token()
	if err != nil {
		return &history.SettingError{Setting: s.cfg.tokenSetting(), Err: err}
	}
	client, err := gh.NewClient(
		gh.WithHTTPClient(s.client),
		gh.WithAuthToken(token),
		gh.WithURLs(&s.cfg.BaseURL, nil),
		gh.WithUserAgent("otelcol-dora"),
		// The polite client waits out rate limits; go-github's own check
		// would fail the request instead.
		gh.WithDisableRateLimitCheck(),
	)
	if err != nil {
		return &history.SettingError{Setting: historyKey + "base_url", Err: err}
	}
	start := 0
	if cur.R != "" {
		if i := slices.Index(s.cfg.Repositories, cur.R); i >= 0 {
			start = i
		} else {
			cur = historyCursor{}
		}
	}
	// Every repository's deployments are listed first (one request per
	// 100), so that progress has a total.
	deps := make([][]repoDeployment, len(s.cfg.Repositories))
	bases := make([]map[string]repoDeployment, len(s.cfg.Repositories))
	total := 0
	for i := start; i < len(s.cfg.Repositories); i++ {
		if i == start && cur.End {
			continue
		}
		if deps[i], bases[i], err = s.listDeployments(ctx, client, s.cfg.Repositories[i], w); err != nil {
			return err
		}
		total += len(deps[i])
	}
	r := &run{s: s, gh: client, w: w, sink: sink, total: total}
	for i := start; i < len(s.cfg.Repositories); i++ {
		repo := s.cfg.Repositories[i]
		if i == start && cur.End {
			continue
		}
		resume := historyCursor{}
		if i == start {
			resume = cur
		}
		if err := r.repository(ctx, repo, deps[i], bases[i], resume); err != nil {
			return err
		}
	}
	return nil
}

// classify turns a request's error into what stops the import: a
// SettingError for a refused token (401, 403) or, when listing, a missing
// repository (404).
func (s *HistorySource) classify(ctx context.Context, repo, what string, err error, listing bool) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var rl *gh.RateLimitError
	var abuse *gh.AbuseRateLimitError
	if errors.As(err, &rl) || errors.As(err, &abuse) {
		return fmt.Errorf("github history %s: %s: %w", repo, what, err)
	}
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch code := er.Response.StatusCode; {
		case code == http.StatusUnauthorized:
			return &history.SettingError{Setting: s.cfg.tokenSetting(), Err: fmt.Errorf("GitHub refused the token (401) reading %s of %s: %w", what, repo, err)}
		case code == http.StatusForbidden:
			return &history.SettingError{Setting: s.cfg.tokenSetting(), Err: fmt.Errorf("the token may not read %s of %s (403; needs Deployments, Contents, Pull requests, Issues: read): %w", what, repo, err)}
		case code == http.StatusNotFound && listing:
			return &history.SettingError{Setting: historyRepositoriesKey, Err: fmt.Errorf("repository %s not found, or not visible to the token (404): %w", repo, err)}
		}
	}
	return fmt.Errorf("github history %s: %s: %w", repo, what, err)
}

// notFound reports a 404 or 422 answer: a deployment or commit that is
// gone (deleted, force-pushed away) is skipped.
func notFound(err error) bool {
	var er *gh.ErrorResponse
	return errors.As(err, &er) && er.Response != nil &&
		(er.Response.StatusCode == http.StatusNotFound || er.Response.StatusCode == http.StatusUnprocessableEntity)
}

// listDeployments lists repo's deployments created in the window, oldest
// first, of the configured environments; and for each environment the SHA
// deployed last before the window (where its commits start).
func (s *HistorySource) listDeployments(ctx context.Context, client *gh.Client, repo string, w history.Window) ([]repoDeployment, map[string]repoDeployment, error) {
	owner, name, _ := splitRepository(repo)
	var in []repoDeployment
	before := map[string]repoDeployment{}
	opts := &gh.DeploymentsListOptions{ListOptions: gh.ListOptions{PerPage: historyPerPage}}
	for page := 0; page < maxListPages; page++ {
		list, resp, err := client.Repositories.ListDeployments(ctx, owner, name, opts)
		if err != nil {
			return nil, nil, s.classify(ctx, repo, "deployments", err, true)
		}
		oldest := time.Time{}
		for _, d := range list {
			dep, ok := s.deployment(d)
			if !ok {
				continue
			}
			if oldest.IsZero() || dep.created.Before(oldest) {
				oldest = dep.created
			}
			switch {
			case w.Contains(dep.created):
				in = append(in, dep)
			case dep.created.Before(w.From):
				if b, seen := before[dep.env]; !seen || dep.created.After(b.created) {
					before[dep.env] = dep
				}
			}
		}
		// GitHub lists the newest first: a page reaching before the window
		// has found each environment's last deployment before it.
		if resp.NextPage == 0 || (!oldest.IsZero() && oldest.Before(w.From)) {
			break
		}
		opts.Page = resp.NextPage
	}
	slices.SortFunc(in, func(a, b repoDeployment) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return cmpInt64(a.id, b.id)
	})
	in = slices.CompactFunc(in, func(a, b repoDeployment) bool { return a.id == b.id })
	return in, before, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deployment keeps what the import uses of d, if it is one to import.
func (s *HistorySource) deployment(d *gh.Deployment) (repoDeployment, bool) {
	if d == nil || d.GetID() <= 0 || d.CreatedAt == nil || d.GetEnvironment() == "" {
		return repoDeployment{}, false
	}
	sha, err := gitpush.CommitSHA("sha", d.GetSHA())
	if err != nil {
		return repoDeployment{}, false
	}
	if s.envs != nil && !s.envs[d.GetEnvironment()] {
		return repoDeployment{}, false
	}
	return repoDeployment{id: d.GetID(), sha: sha, env: d.GetEnvironment(), created: d.CreatedAt.UTC()}, true
}

// run is one Import: the batch being filled and the progress.
type run struct {
	s     *HistorySource
	gh    *gh.Client
	w     history.Window
	sink  history.Sink
	batch []event.Event
	done  int
	total int
}

// item is one fact of a repository's timeline, handed on in (at, key)
// order: a deployment (with its commits and statuses), a merged pull
// request, an incident opened or resolved.
type item struct {
	at  time.Time
	key string
	dep *repoDeployment
	evs []event.Event
}

func (it *item) after(t int64, k string) bool {
	if n := it.at.UnixNano(); n != t {
		return n > t
	}
	return it.key > k
}

// repository imports one repository from resume.
func (r *run) repository(ctx context.Context, repo string, deps []repoDeployment, before map[string]repoDeployment, resume historyCursor) error {
	items := make([]item, 0, len(deps))
	for i := range deps {
		d := &deps[i]
		items = append(items, item{at: d.created, key: fmt.Sprintf("d/%020d", d.id), dep: d})
	}
	prs, err := r.pullRequests(ctx, repo)
	if err != nil {
		return err
	}
	items = append(items, prs...)
	incidents, err := r.incidents(ctx, repo)
	if err != nil {
		return err
	}
	items = append(items, incidents...)
	slices.SortFunc(items, func(a, b item) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})

	ch := r.newChain(repo, deps, before, resume)
	// prev is each environment's deployed SHA before the deployment at
	// hand: where its own commits start when they are not in the chain.
	prev := map[string]string{}
	for env, d := range before {
		prev[env] = d.sha
	}
	resuming := resume.R == repo && resume.K != ""
	pos := historyCursor{R: repo}
	if resuming {
		pos.T, pos.K = resume.T, resume.K
	}
	for i := range items {
		it := &items[i]
		if resuming && !it.after(resume.T, resume.K) {
			if it.dep != nil {
				prev[it.dep.env] = it.dep.sha
				ch.deployed(it.dep.sha)
				r.done++
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if it.dep != nil {
			if err := r.deploymentItem(ctx, repo, it.dep, prev, ch); err != nil {
				return err
			}
			prev[it.dep.env] = it.dep.sha
			r.done++
		} else {
			r.batch = append(r.batch, it.evs...)
		}
		pos.T, pos.K = it.at.UnixNano(), it.key
		if len(r.batch) >= r.s.batchEvents {
			if err := r.flush(ctx, ch.cursor(pos)); err != nil {
				return err
			}
		}
	}
	return r.flush(ctx, historyCursor{R: repo, End: true})
}

func (r *run) flush(ctx context.Context, c historyCursor) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	batch := history.Batch{Events: r.batch, Cursor: string(b), Done: r.done, Total: r.total}
	if err := r.sink.Apply(ctx, batch); err != nil {
		return err
	}
	// The sink owns the applied events: a new slice, not a reused one.
	r.batch = make([]event.Event, 0, r.s.batchEvents+historyPerPage)
	return nil
}

// deploymentItem hands on a deployment's commits (from the chain, or from
// a compare of its own), its start and its statuses.
func (r *run) deploymentItem(ctx context.Context, repo string, d *repoDeployment, prev map[string]string, ch *chain) error {
	found, err := ch.upTo(ctx, d)
	if err != nil {
		return err
	}
	if !found {
		if base := prev[d.env]; base != "" && base != d.sha {
			if err := r.compare(ctx, repo, base, d.sha, ch); err != nil {
				return err
			}
		}
	}
	id := deploymentID(repo, d.id)
	r.batch = append(r.batch, event.Event{
		Kind:         event.DeploymentStarted,
		Source:       event.SourceGitHub,
		ID:           id + "/created",
		Time:         d.created,
		Service:      event.Service{Environment: d.env},
		Repository:   repo,
		DeploymentID: id,
		Revision:     d.sha,
	})
	return r.statuses(ctx, repo, d, id)
}

// statuses hands on a deployment's statuses that are outcomes, oldest
// first, as the deployment_status webhook maps them.
func (r *run) statuses(ctx context.Context, repo string, d *repoDeployment, id string) error {
	owner, name, _ := splitRepository(repo)
	list, _, err := r.gh.Repositories.ListDeploymentStatuses(ctx, owner, name, d.id, &gh.ListOptions{PerPage: historyPerPage})
	if err != nil {
		if notFound(err) {
			return nil
		}
		return r.s.classify(ctx, repo, "deployment statuses", err, false)
	}
	// GitHub lists the newest first; a deployment with more than 100
	// statuses has its newest 100 read, the outcome among them.
	for i := len(list) - 1; i >= 0; i-- {
		st := list[i]
		kind, reason, ok := deploymentOutcome(st.GetState())
		if !ok || st.CreatedAt == nil || st.GetID() <= 0 {
			continue
		}
		env := st.GetEnvironment()
		if env == "" {
			env = d.env
		}
		r.batch = append(r.batch, event.Event{
			Kind:         kind,
			Source:       event.SourceGitHub,
			ID:           fmt.Sprintf("%s/status/%d", id, st.GetID()),
			Time:         st.CreatedAt.UTC(),
			Service:      event.Service{Environment: env},
			Repository:   repo,
			DeploymentID: id,
			Revision:     d.sha,
			Reason:       reason,
		})
	}
	return nil
}

// compare hands on the commits of base...head not handed on already,
// each linked to the one before it as a push links them.
func (r *run) compare(ctx context.Context, repo, base, head string, ch *chain) error {
	owner, name, _ := splitRepository(repo)
	opts := &gh.ListOptions{PerPage: comparePerPage, Page: 1}
	parent, n := base, 0
	for n < maxCompareCommits {
		cmp, resp, err := r.gh.Repositories.CompareCommits(ctx, owner, name, base, head, opts)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return r.s.classify(ctx, repo, "compare "+base+"..."+head, err, false)
		}
		for _, c := range cmp.Commits {
			ev, ok := r.commitEvent(repo, c, parent)
			if !ok {
				continue
			}
			parent = ev.Revision
			n++
			if ch.known[ev.Revision] {
				continue
			}
			ch.known[ev.Revision] = true
			r.batch = append(r.batch, ev)
		}
		if resp.NextPage == 0 || len(cmp.Commits) == 0 {
			return nil
		}
		opts.Page = resp.NextPage
	}
	return nil
}

// commitEvent is the ChangeCommitted event of a listed commit, as the push
// webhook makes it: the commit's (author) time, linked to parent, with
// the revert a revert_patterns message names.
func (r *run) commitEvent(repo string, c *gh.RepositoryCommit, parent string) (event.Event, bool) {
	sha, err := gitpush.CommitSHA("sha", c.GetSHA())
	if err != nil || c.Commit == nil || c.Commit.Author == nil || c.Commit.Author.Date == nil {
		return event.Event{}, false
	}
	ev := event.Event{
		Kind:           event.ChangeCommitted,
		Source:         event.SourceGitHub,
		ID:             "github/" + repo + "/commit/" + sha,
		Time:           c.Commit.Author.Date.UTC(),
		Repository:     repo,
		Revision:       sha,
		ParentRevision: parent,
	}
	if p := r.s.live; p.signals.ReadsReverts() {
		if msg := c.Commit.GetMessage(); msg != "" {
			ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted([]byte(msg)), '#', changeID)
		}
	}
	return ev, true
}

// pullRequests lists the pull requests merged in the window: each a
// ChangeOpened and a ChangeMerged, at its merge.
func (r *run) pullRequests(ctx context.Context, repo string) ([]item, error) {
	owner, name, _ := splitRepository(repo)
	opts := &gh.PullRequestListOptions{State: "closed", Sort: "updated", Direction: "desc", ListOptions: gh.ListOptions{PerPage: historyPerPage}}
	var items []item
	for page := 0; page < maxListPages; page++ {
		list, resp, err := r.gh.PullRequests.List(ctx, owner, name, opts)
		if err != nil {
			return nil, r.s.classify(ctx, repo, "pull requests", err, true)
		}
		older := false
		for _, pr := range list {
			if pr.UpdatedAt != nil && pr.UpdatedAt.Before(r.w.From) {
				// Sorted by update, newest first: merged before the window.
				older = true
				continue
			}
			if it, ok := r.pullRequest(repo, pr); ok {
				items = append(items, it)
			}
		}
		if older || resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return items, nil
}

func (r *run) pullRequest(repo string, pr *gh.PullRequest) (item, bool) {
	if pr.MergedAt == nil || !r.w.Contains(pr.MergedAt.Time) || pr.GetNumber() <= 0 {
		return item{}, false
	}
	rev, err := gitpush.CommitSHA("merge_commit_sha", pr.GetMergeCommitSHA())
	if err != nil {
		return item{}, false
	}
	n := int64(pr.GetNumber())
	at := pr.MergedAt.UTC()
	labels := make([]string, 0, len(pr.Labels))
	for _, l := range pr.Labels {
		labels = append(labels, l.GetName())
	}
	id := changeID(repo, n)
	merged := r.s.live.changeMerged(id+"/merged", repo, n, rev, at, pr.GetTitle(), pr.GetBody(), pr.GetHead().GetRef(), labels)
	it := item{at: at, key: fmt.Sprintf("p/%020d", n)}
	if pr.CreatedAt != nil {
		it.evs = append(it.evs, event.Event{
			Kind:       event.ChangeOpened,
			Source:     event.SourceGitHub,
			ID:         id + "/opened",
			Time:       pr.CreatedAt.UTC(),
			Repository: repo,
			ChangeID:   id,
		})
	}
	it.evs = append(it.evs, merged)
	return it, true
}

// incidents lists the issues carrying the incident label opened in the
// window: IncidentOpened at creation, IncidentResolved at closing.
func (r *run) incidents(ctx context.Context, repo string) ([]item, error) {
	owner, name, _ := splitRepository(repo)
	label := r.s.live.cfg.IncidentLabel
	opts := &gh.IssueListByRepoOptions{
		State: "all", Labels: []string{label}, Since: r.w.From,
		Sort: "created", Direction: "asc",
		ListOptions: gh.ListOptions{PerPage: historyPerPage},
	}
	var items []item
	for page := 0; page < maxListPages; page++ {
		list, resp, err := r.gh.Issues.ListByRepo(ctx, owner, name, opts)
		if err != nil {
			return nil, r.s.classify(ctx, repo, "issues", err, true)
		}
		for _, iss := range list {
			items = append(items, r.issue(repo, iss, label)...)
		}
		if resp.NextPage == 0 {
			break
		}
		opts.ListOptions.Page = resp.NextPage
	}
	return items, nil
}

func (r *run) issue(repo string, iss *gh.Issue, label string) []item {
	// The issues list holds pull requests too.
	if iss.IsPullRequest() || iss.GetNumber() <= 0 || iss.CreatedAt == nil || !r.w.Contains(iss.CreatedAt.Time) {
		return nil
	}
	labelled := false
	for _, l := range iss.Labels {
		labelled = labelled || strings.EqualFold(l.GetName(), label)
	}
	if !labelled {
		return nil
	}
	n := int64(iss.GetNumber())
	id := incidentID(repo, n)
	base := event.Event{
		Source:     event.SourceGitHub,
		Service:    event.Service{Environment: incidentEnvironment},
		Repository: repo,
		IncidentID: id,
	}
	opened := base
	// The ID the live issues source gives the opening, too.
	opened.Kind, opened.ID, opened.Time = event.IncidentOpened, id+"/opened", iss.CreatedAt.UTC()
	items := []item{{at: opened.Time, key: fmt.Sprintf("i/%020d/o", n), evs: []event.Event{opened}}}
	if iss.GetState() == "closed" && iss.ClosedAt != nil && r.w.Contains(iss.ClosedAt.Time) {
		resolved := base
		resolved.Kind, resolved.ID, resolved.Time = event.IncidentResolved, id+"/resolved", iss.ClosedAt.UTC()
		items = append(items, item{at: resolved.Time, key: fmt.Sprintf("i/%020d/r", n), evs: []event.Event{resolved}})
	}
	return items
}

// chain reads a repository's commits in one compare, from the SHA
// deployed before the window to the newest SHA deployed in it, 250 a
// page, and hands on each deployment's commits when it comes: one request
// per 250 commits instead of one per deployment. A deployment whose SHA
// is not on the chain (a branch deployed, history rewritten) gets a
// compare of its own.
type chain struct {
	r          *run
	repo       string
	base, head string
	// page is the chain's current page, next the index in it of the next
	// commit to hand on, pageNo its number (0: none read), last its last
	// page was read.
	page   []*gh.RepositoryCommit
	next   int
	pageNo int
	last   bool
	// parent is the last commit handed on.
	parent string
	// known are the commits handed on (or deployed) in this run.
	known map[string]bool
	off   bool
	// refetch: resumed inside page pageNo, which is read again and handed
	// on from next.
	refetch bool
}

func (r *run) newChain(repo string, deps []repoDeployment, before map[string]repoDeployment, resume historyCursor) *chain {
	ch := &chain{r: r, repo: repo, known: map[string]bool{}}
	if len(deps) == 0 {
		ch.off = true
		return ch
	}
	if resume.R == repo && resume.B != "" {
		ch.base, ch.head, ch.pageNo, ch.next, ch.parent = resume.B, resume.H, resume.P, resume.I, resume.S
		ch.refetch = ch.pageNo > 0
		return ch
	}
	// Along the environment deployed most often (production, usually):
	// from its deployment before the window to its newest in it. (The
	// newest deployment of all may be of a branch, off the line.)
	count := map[string]int{}
	env := ""
	for _, d := range deps {
		count[d.env]++
		if count[d.env] > count[env] {
			env = d.env
		}
	}
	for i := len(deps) - 1; i >= 0; i-- {
		if deps[i].env == env {
			ch.head = deps[i].sha
			break
		}
	}
	// Else from the newest deployment before the window of any
	// environment.
	if b, ok := before[env]; ok {
		ch.base = b.sha
	} else {
		var newest repoDeployment
		for _, b := range before {
			if newest.sha == "" || b.created.After(newest.created) || (b.created.Equal(newest.created) && b.id > newest.id) {
				newest = b
			}
		}
		ch.base = newest.sha
	}
	if ch.base == "" {
		// No deployment before the window: the first one's commits are
		// not known (its deployment starts the service's history).
		ch.base = deps[0].sha
	}
	if ch.base == ch.head {
		ch.off = true
	}
	ch.parent = ch.base
	return ch
}

// cursor is pos with the chain's position.
func (ch *chain) cursor(pos historyCursor) historyCursor {
	if !ch.off {
		pos.B, pos.H, pos.P, pos.I, pos.S = ch.base, ch.head, ch.pageNo, ch.next, ch.parent
	}
	return pos
}

// deployed notes a SHA deployed before the resumed position.
func (ch *chain) deployed(sha string) { ch.known[sha] = true }

// upTo hands on the chain's commits up to d's SHA and reports whether d's
// SHA was found on the chain (or handed on before). It stops at a commit
// dated after d was created: d's SHA is not on the chain then.
func (ch *chain) upTo(ctx context.Context, d *repoDeployment) (bool, error) {
	if ch.known[d.sha] || d.sha == ch.base {
		return true, nil
	}
	if ch.off {
		return false, nil
	}
	limit := d.created.Add(commitTimeSlack)
	for {
		if ch.page == nil || ch.next >= len(ch.page) {
			more, err := ch.fetch(ctx)
			if err != nil || !more {
				return false, err
			}
			continue
		}
		c := ch.page[ch.next]
		if c.Commit != nil && c.Commit.Committer != nil && c.Commit.Committer.Date != nil && c.Commit.Committer.Date.After(limit) {
			return false, nil
		}
		ch.next++
		ev, ok := ch.r.commitEvent(ch.repo, c, ch.parent)
		if !ok {
			continue
		}
		ch.parent = ev.Revision
		if !ch.known[ev.Revision] {
			ch.known[ev.Revision] = true
			ch.r.batch = append(ch.r.batch, ev)
		}
		if ev.Revision == d.sha {
			return true, nil
		}
	}
}

// fetch reads the chain's next page (or, resumed, the page it stopped
// in), reporting false at the chain's end.
func (ch *chain) fetch(ctx context.Context) (bool, error) {
	want := ch.pageNo + 1
	if ch.refetch {
		want = ch.pageNo
	}
	if ch.last && !ch.refetch {
		return false, nil
	}
	if want > maxListPages {
		ch.off = true
		return false, nil
	}
	owner, name, _ := splitRepository(ch.repo)
	cmp, resp, err := ch.r.gh.Repositories.CompareCommits(ctx, owner, name, ch.base, ch.head, &gh.ListOptions{PerPage: comparePerPage, Page: want})
	if err != nil {
		if notFound(err) {
			// The base or head is gone: each deployment compares its own.
			ch.off = true
			return false, nil
		}
		return false, ch.r.s.classify(ctx, ch.repo, "compare "+ch.base+"..."+ch.head, err, false)
	}
	if !ch.refetch {
		ch.next = 0
	}
	ch.refetch = false
	ch.page, ch.pageNo = cmp.Commits, want
	ch.last = resp.NextPage == 0
	if ch.next >= len(ch.page) && ch.last {
		return false, nil
	}
	return true, nil
}
