package bitbucket

import (
	"regexp"
	"strconv"
	"sync"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Pushes are the busiest deliveries and Bitbucket's are large (every
// commit carries its author, links and rendered summary), so they are read
// with jsonscan.Scanner in one pass, keeping only
//
//	{repository{full_name}, push{changes[{new{type, name}, commits[{hash, date, message, parents[{hash}]}]}]}}
//
// Bitbucket lists a change's commits newest first, at most 5 (truncated
// says there were more), each with its parents: the first parent links a
// commit to the one before it on the branch.

type pushCommit struct {
	hash, date, message, parent []byte
}

type pushChange struct {
	branch    bool // new.type is "branch" (not a tag)
	newIsNull bool // the branch was deleted
	from, to  int  // the change's commits in pushScratch.commits
}

type pushScratch struct {
	scan       jsonscan.Scanner
	repository string
	changes    []pushChange
	commits    []pushCommit
	text       []byte
}

var pushScratchPool = sync.Pool{New: func() any { return new(pushScratch) }}

func (ps *pushScratch) reset() {
	clear(ps.commits)
	clear(ps.changes)
	ps.changes, ps.commits, ps.text, ps.repository = ps.changes[:0], ps.commits[:0], ps.text[:0], ""
}

// release returns the scratch to the pool unless it grew large.
func (ps *pushScratch) release() {
	ps.reset()
	if cap(ps.commits) > 1024 || cap(ps.text) > 1<<20 {
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
			case s.KeyIs("repository"):
				if s.Object("repository") {
					for s.NextKey() {
						if s.KeyIs("full_name") {
							ps.repository = s.String("repository.full_name")
						} else {
							s.Skip()
						}
					}
				}
			case s.KeyIs("push"):
				if s.Object("push") {
					for s.NextKey() {
						if s.KeyIs("changes") {
							ps.decodeChanges(s)
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

func (ps *pushScratch) decodeChanges(s *jsonscan.Scanner) {
	if !s.Array("push.changes") {
		return
	}
	for s.NextElem() {
		ch := pushChange{from: len(ps.commits)}
		if s.Object("push.changes") {
			for s.NextKey() {
				switch {
				case s.KeyIs("new"):
					if s.Null() {
						ch.newIsNull = true
						continue
					}
					if s.Object("push.changes.new") {
						for s.NextKey() {
							switch {
							case s.KeyIs("type"):
								if v, ok := s.StringBytes("push.changes.new.type"); ok {
									ch.branch = string(v) == "branch"
								}
							default:
								s.Skip()
							}
						}
					}
				case s.KeyIs("commits"):
					ps.commits = ps.commits[:ch.from]
					ps.decodeCommits(s)
				default:
					s.Skip()
				}
			}
		}
		ch.to = len(ps.commits)
		ps.changes = append(ps.changes, ch)
	}
}

func (ps *pushScratch) decodeCommits(s *jsonscan.Scanner) {
	if !s.Array("push.changes.commits") {
		return
	}
	for s.NextElem() {
		var c pushCommit
		if s.Object("push.changes.commits") {
			for s.NextKey() {
				switch {
				case s.KeyIs("hash"):
					if v, ok := s.StringBytes("push.changes.commits.hash"); ok {
						c.hash = v
					}
				case s.KeyIs("date"):
					if v, ok := s.StringBytes("push.changes.commits.date"); ok {
						c.date = v
					}
				case s.KeyIs("message"):
					var v []byte
					var ok bool
					if ps.text, v, ok = s.AppendString(ps.text, "push.changes.commits.message"); ok {
						c.message = v
					}
				case s.KeyIs("parents"):
					c.parent = nil
					if s.Array("push.changes.commits.parents") {
						for s.NextElem() {
							if !s.Object("push.changes.commits.parents") {
								continue
							}
							for s.NextKey() {
								if s.KeyIs("hash") {
									if v, ok := s.StringBytes("push.changes.commits.parents.hash"); ok && c.parent == nil {
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
		}
		ps.commits = append(ps.commits, c)
	}
}

// mergeMessage is the message Bitbucket Cloud gives the commit that merges
// a pull request ("Merged in feature/x (pull request #12)"): the push that
// carries it tells the merge with the merge commit's full hash, which the
// pullrequest:fulfilled event abbreviates.
var mergeMessage = regexp.MustCompile(`(?m)^Merged in (\S+) \(pull request #([0-9]+)\)`)

// push yields one ChangeCommitted per commit pushed to a branch, oldest
// first, each linked to its first parent, and a ChangeMerged for each
// commit that merges a pull request.
func (p *Provider) push(d delivery) (webhook.Result, error) {
	ps := pushScratchPool.Get().(*pushScratch)
	defer ps.release()
	if err := ps.decode(d.body); err != nil {
		return webhook.Result{}, err
	}
	if len(ps.changes) == 0 {
		return webhook.Result{}, webhook.Required("push.changes", "")
	}
	repo := ps.repository
	if err := webhook.Required("repository.full_name", repo); err != nil {
		return webhook.Result{}, err
	}
	var res webhook.Result
	seen := map[string]struct{}{}
	for ci, ch := range ps.changes {
		if !ch.branch || ch.newIsNull {
			continue // a tag, or a deleted branch
		}
		for j := ch.to - 1; j >= ch.from; j-- {
			c := &ps.commits[j]
			field := "push.changes[" + strconv.Itoa(ci) + "].commits[" + strconv.Itoa(j-ch.from) + "]"
			if !gitpush.IsSHABytes(c.hash) {
				_, err := gitpush.CommitSHA(field+".hash", string(c.hash))
				return webhook.Result{}, err
			}
			rev := lower(c.hash)
			if _, dup := seen[rev]; dup {
				continue // the same commit listed under two branches
			}
			seen[rev] = struct{}{}
			if len(c.date) == 0 {
				return webhook.Result{}, webhook.Required(field+".date", "")
			}
			at, ok := gitpush.ParseRFC3339(c.date)
			if !ok || at.IsZero() {
				return webhook.Result{}, webhook.BadRequest("field %q: %q is not an RFC 3339 time", field+".date", c.date)
			}
			at = at.UTC()
			parent := ""
			if len(c.parent) > 0 {
				if !gitpush.IsSHABytes(c.parent) {
					return webhook.Result{}, webhook.BadRequest("field %q: %q is not a full commit SHA", field+".parents[0].hash", c.parent)
				}
				parent = lower(c.parent)
			}
			ev := event.Event{
				Kind:           event.ChangeCommitted,
				Source:         event.SourceBitbucket,
				ID:             d.id + "/" + rev,
				Time:           at,
				Repository:     repo,
				Revision:       rev,
				ParentRevision: parent,
			}
			if len(c.message) > 0 && p.signals.ReadsReverts() {
				ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted(c.message), '#', changeID)
			}
			res.Events = append(res.Events, ev)
			if m := mergeMessage.FindSubmatch(c.message); m != nil {
				n, err := strconv.ParseInt(string(m[2]), 10, 64)
				if err != nil || n <= 0 {
					continue
				}
				merged := ev
				merged.Kind = event.ChangeMerged
				merged.ID = ev.ID + "/merged"
				merged.ParentRevision = ""
				merged.ChangeID = changeID(repo, n)
				merged.Hotfix = p.signals.HotfixBranch(string(m[1]))
				res.Events = append(res.Events, merged)
			}
		}
	}
	if len(res.Events) == 0 {
		return webhook.Result{Ignored: "push without new commits on a branch"}, nil
	}
	return res, nil
}

// lower returns a SHA in lower case, as a new string.
func lower(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}
