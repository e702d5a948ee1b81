package gitlab

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Push Hook's commits carry the files each touched (added, removed,
// modified), which decide the services of a monorepo a commit belongs to.
func TestPushCarriesPaths(t *testing.T) {
	body := patched(t, "push.json", func(m map[string]any) {
		cs := m["commits"].([]any)
		c0 := cs[0].(map[string]any)
		c0["added"] = []any{"services/api/new.go"}
		c0["removed"] = []any{"services/web/old.ts"}
		c0["modified"] = []any{"services/api/main.go"}
		c1 := cs[1].(map[string]any)
		c1["added"], c1["removed"], c1["modified"] = []any{}, []any{}, []any{}
	})
	res := parse(t, provider(), hooked("Push Hook", body))
	require.Len(t, res.Events, 2)
	assert.Equal(t, []string{"services/api/new.go", "services/web/old.ts", "services/api/main.go"}, res.Events[0].Paths)
	assert.Nil(t, res.Events[1].Paths, "no files listed: unknown, not \"touched nothing\"")
}
