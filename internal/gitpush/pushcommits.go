package gitpush

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
)

// PushCommits decodes the "commits" array of a push payload, which GitHub
// and GitLab write in the same shape:
//
//	[{"id": sha, "timestamp": time, "added": [path], "removed": [path], "modified": [path]}, ...]
//
// with a jsonscan.Scanner, keeping only those fields, as encoding/json would
// decode them into a slice of structs: a repeated "commits" key decodes
// into the commits already there, null empties the list. Decoders keep one
// in pooled scratch space: Reset keeps its slices for the next push.
type PushCommits struct {
	List  []PushCommit
	paths []string
	// Messages asks Decode for each commit's "message" too (revert
	// patterns read it); it stays set across Reset.
	Messages bool
	// text holds the unescaped messages.
	text []byte
}

// PushCommit is one listed commit. ID, Timestamp and Message point into
// the body (or into a copy when they had escapes) and are valid while it
// is.
type PushCommit struct {
	ID, Timestamp, Message   []byte
	added, removed, modified pathSpan
}

// pathSpan is a range of PushCommits.paths.
type pathSpan struct{ from, to int }

// Reset empties pc and drops the path strings it holds (they belong to
// events now).
func (pc *PushCommits) Reset() {
	clear(pc.paths)
	clear(pc.List)
	pc.List, pc.paths, pc.text = pc.List[:0], pc.paths[:0], pc.text[:0]
}

// Large reports whether pc grew too large to be worth keeping in a pool.
func (pc *PushCommits) Large() bool {
	return cap(pc.List) > 256 || cap(pc.paths) > 4096 || cap(pc.text) > 1<<20
}

// Decode reads the "commits" value at the scanner's position.
func (pc *PushCommits) Decode(s *jsonscan.Scanner) {
	if !s.Array("commits") {
		pc.List = pc.List[:0]
		return
	}
	n := 0
	for s.NextElem() {
		if n < len(pc.List) {
			n++
		} else {
			pc.List = append(pc.List, PushCommit{})
			n = len(pc.List)
		}
		c := &pc.List[n-1]
		if !s.Object("commits") {
			continue
		}
		for s.NextKey() {
			switch {
			case s.KeyIs("id"):
				if v, ok := s.StringBytes("commits.id"); ok {
					c.ID = v
				}
			case s.KeyIs("timestamp"):
				if v, ok := s.StringBytes("commits.timestamp"); ok {
					c.Timestamp = v
				}
			case pc.Messages && s.KeyIs("message"):
				var v []byte
				var ok bool
				if pc.text, v, ok = s.AppendString(pc.text, "commits.message"); ok {
					c.Message = v
				}
			case s.KeyIs("added"):
				c.added = pc.decodePaths(s, "commits.added")
			case s.KeyIs("removed"):
				c.removed = pc.decodePaths(s, "commits.removed")
			case s.KeyIs("modified"):
				c.modified = pc.decodePaths(s, "commits.modified")
			default:
				s.Skip()
			}
		}
	}
	pc.List = pc.List[:n]
}

func (pc *PushCommits) decodePaths(s *jsonscan.Scanner, field string) pathSpan {
	sp := pathSpan{from: len(pc.paths)}
	if s.Array(field) {
		for s.NextElem() {
			pc.paths = append(pc.paths, s.String(field))
		}
	}
	sp.to = len(pc.paths)
	return sp
}

// Paths is CommitPaths(limit, added, removed, modified) for commit i.
func (pc *PushCommits) Paths(limit, i int) []string {
	c := &pc.List[i]
	return CommitPaths(limit, pc.list(c.added), pc.list(c.removed), pc.list(c.modified))
}

func (pc *PushCommits) list(sp pathSpan) []string { return pc.paths[sp.from:sp.to] }

// CommitEventID checks commit i's SHA and returns prefix+sep+sha, the
// event ID, and the SHA in lower case, sharing one allocation.
func CommitEventID(prefix, sep string, i int, raw []byte) (id, rev string, err error) {
	if !IsSHABytes(raw) {
		_, err = CommitSHA(commitField(i, "id"), string(raw))
		return "", "", err
	}
	var b strings.Builder
	b.Grow(len(prefix) + len(sep) + len(raw))
	b.WriteString(prefix)
	b.WriteString(sep)
	for _, c := range raw {
		if 'A' <= c && c <= 'F' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	id = b.String()
	return id, id[len(prefix)+len(sep):], nil
}

func commitField(i int, name string) string {
	return "commits[" + strconv.Itoa(i) + "]." + name
}

// CommitTime parses commit i's RFC 3339 timestamp, into UTC, with the
// errors of the sources' parseTime.
func CommitTime(i int, raw []byte) (time.Time, error) {
	if len(raw) == 0 {
		return time.Time{}, fmt.Errorf("missing required field %q", commitField(i, "timestamp"))
	}
	t, ok := ParseRFC3339(raw)
	if !ok || t.IsZero() {
		return time.Time{}, fmt.Errorf("field %q: %q is not an RFC 3339 time", commitField(i, "timestamp"), raw)
	}
	return t.UTC(), nil
}
