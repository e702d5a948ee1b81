package gitpush

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCommitPaths(t *testing.T) {
	assert.Equal(t, []string{"a.go", "b.go", "c.go"}, CommitPaths(0, []string{"a.go"}, []string{"b.go", ""}, []string{"c.go", "a.go"}))
	assert.Nil(t, CommitPaths(0), "no lists: unknown")
	assert.Nil(t, CommitPaths(0, nil, []string{}, []string{""}), "empty lists: unknown, not nothing")
	assert.Nil(t, CommitPaths(3, []string{"a", "b"}, []string{"c"}), "at the host's limit the list may be truncated: unknown")
	assert.Len(t, CommitPaths(3, []string{"a", "b"}), 2)
}
