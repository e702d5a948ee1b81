package github

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Pushes are the busiest deliveries (a monorepo push storm), so they are
// read with webhook.JSONScanner: one pass over the body, only the fields
// below are kept, and the scratch space is pooled. The result is what
// encoding/json would have decoded into
//
//	{ref, before, deleted, commits[{id, timestamp, added, removed, modified}], repository{full_name}}
//
// with the same errors (push_test.go checks it against encoding/json).

// pushCommit is one listed commit. id and timestamp point into the body
// (or a copy when they had escapes) and are valid during the parse; the
// file lists are ranges of pushScratch.paths.
type pushCommit struct {
	id, timestamp            []byte
	added, removed, modified span
}

type span struct{ from, to int }

// pushScratch is the decoded push and the space it is decoded in.
type pushScratch struct {
	scan       webhook.JSONScanner
	ref        []byte
	before     []byte
	deleted    bool
	commits    []pushCommit
	paths      []string
	repository string
}

var pushScratchPool = sync.Pool{New: func() any { return new(pushScratch) }}

// release returns the scratch to the pool, dropping the strings it holds
// (they belong to events now) and any large slice.
func (ps *pushScratch) release() {
	clear(ps.paths)
	if cap(ps.commits) > 256 || cap(ps.paths) > 4096 {
		return
	}
	ps.commits, ps.paths = ps.commits[:0], ps.paths[:0]
	ps.ref, ps.before, ps.repository = nil, nil, ""
	ps.scan = webhook.JSONScanner{}
	pushScratchPool.Put(ps)
}

func (ps *pushScratch) decode(body []byte) error {
	ps.ref, ps.before, ps.deleted, ps.repository = nil, nil, false, ""
	ps.commits, ps.paths = ps.commits[:0], ps.paths[:0]
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
				ps.decodeCommits()
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

// decodeCommits reads the commits array. Like encoding/json, a repeated
// key decodes into the commits already there and null empties the list.
func (ps *pushScratch) decodeCommits() {
	s := &ps.scan
	if !s.Array("commits") {
		ps.commits = ps.commits[:0]
		return
	}
	n := 0
	for s.NextElem() {
		if n < len(ps.commits) {
			n++
		} else {
			ps.commits = append(ps.commits, pushCommit{})
			n = len(ps.commits)
		}
		c := &ps.commits[n-1]
		if !s.Object("commits") {
			continue
		}
		for s.NextKey() {
			switch {
			case s.KeyIs("id"):
				if v, ok := s.StringBytes("commits.id"); ok {
					c.id = v
				}
			case s.KeyIs("timestamp"):
				if v, ok := s.StringBytes("commits.timestamp"); ok {
					c.timestamp = v
				}
			case s.KeyIs("added"):
				c.added = ps.decodePaths("commits.added")
			case s.KeyIs("removed"):
				c.removed = ps.decodePaths("commits.removed")
			case s.KeyIs("modified"):
				c.modified = ps.decodePaths("commits.modified")
			default:
				s.Skip()
			}
		}
	}
	ps.commits = ps.commits[:n]
}

func (ps *pushScratch) decodePaths(field string) span {
	s := &ps.scan
	sp := span{from: len(ps.paths)}
	if s.Array(field) {
		for s.NextElem() {
			ps.paths = append(ps.paths, s.String(field))
		}
	}
	sp.to = len(ps.paths)
	return sp
}

func (ps *pushScratch) list(sp span) []string { return ps.paths[sp.from:sp.to] }

// push yields one ChangeCommitted per pushed commit, oldest first, each
// linked to the one before it; the first is linked to the push's before.
func (p *Provider) push(d delivery) (webhook.Result, error) {
	ps := pushScratchPool.Get().(*pushScratch)
	defer ps.release()
	if err := ps.decode(d.body); err != nil {
		return webhook.Result{}, err
	}
	ref := ps.ref
	switch {
	case hasPrefix(ref, "refs/tags/"):
		return webhook.Result{Ignored: "push of a tag (" + string(ref) + ")"}, nil
	case !hasPrefix(ref, "refs/heads/"):
		if len(ref) == 0 {
			return webhook.Result{}, webhook.Required("ref", "")
		}
		return webhook.Result{Ignored: "push to " + string(ref) + ", which is not a branch"}, nil
	case ps.deleted:
		return webhook.Result{Ignored: "branch " + string(ref) + " deleted"}, nil
	case len(ps.commits) == 0:
		return webhook.Result{Ignored: "push without new commits"}, nil
	}
	repo := ps.repository
	if err := webhook.Required("repository.full_name", repo); err != nil {
		return webhook.Result{}, err
	}
	parent := ""
	if len(ps.before) != 0 && !webhook.IsZeroSHA(string(ps.before)) {
		var err error
		if parent, err = webhook.CommitSHA("before", string(ps.before)); err != nil {
			return webhook.Result{}, err
		}
	}
	res := webhook.Result{Events: make([]event.Event, 0, len(ps.commits))}
	for i := range ps.commits {
		c := &ps.commits[i]
		id, rev, err := commitID(d.id, i, c.id)
		if err != nil {
			return webhook.Result{}, err
		}
		at, err := commitTime(i, c.timestamp)
		if err != nil {
			return webhook.Result{}, err
		}
		res.Events = append(res.Events, event.Event{
			Kind:           event.ChangeCommitted,
			Source:         event.SourceGitHub,
			ID:             id,
			Time:           at,
			Repository:     repo,
			Revision:       rev,
			ParentRevision: parent,
			Paths:          webhook.CommitPaths(maxPushFiles, ps.list(c.added), ps.list(c.removed), ps.list(c.modified)),
		})
		parent = rev
	}
	return res, nil
}

// commitID checks a commit's SHA and returns the event ID (delivery/sha)
// and the SHA in lower case, sharing one allocation.
func commitID(delivery string, i int, raw []byte) (id, rev string, err error) {
	if !webhook.IsSHA(string(raw)) { // no allocation: the conversion does not escape
		_, err = webhook.CommitSHA("commits["+strconv.Itoa(i)+"].id", string(raw))
		return "", "", err
	}
	var b strings.Builder
	b.Grow(len(delivery) + 1 + len(raw))
	b.WriteString(delivery)
	b.WriteByte('/')
	for _, c := range raw {
		if 'A' <= c && c <= 'F' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	id = b.String()
	return id, id[len(delivery)+1:], nil
}

func commitTime(i int, raw []byte) (time.Time, error) {
	if len(raw) == 0 {
		return time.Time{}, webhook.Required("commits["+strconv.Itoa(i)+"].timestamp", "")
	}
	t, ok := webhook.ParseRFC3339(raw)
	if !ok || t.IsZero() {
		return time.Time{}, webhook.BadRequest("field %q: %q is not an RFC 3339 time", "commits["+strconv.Itoa(i)+"].timestamp", raw)
	}
	return t.UTC(), nil
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}
