package github

import (
	"sync"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Pushes are the busiest deliveries (a monorepo push storm), so they are
// read with jsonscan.Scanner: one pass over the body, only the fields
// below are kept, and the scratch space is pooled. The result is what
// encoding/json would have decoded into
//
//	{ref, before, deleted, commits[{id, timestamp, message, added, removed, modified}], repository{full_name}}
//
// with the same errors (push_test.go checks it against encoding/json);
// message is read only when revert_patterns is set.

// pushScratch is the decoded push and the space it is decoded in.
type pushScratch struct {
	scan       jsonscan.Scanner
	ref        []byte
	before     []byte
	deleted    bool
	commits    gitpush.PushCommits
	repository string
}

var pushScratchPool = sync.Pool{New: func() any { return new(pushScratch) }}

// release returns the scratch to the pool unless it grew large.
func (ps *pushScratch) release() {
	ps.commits.Reset()
	if ps.commits.Large() {
		return
	}
	ps.ref, ps.before, ps.repository = nil, nil, ""
	ps.scan = jsonscan.Scanner{}
	pushScratchPool.Put(ps)
}

func (ps *pushScratch) decode(body []byte) error {
	ps.ref, ps.before, ps.deleted, ps.repository = nil, nil, false, ""
	ps.commits.Reset()
	s := &ps.scan
	s.Reset(body)
	if s.Object("") {
		for s.NextKey() {
			switch {
			case s.KeyIs("ref"):
				if v, ok := s.StringBytes("ref"); ok {
					ps.ref = v
				}
			case s.KeyIs("before"):
				if v, ok := s.StringBytes("before"); ok {
					ps.before = v
				}
			case s.KeyIs("deleted"):
				if !s.Null() {
					ps.deleted = s.Bool("deleted")
				}
			case s.KeyIs("commits"):
				ps.commits.Decode(s)
			case s.KeyIs("repository"):
				if s.Object("repository") {
					for s.NextKey() {
						if s.KeyIs("full_name") {
							if v, ok := s.StringBytes("repository.full_name"); ok {
								ps.repository = string(v)
							}
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
	return s.Err()
}

// push yields one ChangeCommitted per pushed commit, oldest first, each
// linked to the one before it; the first is linked to the push's before.
func (p *Provider) push(d delivery) (webhook.Result, error) {
	ps := pushScratchPool.Get().(*pushScratch)
	defer ps.release()
	ps.commits.Messages = p.signals.ReadsReverts()
	if err := ps.decode(d.body); err != nil {
		return webhook.Result{}, err
	}
	ref := ps.ref
	switch {
	case hasPrefix(ref, "refs/tags/"):
		if len(p.cfg.ReleaseDeployments) > 0 {
			return p.tagPush(d)
		}
		return webhook.Result{Ignored: "push of a tag (" + string(ref) + ")"}, nil
	case !hasPrefix(ref, "refs/heads/"):
		if len(ref) == 0 {
			return webhook.Result{}, webhook.Required("ref", "")
		}
		return webhook.Result{Ignored: "push to " + string(ref) + ", which is not a branch"}, nil
	case ps.deleted:
		return webhook.Result{Ignored: "branch " + string(ref) + " deleted"}, nil
	case len(ps.commits.List) == 0:
		return webhook.Result{Ignored: "push without new commits"}, nil
	}
	repo := ps.repository
	if err := webhook.Required("repository.full_name", repo); err != nil {
		return webhook.Result{}, err
	}
	parent := ""
	if len(ps.before) != 0 && !gitpush.IsZeroSHABytes(ps.before) {
		var err error
		if parent, err = gitpush.CommitSHA("before", string(ps.before)); err != nil {
			return webhook.Result{}, err
		}
	}
	commits := ps.commits.List
	res := webhook.Result{Events: make([]event.Event, 0, len(commits))}
	for i := range commits {
		id, rev, err := gitpush.CommitEventID(d.id, "/", i, commits[i].ID)
		if err != nil {
			return webhook.Result{}, err
		}
		at, err := gitpush.CommitTime(i, commits[i].Timestamp)
		if err != nil {
			return webhook.Result{}, err
		}
		ev := event.Event{
			Kind:           event.ChangeCommitted,
			Source:         event.SourceGitHub,
			ID:             id,
			Time:           at,
			Repository:     repo,
			Revision:       rev,
			ParentRevision: parent,
			Paths:          ps.commits.Paths(maxPushFiles, i),
		}
		if msg := commits[i].Message; len(msg) > 0 {
			ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted(msg), '#', changeID)
		}
		res.Events = append(res.Events, ev)
		parent = rev
	}
	return res, nil
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}
