package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The ring buffer keeps the newest max commits in the order added, across
// growth and wrap-around, and forgets the oldest from the index too.
func TestCommitGraphRing(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, max := range []int{1, 3, 1500, 5000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			g := newCommitGraph(max)
			total := 3000
			for i := range total {
				c := g.add(fmt.Sprintf("c%d", i), fmt.Sprintf("c%d", i-1), t0.Add(time.Duration(i)*time.Second))
				require.Equal(t, fmt.Sprintf("c%d", i), c.rev)
			}
			kept := min(max, total)
			require.Equal(t, kept, g.len())
			require.Len(t, g.index, kept)
			for i := range kept {
				n := total - kept + i
				c := g.at(i)
				assert.Equal(t, fmt.Sprintf("c%d", n), c.rev)
				assert.Equal(t, t0.Add(time.Duration(n)*time.Second), c.time.time())
				assert.Same(t, c, g.get(c.rev))
			}
			assert.Nil(t, g.get(fmt.Sprintf("c%d", total-kept-1)), "the oldest beyond max is forgotten")
			// A second report fills in what the first lacked, without a new entry.
			c := g.add(fmt.Sprintf("c%d", total-1), "", time.Time{})
			assert.Equal(t, fmt.Sprintf("c%d", total-2), c.parent)
			assert.Equal(t, kept, g.len())
		})
	}
}

func TestInstantRoundTrip(t *testing.T) {
	assert.True(t, instantOf(time.Time{}).isZero())
	assert.True(t, instant(0).time().IsZero())
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.FixedZone("x", 3600))
	assert.True(t, at.Equal(instantOf(at).time()))
}

// Expiry drops the expired prefix of the dedup order without copying the
// window on every add.
func TestDedupExpiry(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := newDedup()
	for i := range 1000 {
		d.add("s", "", fmt.Sprint(i), t0.Add(time.Duration(i)*time.Minute), 100*time.Minute)
	}
	// Ids from minute 899 (cutoff 999-100) on are kept.
	assert.Len(t, d.ids, 101)
	assert.Len(t, d.live(), 101)
	assert.True(t, d.contains("s", "", "899"))
	assert.False(t, d.contains("s", "", "898"))
	assert.Equal(t, "899", d.live()[0].key.id)
	assert.LessOrEqual(t, len(d.order), 2*101+1, "the expired prefix is compacted")
}
