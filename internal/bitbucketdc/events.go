package bitbucketdc

import (
	"strconv"
	"sync"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Pushes are read with jsonscan.Scanner in one pass, keeping only
//
//	{date, repository{slug, project{key}}, changes[{ref{type}, fromHash, toHash, type}],
//	 commits[{id, committerTimestamp, message, parents[{id}]}]}
//
// committerTimestamp is epoch milliseconds (Bitbucket's REST form), or an
// ISO 8601 string in some versions' payloads; both are read.

type refChange struct {
	branch   bool
	kind     []byte // ADD, UPDATE, DELETE
	from, to []byte
}

type pushCommit struct {
	id, message, parent, isoTime []byte
	ms                           int64
}

type pushScratch struct {
	scan       jsonscan.Scanner
	date       []byte
	project    string
	slug       string
	changes    []refChange
	commits    []pushCommit
	hasCommits bool
	text       []byte
}

var pushScratchPool = sync.Pool{New: func() any { return new(pushScratch) }}

func (ps *pushScratch) reset() {
	clear(ps.changes)
	clear(ps.commits)
	ps.changes, ps.commits, ps.text = ps.changes[:0], ps.commits[:0], ps.text[:0]
	ps.date, ps.project, ps.slug, ps.hasCommits = nil, "", "", false
}

func (ps *pushScratch) release() {
	ps.reset()
	if cap(ps.commits) > 1024 || cap(ps.text) > 1<<20 || cap(ps.changes) > 1024 {
		return
	}
	ps.scan = jsonscan.Scanner{}
	pushScratchPool.Put(ps)
}

func (ps *pushScratch) decode(body []byte) error {
	ps.reset()
	s := &ps.scan
	s.Reset(body)
	if s.Object("") {
		for s.NextKey() {
			switch {
			case s.KeyIs("date"):
				if v, ok := s.StringBytes("date"); ok {
					ps.date = v
				}
			case s.KeyIs("repository"):
				if s.Object("repository") {
					for s.NextKey() {
						switch {
						case s.KeyIs("slug"):
							ps.slug = s.String("repository.slug")
						case s.KeyIs("project"):
							if s.Object("repository.project") {
								for s.NextKey() {
									if s.KeyIs("key") {
										ps.project = s.String("repository.project.key")
									} else {
										s.Skip()
									}
								}
							}
						default:
							s.Skip()
						}
					}
				}
			case s.KeyIs("changes"):
				ps.changes = ps.changes[:0]
				if s.Array("changes") {
					for s.NextElem() {
						ps.changes = append(ps.changes, ps.decodeChange(s))
					}
				}
			case s.KeyIs("commits"):
				ps.commits = ps.commits[:0]
				ps.hasCommits = false
				if s.Array("commits") {
					ps.hasCommits = true
					for s.NextElem() {
						ps.commits = append(ps.commits, ps.decodeCommit(s))
					}
				}
			default:
				s.Skip()
			}
		}
	}
	return s.Err()
}

func (ps *pushScratch) decodeChange(s *jsonscan.Scanner) refChange {
	var c refChange
	if !s.Object("changes") {
		return c
	}
	for s.NextKey() {
		switch {
		case s.KeyIs("ref"):
			if s.Object("changes.ref") {
				for s.NextKey() {
					if s.KeyIs("type") {
						v, _ := s.StringBytes("changes.ref.type")
						c.branch = string(v) == "BRANCH"
					} else {
						s.Skip()
					}
				}
			}
		case s.KeyIs("type"):
			c.kind, _ = s.StringBytes("changes.type")
		case s.KeyIs("fromHash"):
			c.from, _ = s.StringBytes("changes.fromHash")
		case s.KeyIs("toHash"):
			c.to, _ = s.StringBytes("changes.toHash")
		default:
			s.Skip()
		}
	}
	return c
}

func (ps *pushScratch) decodeCommit(s *jsonscan.Scanner) pushCommit {
	var c pushCommit
	if !s.Object("commits") {
		return c
	}
	for s.NextKey() {
		switch {
		case s.KeyIs("id"):
			c.id, _ = s.StringBytes("commits.id")
		case s.KeyIs("committerTimestamp"):
			c.ms, c.isoTime = 0, nil
			if s.ValueKind() == "string" {
				c.isoTime, _ = s.StringBytes("commits.committerTimestamp")
			} else {
				c.ms = s.Int64("commits.committerTimestamp")
			}
		case s.KeyIs("message"):
			var v []byte
			var ok bool
			if ps.text, v, ok = s.AppendString(ps.text, "commits.message"); ok {
				c.message = v
			}
		case s.KeyIs("parents"):
			c.parent = nil
			if s.Array("commits.parents") {
				for s.NextElem() {
					if !s.Object("commits.parents") {
						continue
					}
					for s.NextKey() {
						if s.KeyIs("id") {
							if v, ok := s.StringBytes("commits.parents.id"); ok && c.parent == nil {
								c.parent = v
							}
						} else {
							s.Skip()
						}
					}
				}
			}
		default:
			s.Skip()
		}
	}
	return c
}

// refsChanged yields ChangeCommitted events for the commits pushed to
// branches: each listed commit at its committer time, oldest first, linked
// to its first parent; without a commit list, each updated branch's new tip
// at the time of the push (see the package comment).
func (p *Provider) refsChanged(d delivery) (webhook.Result, error) {
	ps := pushScratchPool.Get().(*pushScratch)
	defer ps.release()
	if err := ps.decode(d.body); err != nil {
		return webhook.Result{}, err
	}
	if err := d.checkAge(ps.date); err != nil {
		return webhook.Result{}, err
	}
	repo, err := repoName(ps.project, ps.slug)
	if err != nil {
		return webhook.Result{}, err
	}
	branches := 0
	for i := range ps.changes {
		c := &ps.changes[i]
		if c.branch && string(c.kind) != "DELETE" && len(c.to) > 0 && !gitpush.IsZeroSHABytes(c.to) {
			branches++
		}
	}
	if len(ps.changes) == 0 {
		return webhook.Result{}, webhook.Required("changes", "")
	}
	if branches == 0 {
		return webhook.Result{Ignored: "no branch created or updated (tags or deletions only)"}, nil
	}
	if ps.hasCommits && len(ps.commits) > 0 {
		return p.listedCommits(d, ps, repo)
	}
	return p.tipCommits(d, ps, repo)
}

func (p *Provider) listedCommits(d delivery, ps *pushScratch, repo string) (webhook.Result, error) {
	res := webhook.Result{Events: make([]event.Event, 0, len(ps.commits))}
	seen := make(map[string]struct{}, len(ps.commits))
	// Bitbucket lists the commits newest first.
	for i := len(ps.commits) - 1; i >= 0; i-- {
		c := &ps.commits[i]
		field := "commits[" + strconv.Itoa(i) + "]"
		id, rev, err := gitpush.CommitEventID(d.id, "/", i, c.id)
		if err != nil {
			return webhook.Result{}, webhook.BadRequest("field %q: %q is not a full commit SHA", field+".id", c.id)
		}
		if _, dup := seen[rev]; dup {
			continue
		}
		seen[rev] = struct{}{}
		at := millis(c.ms)
		if len(c.isoTime) > 0 {
			if at, err = parseTime(field+".committerTimestamp", c.isoTime); err != nil {
				return webhook.Result{}, err
			}
		}
		if at.IsZero() {
			return webhook.Result{}, webhook.Required(field+".committerTimestamp", "")
		}
		parent := ""
		if len(c.parent) > 0 {
			if parent, err = gitpush.CommitSHA(field+".parents[0].id", string(c.parent)); err != nil {
				return webhook.Result{}, err
			}
		}
		ev := event.Event{
			Kind:           event.ChangeCommitted,
			Source:         event.SourceBitbucketDC,
			ID:             id,
			Time:           at,
			Repository:     repo,
			Revision:       rev,
			ParentRevision: parent,
		}
		if len(c.message) > 0 && p.signals.ReadsReverts() {
			ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted(c.message), '#', changeID)
		}
		res.Events = append(res.Events, ev)
	}
	return res, nil
}

func (p *Provider) tipCommits(d delivery, ps *pushScratch, repo string) (webhook.Result, error) {
	at := d.received
	if len(ps.date) > 0 {
		var err error
		if at, err = parseTime("date", ps.date); err != nil {
			return webhook.Result{}, err
		}
	}
	if at.IsZero() {
		return webhook.Result{}, webhook.Required("date", "")
	}
	var res webhook.Result
	for i := range ps.changes {
		c := &ps.changes[i]
		if !c.branch || string(c.kind) == "DELETE" || len(c.to) == 0 || gitpush.IsZeroSHABytes(c.to) {
			continue
		}
		field := "changes[" + strconv.Itoa(i) + "]"
		id, rev, err := gitpush.CommitEventID(d.id, "/", i, c.to)
		if err != nil {
			return webhook.Result{}, webhook.BadRequest("field %q: %q is not a full commit SHA", field+".toHash", c.to)
		}
		parent := ""
		if len(c.from) > 0 && !gitpush.IsZeroSHABytes(c.from) {
			if parent, err = gitpush.CommitSHA(field+".fromHash", string(c.from)); err != nil {
				return webhook.Result{}, err
			}
		}
		res.Events = append(res.Events, event.Event{
			Kind:           event.ChangeCommitted,
			Source:         event.SourceBitbucketDC,
			ID:             id,
			Time:           at,
			Repository:     repo,
			Revision:       rev,
			ParentRevision: parent,
		})
	}
	// Every one of them stands at the push's time, not its commit's.
	res.Approximate = len(res.Events)
	return res, nil
}

type ref struct {
	DisplayID  string `json:"displayId"`
	Repository struct {
		Slug    string `json:"slug"`
		Project struct {
			Key string `json:"key"`
		} `json:"project"`
	} `json:"repository"`
}

type pullRequestPayload struct {
	Date        string `json:"date"`
	PullRequest struct {
		ID          int64  `json:"id"`
		Title       string `json:"title"`
		Description string `json:"description"`
		State       string `json:"state"`
		ClosedDate  int64  `json:"closedDate"`
		FromRef     ref    `json:"fromRef"`
		ToRef       ref    `json:"toRef"`
		Properties  struct {
			MergeCommit struct {
				ID string `json:"id"`
			} `json:"mergeCommit"`
		} `json:"properties"`
	} `json:"pullRequest"`
}

// pullRequestMerged yields ChangeMerged for a merged pull request, at its
// merge commit (pullRequest.properties.mergeCommit.id, the full hash).
func (p *Provider) pullRequestMerged(d delivery) (webhook.Result, error) {
	var pl pullRequestPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	if err := d.checkAge([]byte(pl.Date)); err != nil {
		return webhook.Result{}, err
	}
	pr := &pl.PullRequest
	if pr.State != "" && pr.State != "MERGED" {
		return webhook.Result{Ignored: "pull request in state " + strconv.Quote(pr.State) + ", not merged"}, nil
	}
	to := &pr.ToRef.Repository
	if err := webhook.Required("pullRequest.toRef.repository.project.key", to.Project.Key, "pullRequest.toRef.repository.slug", to.Slug); err != nil {
		return webhook.Result{}, err
	}
	repo := to.Project.Key + "/" + to.Slug
	if pr.ID <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "pullRequest.id"`)
	}
	rev, err := gitpush.CommitSHA("pullRequest.properties.mergeCommit.id", pr.Properties.MergeCommit.ID)
	if err != nil {
		return webhook.Result{}, err
	}
	at := millis(pr.ClosedDate)
	if at.IsZero() {
		if at, err = parseTime("date", []byte(pl.Date)); err != nil {
			return webhook.Result{}, err
		}
	}
	ev := event.Event{
		Kind:       event.ChangeMerged,
		Source:     event.SourceBitbucketDC,
		ID:         d.id,
		Time:       at,
		Repository: repo,
		Revision:   rev,
		ChangeID:   changeID(repo, pr.ID),
		Hotfix:     p.signals.HotfixBranch(pr.FromRef.DisplayID),
	}
	if p.signals.ReadsReverts() {
		ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted([]byte(pr.Title+"\n\n"+pr.Description)), '#', changeID)
	}
	return webhook.Result{Events: []event.Event{ev}}, nil
}
