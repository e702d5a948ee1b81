package github

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A push's commits carry the files each touched (added, removed, modified),
// which decide the services of a monorepo a commit belongs to.
func TestPushCarriesPaths(t *testing.T) {
	body := patched(t, "push.json", func(m map[string]any) {
		cs := m["commits"].([]any)
		c0 := cs[0].(map[string]any)
		c0["added"] = []any{"services/api/new.go"}
		c0["removed"] = []any{"services/web/old.ts"}
		c0["modified"] = []any{"services/api/main.go", "services/api/new.go"}
		// A commit listing no files (GitHub does so for some merge
		// commits): unknown, not "touched nothing".
		c1 := cs[1].(map[string]any)
		c1["added"], c1["removed"], c1["modified"] = []any{}, []any{}, []any{}
		// Without the keys at all: unknown too.
		c2 := cs[2].(map[string]any)
		delete(c2, "added")
		delete(c2, "removed")
		delete(c2, "modified")
	})
	res := parse(t, provider(), signed("push", body))
	require.Len(t, res.Events, 3)
	assert.Equal(t, []string{"services/api/new.go", "services/web/old.ts", "services/api/main.go"}, res.Events[0].Paths)
	assert.Nil(t, res.Events[1].Paths)
	assert.Nil(t, res.Events[2].Paths)
}

// GitHub lists at most 3000 files per commit: a list that long may be
// truncated, so the paths are unknown.
func TestPushPathsTruncated(t *testing.T) {
	body := patched(t, "push.json", func(m map[string]any) {
		c := m["commits"].([]any)[0].(map[string]any)
		files := make([]any, maxPushFiles)
		for i := range files {
			files[i] = fmt.Sprintf("gen/file%d.go", i)
		}
		c["added"], c["removed"], c["modified"] = files, []any{}, []any{}
	})
	res := parse(t, provider(), signed("push", body))
	require.Len(t, res.Events, 3)
	assert.Nil(t, res.Events[0].Paths)
}
