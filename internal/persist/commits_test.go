package persist

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
)

func TestCommitsCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 2, 9, 0, 0, 123, time.UTC)
	commits := []engine.CommitState{
		{Revision: "a1", Time: at, Parent: "a0"},
		// Out of order: a negative delta.
		{Revision: "b1", Time: at.Add(-time.Hour), Parent: "a1", Merged: at.Add(time.Minute), Opened: at.Add(-2 * time.Hour)},
		// Known only from a merge: no commit time.
		{Revision: "m1", Merged: at.Add(3 * time.Hour), Opened: at},
		{Revision: "r1", Time: at.Add(4 * time.Hour), Reverts: "a1", PathsKnown: true, Touches: []int32{0, 2, 70000}},
		{Revision: "p1", Time: at.Add(5 * time.Hour), PathsKnown: true},
		// A hotfix merge commit.
		{Revision: "h1", Merged: at.Add(6 * time.Hour), Hotfix: true},
		{Revision: "ü-unicode/ß", Time: time.Unix(0, 1).UTC()},
	}
	b := appendCommits([]byte("head\n"), commits)
	got, err := decodeCommits(b[len("head\n"):], len(commits))
	require.NoError(t, err)
	assert.Equal(t, commits, got)

	none, err := decodeCommits(nil, 0)
	require.NoError(t, err)
	assert.Empty(t, none)
}

func TestCommitsCodecRefusesBadInput(t *testing.T) {
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	b := appendCommits(nil, []engine.CommitState{{Revision: "a1", Time: at, Parent: "a0"}, {Revision: "a2", Time: at, Parent: "a1", Reverts: "x"}})
	for name, tc := range map[string]struct {
		b     []byte
		count int
		want  string
	}{
		"truncated":      {b[:len(b)-2], 2, "commit 1 of 2: truncated"},
		"trailing bytes": {append(append([]byte{}, b...), 0), 2, "1 bytes after the last of 2 commits"},
		"count too big":  {b, 1000, "1000 commits in"},
		"fewer commits":  {b, 3, "commit 2 of 3: truncated"},
		"no revision":    {[]byte{0, 0, 0}, 1, "commit 0 of 1: no revision"},
		"negative count": {b, -1, "-1 commits"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeCommits(tc.b, tc.count)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
