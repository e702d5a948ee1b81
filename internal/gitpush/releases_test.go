package gitpush

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMatchRelease(t *testing.T) {
	rs := []ReleaseDeployment{
		{Repository: "acme/cli", Trigger: TriggerTag, Tags: "v*", Environment: "prod"},
		{Repository: "Acme/*"},
	}
	r, ok := MatchRelease(rs, TriggerTag, "acme/cli", "v1.2.0")
	assert.True(t, ok)
	assert.Equal(t, "prod", r.Environment)
	_, ok = MatchRelease(rs, TriggerTag, "acme/cli", "nightly")
	assert.False(t, ok, "the tag pattern")
	_, ok = MatchRelease(rs, TriggerTag, "acme/api", "v1")
	assert.False(t, ok, "acme/* has the default trigger, release")
	r, ok = MatchRelease(rs, TriggerRelease, "ACME/api", "anything")
	assert.True(t, ok, "repositories match without case; no tags: every tag")
	assert.Equal(t, "production", r.Environment, "the default environment")
	assert.Equal(t, TriggerRelease, r.Trigger)
}

func TestTagMemoryIsBounded(t *testing.T) {
	m := NewTagMemory(3)
	for i := range 5 {
		m.Remember("acme/api", fmt.Sprintf("v%d", i), fmt.Sprintf("sha%d", i))
	}
	assert.Empty(t, m.Commit("acme/api", "v0"), "the oldest are forgotten")
	assert.Empty(t, m.Commit("acme/api", "v1"))
	assert.Equal(t, "sha4", m.Commit("ACME/api", "v4"))
	m.Remember("acme/api", "v4", "again") // an update takes no more room
	assert.Equal(t, "sha2", m.Commit("acme/api", "v2"))
	assert.Len(t, m.shas, 3)
}
