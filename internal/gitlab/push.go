package gitlab

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Pushes are the busiest deliveries, so a hook that may carry one (Push
// Hook, System Hook) is read in one pass with jsonscan.Scanner: its
// object_kind and, in case it is a push, the push's fields
//
//	{object_kind, ref, before, after, commits[...], total_commits_count, project{path_with_namespace}}
//
// (commits' message only when revert_patterns is set)
//
// with the errors encoding/json gave when the envelope and then the push
// were decoded one after the other (push_test.go checks it against them).

// pushScratch is the decoded hook and the space it is decoded in.
type pushScratch struct {
	scan       jsonscan.Scanner
	objectKind []byte
	kindErr    error // object_kind of the wrong type
	ref        []byte
	before     []byte
	after      []byte
	commits    gitpush.PushCommits
	total      int
	project    string
}

var pushScratchPool = sync.Pool{New: func() any { return new(pushScratch) }}

func (ps *pushScratch) release() {
	ps.commits.Reset()
	if ps.commits.Large() {
		return
	}
	*ps = pushScratch{commits: ps.commits}
	pushScratchPool.Put(ps)
}

// decode reads body; it returns the syntax error, if any, and the first
// type error among the push's fields (object_kind's is kindErr).
func (ps *pushScratch) decode(body []byte) (syntaxErr, typeErr error) {
	ps.commits.Reset()
	*ps = pushScratch{commits: ps.commits}
	s := &ps.scan
	s.Reset(body)
	// A body that is not an object fails the envelope's decoding.
	if kind := s.ValueKind(); kind != "object" && kind != "null" && kind != "" {
		ps.kindErr = webhook.BadRequest("field %q: expected object, got JSON %s", "", kind)
		s.Skip()
	} else if s.Object("") {
		for s.NextKey() {
			switch {
			case s.KeyIs("object_kind"):
				switch kind := s.ValueKind(); kind {
				case "string", "null":
					if v, ok := s.StringBytes("object_kind"); ok {
						ps.objectKind = v
					}
				default:
					if ps.kindErr == nil && kind != "" {
						ps.kindErr = webhook.BadRequest("field %q: expected string, got JSON %s", "object_kind", kind)
					}
					s.Skip()
				}
			case s.KeyIs("ref"):
				if v, ok := s.StringBytes("ref"); ok {
					ps.ref = v
				}
			case s.KeyIs("before"):
				if v, ok := s.StringBytes("before"); ok {
					ps.before = v
				}
			case s.KeyIs("after"):
				if v, ok := s.StringBytes("after"); ok {
					ps.after = v
				}
			case s.KeyIs("commits"):
				ps.commits.Decode(s)
			case s.KeyIs("total_commits_count"):
				if !s.Null() {
					ps.total = s.Int("total_commits_count")
				}
			case s.KeyIs("project"):
				if s.Object("project") {
					for s.NextKey() {
						if s.KeyIs("path_with_namespace") {
							if v, ok := s.StringBytes("project.path_with_namespace"); ok {
								ps.project = string(v)
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
	if err := s.SyntaxErr(); err != nil {
		return err, nil
	}
	return nil, s.Err()
}

// push yields one ChangeCommitted per listed commit, oldest first, each
// linked to the one before it. GitLab lists at most the newest 20 commits
// of a push (total_commits_count has the real number): when it left some
// out, the oldest listed commit's parent is not known, so it is left empty
// rather than linked to the push's before.
func (p *Provider) push(ps *pushScratch) (webhook.Result, error) {
	ref := string(ps.ref)
	switch {
	case ref == "":
		return webhook.Result{}, webhook.Required("ref", ref)
	case !strings.HasPrefix(ref, "refs/heads/"):
		return webhook.Result{Ignored: "push to " + ref + ", which is not a branch"}, nil
	case gitpush.IsZeroSHABytes(ps.after):
		return webhook.Result{Ignored: "branch " + ref + " deleted"}, nil
	case len(ps.commits.List) == 0:
		return webhook.Result{Ignored: "push without new commits"}, nil
	}
	repo := ps.project
	if err := webhook.Required("project.path_with_namespace", repo); err != nil {
		return webhook.Result{}, err
	}
	after, err := gitpush.CommitSHA("after", string(ps.after))
	if err != nil {
		return webhook.Result{}, err
	}
	before := ""
	if len(ps.before) != 0 && !gitpush.IsZeroSHABytes(ps.before) {
		if before, err = gitpush.CommitSHA("before", string(ps.before)); err != nil {
			return webhook.Result{}, err
		}
	}
	commits := ps.commits.List
	parent := before
	if ps.total > len(commits) {
		parent = ""
	}
	// One push is identified by its project and before..after; each of its
	// commits by the push and the commit.
	pushKey := pushKey(repo, before, after)
	res := webhook.Result{Events: make([]event.Event, 0, len(commits))}
	for i := range commits {
		id, rev, err := gitpush.CommitEventID(pushKey, "", i, commits[i].ID)
		if err != nil {
			return webhook.Result{}, err
		}
		at, err := commitTime(i, commits[i].Timestamp)
		if err != nil {
			return webhook.Result{}, err
		}
		ev := event.Event{
			Kind:           event.ChangeCommitted,
			Source:         event.SourceGitLab,
			ID:             id,
			Time:           at,
			Repository:     repo,
			Revision:       rev,
			ParentRevision: parent,
			Paths:          ps.commits.Paths(0, i),
		}
		if msg := commits[i].Message; len(msg) > 0 {
			ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted(msg), '!', changeID)
		}
		res.Events = append(res.Events, ev)
		parent = rev
	}
	if ps.total > len(commits) && p.completer != nil && before != "" {
		j := pushJob{repo: repo, before: before, after: after, total: ps.total, listed: make([]string, len(res.Events))}
		for i := range res.Events {
			j.listed[i] = res.Events[i].Revision
		}
		p.completer.enqueue(j)
	}
	return res, nil
}

// commitTime is parseTime for a commit's timestamp, without allocating for
// the RFC 3339 times GitLab writes there.
func commitTime(i int, raw []byte) (time.Time, error) {
	if t, ok := gitpush.ParseRFC3339(raw); ok && !t.IsZero() {
		return t.UTC(), nil
	}
	return parseTime(fmt.Sprintf("commits[%d].timestamp", i), string(raw))
}

// pushKey prefixes the event IDs of a push's commits: the push is its
// project and before..after ("" for a created branch's before), each
// commit's ID is the key and its SHA. The push completion (pushcomplete.go)
// gives the commits the hook left out IDs of the same push.
func pushKey(repo, before, after string) string {
	return "gitlab/" + repo + "/push/" + before + ".." + after + "/"
}
