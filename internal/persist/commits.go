package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
)

// The pending commits are most of a large state (a million of them is
// about 80 MiB of JSON that took seconds to encode and decode), so snapshot
// version 2 stores them in this binary form after the JSON of the rest.
//
// Per commit, in the order of engine.State.Commits:
//
//	flags                 1 byte, commitHas*
//	revision, parent      uvarint length, bytes
//	time                  when flagged: varint, Unix nanoseconds minus the previous commit's
//	merged, opened        when flagged: varint, Unix nanoseconds minus time
//	reverts               when flagged: uvarint length, bytes
//	touches               when flagged: uvarint count, then uvarint each
//
// commitHotfix has no bytes of its own; snapshots written before it have
// the bit clear.
const (
	commitHasTime = 1 << iota
	commitHasMerged
	commitHasOpened
	commitHasReverts
	commitPathsKnown
	commitHasTouches
	commitHotfix
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendCommits encodes commits after b.
func appendCommits(b []byte, commits []engine.CommitState) []byte {
	var prev int64
	for _, c := range commits {
		var flags byte
		if !c.Time.IsZero() {
			flags |= commitHasTime
		}
		if !c.Merged.IsZero() {
			flags |= commitHasMerged
		}
		if !c.Opened.IsZero() {
			flags |= commitHasOpened
		}
		if c.Reverts != "" {
			flags |= commitHasReverts
		}
		if c.PathsKnown {
			flags |= commitPathsKnown
		}
		if len(c.Touches) > 0 {
			flags |= commitHasTouches
		}
		if c.Hotfix {
			flags |= commitHotfix
		}
		b = append(b, flags)
		b = appendString(b, c.Revision)
		b = appendString(b, c.Parent)
		var at int64
		if flags&commitHasTime != 0 {
			at = c.Time.UnixNano()
			b = binary.AppendVarint(b, at-prev)
			prev = at
		}
		if flags&commitHasMerged != 0 {
			b = binary.AppendVarint(b, c.Merged.UnixNano()-at)
		}
		if flags&commitHasOpened != 0 {
			b = binary.AppendVarint(b, c.Opened.UnixNano()-at)
		}
		if flags&commitHasReverts != 0 {
			b = appendString(b, c.Reverts)
		}
		if flags&commitHasTouches != 0 {
			b = binary.AppendUvarint(b, uint64(len(c.Touches)))
			for _, t := range c.Touches {
				b = binary.AppendUvarint(b, uint64(uint32(t)))
			}
		}
	}
	return b
}

var errTruncated = errors.New("truncated")

// commitReader decodes what appendCommits wrote.
type commitReader struct {
	b   []byte
	err error
}

func (r *commitReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *commitReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *commitReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errTruncated
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeCommits reads count commits, which must be all of b.
func decodeCommits(b []byte, count int) ([]engine.CommitState, error) {
	// Every commit takes at least 3 bytes: a bad count fails here, before
	// allocating.
	if count < 0 || count > len(b)/3 {
		return nil, fmt.Errorf("%d commits in %d bytes", count, len(b))
	}
	out := make([]engine.CommitState, count)
	r := commitReader{b: b}
	var prev int64
	for i := range out {
		c := &out[i]
		if len(r.b) == 0 {
			return nil, fmt.Errorf("commit %d of %d: %w", i, count, errTruncated)
		}
		flags := r.b[0]
		r.b = r.b[1:]
		c.Revision = r.string()
		c.Parent = r.string()
		var at int64
		if flags&commitHasTime != 0 {
			at = prev + r.varint()
			prev = at
			c.Time = unixNano(at)
		}
		if flags&commitHasMerged != 0 {
			c.Merged = unixNano(at + r.varint())
		}
		if flags&commitHasOpened != 0 {
			c.Opened = unixNano(at + r.varint())
		}
		if flags&commitHasReverts != 0 {
			c.Reverts = r.string()
		}
		c.PathsKnown = flags&commitPathsKnown != 0
		c.Hotfix = flags&commitHotfix != 0
		if flags&commitHasTouches != 0 {
			n := r.uvarint()
			if n > uint64(len(r.b)) {
				return nil, fmt.Errorf("commit %d (%s): %d path filters: %w", i, c.Revision, n, errTruncated)
			}
			c.Touches = make([]int32, n)
			for j := range c.Touches {
				t := r.uvarint()
				if t > math.MaxInt32 {
					return nil, fmt.Errorf("commit %d (%s): path filter %d out of range", i, c.Revision, t)
				}
				c.Touches[j] = int32(t)
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("commit %d of %d: %w", i, count, r.err)
		}
		if c.Revision == "" {
			return nil, fmt.Errorf("commit %d of %d: no revision", i, count)
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d bytes after the last of %d commits", len(r.b), count)
	}
	return out, nil
}

func unixNano(n int64) time.Time { return time.Unix(0, n).UTC() }
