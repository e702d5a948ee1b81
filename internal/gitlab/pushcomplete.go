package gitlab

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// GitLab's push hook lists the newest 20 commits of a push
// (total_commits_count says how many it had). The push completion fetches
// the others with the compare API (before..after), after the delivery is
// answered: the hook's commits are applied and acknowledged at once, as
// without it, and the rest follow a moment later through the ingest core,
// with the IDs the hook would have given them (gitlab/<project>/push/
// <before>..<after>/<sha>), so a redelivered hook, a second completion of
// the same push or an import of the same commits counts nothing twice.
//
// It is bounded: one worker, a queue of pushCompletionQueue pushes (a push
// arriving when it is full is left as the hook listed it, and logged), and
// each completion has pushCompletionTimeout, API request included. A push
// that created its branch (before is all zeros) has nothing to compare
// with and is left as it is.

const (
	pushCompletionQueue   = 64
	pushCompletionTimeout = 30 * time.Second
	// recentPushes is how many completed pushes are remembered, so that a
	// redelivered hook does not cost a second request.
	recentPushes = 256
)

// ApplyFunc applies live events through the ingest core (logged, then
// applied, deduplicated by ID), as a webhook delivery's are.
type ApplyFunc func(ctx context.Context, events []event.Event) error

// pushJob is a push whose hook left commits out.
type pushJob struct {
	repo, before, after string
	total               int
	// listed are the SHAs the hook listed, oldest first.
	listed []string
}

func (j pushJob) key() string { return pushKey(j.repo, j.before, j.after) }

// PushCompleter completes the pushes of more than 20 commits.
type PushCompleter struct {
	cfg HistoryConfig
	// signals reads reverts from the fetched commits' messages, as the
	// hook's are read.
	signals *Provider
	http    *http.Client
	apply   ApplyFunc
	logger  *zap.Logger

	jobs    chan pushJob
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once // the warning of a completer without a token
	started sync.Once
	stopped sync.Once

	mu     sync.Mutex
	recent map[string]struct{}
	order  []string
}

// NewPushCompleter returns the completer of cfg.History's GitLab, reading
// it through client and applying the commits it finds with apply. Without
// a token (or with complete_pushes off) it completes nothing and logs that
// once, at the first push that needs it.
func NewPushCompleter(cfg Config, client *http.Client, apply ApplyFunc, logger *zap.Logger) *PushCompleter {
	if client == nil {
		client = http.DefaultClient
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	return &PushCompleter{
		cfg: cfg.History, signals: New(cfg), http: client, apply: apply, logger: logger,
		jobs: make(chan pushJob, pushCompletionQueue), stop: make(chan struct{}), done: make(chan struct{}),
		recent: map[string]struct{}{},
	}
}

// Enabled reports whether the completer fetches anything.
func (c *PushCompleter) Enabled() bool { return c.cfg.CompletePushes && c.cfg.HasToken() }

// Start starts the worker.
func (c *PushCompleter) Start() {
	c.started.Do(func() { go c.run() })
}

// Stop stops the worker, abandoning what is queued; it waits for the
// completion under way until ctx ends.
func (c *PushCompleter) Stop(ctx context.Context) error {
	c.stopped.Do(func() { close(c.stop) })
	c.started.Do(func() { close(c.done) }) // never started: nothing to wait for
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue queues a push for completion; it never blocks the delivery.
func (c *PushCompleter) enqueue(j pushJob) {
	if !c.Enabled() {
		c.once.Do(func() {
			c.logger.Warn("GitLab push of more than 20 commits: only the newest 20 are counted; set webhooks::gitlab::history::token_env or token_file (scope read_api) to fetch the others",
				zap.String("project", j.repo), zap.Int("total_commits_count", j.total), zap.Int("listed", len(j.listed)))
		})
		return
	}
	if c.seen(j.key()) {
		return
	}
	select {
	case c.jobs <- j:
	default:
		c.logger.Warn("GitLab push completion queue full: the push keeps only the commits its hook listed",
			zap.String("project", j.repo), zap.String("after", j.after), zap.Int("total_commits_count", j.total))
	}
}

func (c *PushCompleter) seen(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.recent[key]
	return ok
}

func (c *PushCompleter) remember(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.recent[key]; ok {
		return
	}
	c.recent[key] = struct{}{}
	c.order = append(c.order, key)
	if len(c.order) > recentPushes {
		delete(c.recent, c.order[0])
		c.order = c.order[1:]
	}
}

func (c *PushCompleter) run() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-c.stop:
			return
		case j := <-c.jobs:
			jctx, jcancel := context.WithTimeout(ctx, pushCompletionTimeout)
			n, err := c.complete(jctx, j)
			jcancel()
			if err != nil {
				c.logger.Warn("GitLab push completion failed: the push keeps only the commits its hook listed",
					zap.String("project", j.repo), zap.String("before", j.before), zap.String("after", j.after), zap.Error(err))
				continue
			}
			c.remember(j.key())
			c.logger.Debug("GitLab push completed", zap.String("project", j.repo), zap.String("after", j.after),
				zap.Int("total_commits_count", j.total), zap.Int("fetched", n))
		}
	}
}

// complete fetches before..after and applies the commits the hook left
// out, and the link from its oldest listed commit to them; it returns how
// many commits it added.
func (c *PushCompleter) complete(ctx context.Context, j pushJob) (int, error) {
	client, err := c.cfg.apiClient(c.http)
	if err != nil {
		return 0, err
	}
	cmp, _, err := client.Repositories.Compare(j.repo, &gl.CompareOptions{From: &j.before, To: &j.after}, gl.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	events := c.signals.completionEvents(j, cmp.Commits)
	if len(events) == 0 {
		return 0, nil
	}
	if err := c.apply(ctx, events); err != nil {
		return 0, err
	}
	return len(events) - 1, nil
}

// completionEvents are the ChangeCommitted of the commits of compare that
// the hook did not list, linked as the hook's would have been (the first
// to before, each to the one before it), under the push's IDs; and the
// hook's oldest listed commit again, now linked to the newest of them (the
// hook left its parent empty): under an ID of its own, since its hook
// event's ID is taken.
func (p *Provider) completionEvents(j pushJob, commits []*gl.Commit) []event.Event {
	if len(j.listed) == 0 {
		return nil
	}
	listed := make(map[string]bool, len(j.listed))
	for _, s := range j.listed {
		listed[s] = true
	}
	key := j.key()
	var missing []*gl.Commit
	var oldest *gl.Commit
	for _, cm := range commits {
		if cm == nil {
			continue
		}
		rev := strings.ToLower(cm.ID)
		switch {
		case rev == j.listed[0]:
			oldest = cm
		case !listed[rev]:
			missing = append(missing, cm)
		}
	}
	events := p.appendCommits(nil, j.repo, key, j.before, missing)
	if len(events) == 0 || oldest == nil || commitTimeOf(oldest).IsZero() {
		return events
	}
	return append(events, event.Event{
		Kind:           event.ChangeCommitted,
		Source:         event.SourceGitLab,
		ID:             key + j.listed[0] + "/parent",
		Time:           commitTimeOf(oldest),
		Repository:     j.repo,
		Revision:       j.listed[0],
		ParentRevision: events[len(events)-1].Revision,
	})
}
