package crdwatch

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRevisionsNext(t *testing.T) {
	var r Revisions
	step := func(hash string) string {
		changed, rollback := r.Next(hash)
		return fmt.Sprintf("%v %v %s", changed, rollback, r.Current)
	}
	assert.Equal(t, "false false ", step(""), "no hash yet")
	assert.Equal(t, "false false a", step("a"), "the first hash is the tracked revision's")
	assert.Equal(t, "false false a", step("a"))
	assert.Equal(t, "false false a", step(""), "an empty hash changes nothing")
	assert.Equal(t, "true false b", step("b"))
	assert.Equal(t, "true false c", step("c"))
	assert.Equal(t, "true true a", step("a"), "back to an earlier revision")

	// Clones do not share the earlier revisions.
	c := r.Clone()
	c.Next("d")
	_, rollback := r.Next("d")
	assert.False(t, rollback, "d went into the clone only")
}

func TestRevisionsRememberAtMostMaxRevisions(t *testing.T) {
	r := Revisions{Current: "h0"}
	for i := 1; i <= MaxRevisions+1; i++ {
		r.Next(fmt.Sprintf("h%d", i))
	}
	// h0 was pushed out by the MaxRevisions later ones.
	_, rollback := r.Next("h0")
	assert.False(t, rollback)
	_, rollback = r.Next("h2")
	assert.True(t, rollback)
}

func TestClamp(t *testing.T) {
	lo, now := time.Unix(100, 0), time.Unix(200, 0)
	assert.Equal(t, now, Clamp(time.Time{}, lo, now))
	assert.Equal(t, now, Clamp(time.Unix(300, 0), lo, now))
	assert.Equal(t, lo, Clamp(time.Unix(50, 0), lo, now))
	assert.Equal(t, time.Unix(150, 0), Clamp(time.Unix(150, 0), lo, now))
}
