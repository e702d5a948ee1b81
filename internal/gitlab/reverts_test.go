package gitlab

// Reverts and hotfixes. The payloads are the repository's real-shaped
// fixtures (testdata/push.json, merge_request_merged.json) with only the
// commit message, the merge request's title, description, labels or
// source branch changed: the texts are what git revert and GitLab's Revert
// button write (Commit#revert_message: `Revert "<title>"`, then "This
// reverts merge request !N" or "This reverts commit <sha>").

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func pushWithMessage(t *testing.T, msg string) []byte {
	return patched(t, "push.json", func(m map[string]any) {
		commits := m["commits"].([]any)
		commits[len(commits)-1].(map[string]any)["message"] = msg
	})
}

func TestPushRevertCommit(t *testing.T) {
	tests := map[string]struct {
		msg, reverts, revertsMR string
	}{
		"git revert":             {msg: "Revert \"Round invoice totals half-even\"\n\nThis reverts commit " + mergeSHA + ".\n", reverts: mergeSHA},
		"GitLab's commit revert": {msg: "Revert \"Round invoice totals half-even\"\n\nThis reverts commit " + mergeSHA, reverts: mergeSHA},
		"GitLab's MR revert":     {msg: "Revert \"Round invoice totals half-even\"\n\nThis reverts merge request !57", revertsMR: "gitlab/acme/platform/billing/merge_requests/57"},
		"MR of another project":  {msg: "This reverts merge request acme/platform/ledger!12", revertsMR: "gitlab/acme/platform/ledger/merge_requests/12"},
		"not a revert":           {msg: "Test half-even rounding\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := parse(t, provider(), hooked("Push Hook", pushWithMessage(t, tc.msg)))
			require.Len(t, res.Events, 2)
			assert.Equal(t, tc.reverts, res.Events[1].Reverts)
			assert.Equal(t, tc.revertsMR, res.Events[1].RevertsChange)
			assert.Empty(t, res.Events[0].Reverts+res.Events[0].RevertsChange)
		})
	}
	t.Run("revert_patterns empty: not read", func(t *testing.T) {
		p := provider(func(c *Config) { c.RevertPatterns = []string{} })
		res := parse(t, p, hooked("Push Hook", pushWithMessage(t, "This reverts commit "+mergeSHA)))
		assert.Empty(t, res.Events[1].Reverts)
	})
}

func TestMergeRequestRevertAndHotfix(t *testing.T) {
	revertMR := patched(t, "merge_request_merged.json", func(m map[string]any) {
		mr := obj(m, "object_attributes")
		mr["iid"] = 58
		mr["title"] = `Revert "Round invoice totals half-even"`
		mr["description"] = "This reverts merge request !57"
		mr["source_branch"] = "revert-9d6fcbe3"
		mr["merge_commit_sha"] = "5b0e6d1c2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d"
	})
	res := parse(t, provider(), hooked("Merge Request Hook", revertMR))
	require.Len(t, res.Events, 1)
	assert.Equal(t, "gitlab/acme/platform/billing/merge_requests/58", res.Events[0].ChangeID)
	assert.Equal(t, "gitlab/acme/platform/billing/merge_requests/57", res.Events[0].RevertsChange)

	// A label object as GitLab's merge request hook sends it.
	label := map[string]any{
		"id": 206, "title": "HotFix", "color": "#ffffff", "project_id": 14, "created_at": "2013-12-03T17:15:43Z",
		"updated_at": "2013-12-03T17:15:43Z", "template": false, "description": "Fixes production", "type": "ProjectLabel", "group_id": 41,
	}
	withLabel := patched(t, "merge_request_merged.json", func(m map[string]any) {
		obj(m, "object_attributes")["labels"] = []any{label}
		m["labels"] = []any{label}
	})
	fromBranch := patched(t, "merge_request_merged.json", func(m map[string]any) {
		obj(m, "object_attributes")["source_branch"] = "hotfix/rounding"
	})
	configured := provider(func(c *Config) {
		c.HotfixLabels = []string{"hotfix"}
		c.HotfixBranches = []string{"hotfix/*"}
	})
	assert.True(t, parse(t, configured, hooked("Merge Request Hook", withLabel)).Events[0].Hotfix)
	assert.True(t, parse(t, configured, hooked("Merge Request Hook", fromBranch)).Events[0].Hotfix)
	assert.False(t, parse(t, configured, hooked("Merge Request Hook", fixture(t, "merge_request_merged.json"))).Events[0].Hotfix)
	assert.False(t, parse(t, provider(), hooked("Merge Request Hook", withLabel)).Events[0].Hotfix, "off unless configured")
}

func TestChangeSignalsConfig(t *testing.T) {
	c := DefaultConfig()
	c.Secret = token
	c.RevertPatterns = []string{"x(", "no group"}
	c.HotfixBranches = []string{"["}
	err := c.Validate()
	assert.ErrorContains(t, err, `revert_patterns[0]: "x(" is not a valid regular expression`)
	assert.ErrorContains(t, err, `revert_patterns[1]: "no group" has no capture group`)
	assert.ErrorContains(t, err, `hotfix_branches[0]: "[" is not a valid pattern`)
}
