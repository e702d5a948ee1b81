package github

// Reverts and hotfixes. The payloads are the repository's real-shaped
// fixtures (testdata/push.json, pull_request_merged.json) with only the
// commit message, the pull request's title, body, labels or head branch
// changed: the texts are what git revert and GitHub's Revert button write.

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// revertedSHA is the merge commit of pull request 1287 in the fixtures.
const revertedSHA = "14091a9f2461267ee7e02525b4f1f2923f1c9849"

// pushWithMessage is testdata/push.json with the last commit's message
// replaced.
func pushWithMessage(t *testing.T, msg string) []byte {
	return patched(t, "push.json", func(m map[string]any) {
		commits := m["commits"].([]any)
		commits[len(commits)-1].(map[string]any)["message"] = msg
	})
}

func TestPushRevertCommit(t *testing.T) {
	tests := map[string]struct {
		msg         string
		reverts     string
		revertsPR   string
		withDefault bool
	}{
		// git revert <sha>
		"git revert": {msg: "Revert \"Order export endpoint\"\n\nThis reverts commit " + revertedSHA + ".\n", reverts: revertedSHA},
		// git revert -m 1 <merge>: upper case is lowered like every SHA.
		"git revert of a merge": {msg: "Revert \"Merge pull request #1287 from acme/order-export\"\n\nThis reverts commit 14091A9F2461267EE7E02525B4F1F2923F1C9849, reversing\nchanges made to 51de2b835bd35a67eb32dbcd3d77d4b96e5aa39d.\n", reverts: revertedSHA},
		// A squash merge of a revert pull request keeps GitHub's body.
		"squashed revert pull request": {msg: "Revert \"Order export endpoint\" (#1290)\n\nReverts acme/api#1287", revertsPR: "github/acme/api/pull/1287"},
		"not a revert":                 {msg: "Revert the export rounding tweak by hand"},
		"abbreviated SHA":              {msg: "This reverts commit 14091a9."},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := parse(t, provider(), signed("push", pushWithMessage(t, tc.msg)))
			require.Len(t, res.Events, 3)
			last := res.Events[2]
			assert.Equal(t, tc.reverts, last.Reverts)
			assert.Equal(t, tc.revertsPR, last.RevertsChange)
			for _, ev := range res.Events[:2] {
				assert.Empty(t, ev.Reverts+ev.RevertsChange, "only the revert commit reverts")
			}
		})
	}

	t.Run("revert_patterns empty: not read", func(t *testing.T) {
		p := provider(func(c *Config) { c.RevertPatterns = nil })
		res := parse(t, p, signed("push", pushWithMessage(t, "Revert\n\nThis reverts commit "+revertedSHA+".")))
		assert.Empty(t, res.Events[2].Reverts)
	})
	t.Run("custom pattern", func(t *testing.T) {
		p := provider(func(c *Config) { c.RevertPatterns = []string{`(?m)^Reverts-Commit: ([0-9a-f]+)$`} })
		res := parse(t, p, signed("push", pushWithMessage(t, "Back out the export\n\nReverts-Commit: "+revertedSHA)))
		assert.Equal(t, revertedSHA, res.Events[2].Reverts)
	})
}

// revertPR is testdata/pull_request_merged.json turned into the pull
// request GitHub's Revert button opens for #1287, merged as #1290.
func revertPR(t *testing.T, edit func(pr map[string]any)) []byte {
	return patched(t, "pull_request_merged.json", func(m map[string]any) {
		m["number"] = 1290
		pr := obj(m, "pull_request")
		pr["number"] = 1290
		pr["title"] = `Revert "Order export endpoint"`
		pr["body"] = "Reverts acme/api#1287"
		pr["merge_commit_sha"] = "9c3e7b1a6f0d4e2b8a5c7d9e1f3a5b7c9d1e3f5a"
		obj(pr, "head")["ref"] = "revert-1287-order-export"
		if edit != nil {
			edit(pr)
		}
	})
}

func TestPullRequestRevert(t *testing.T) {
	res := parse(t, provider(), signed("pull_request", revertPR(t, nil)))
	require.Len(t, res.Events, 1)
	ev := res.Events[0]
	assert.Equal(t, "github/acme/api/pull/1290", ev.ChangeID)
	assert.Equal(t, "github/acme/api/pull/1287", ev.RevertsChange)
	assert.Empty(t, ev.Reverts)
	assert.False(t, ev.Hotfix)

	t.Run("title without GitHub's body names nothing", func(t *testing.T) {
		res := parse(t, provider(), signed("pull_request", revertPR(t, func(pr map[string]any) { pr["body"] = nil })))
		assert.Empty(t, res.Events[0].RevertsChange)
	})
	t.Run("body without the revert title", func(t *testing.T) {
		res := parse(t, provider(), signed("pull_request", revertPR(t, func(pr map[string]any) { pr["title"] = "Export clean-up" })))
		assert.Empty(t, res.Events[0].RevertsChange)
	})
	t.Run("short reference", func(t *testing.T) {
		res := parse(t, provider(), signed("pull_request", revertPR(t, func(pr map[string]any) { pr["body"] = "Reverts #1287\n\nThe export times out." })))
		assert.Equal(t, "github/acme/api/pull/1287", res.Events[0].RevertsChange)
	})
}

func TestPullRequestHotfix(t *testing.T) {
	// A label object as GitHub sends it.
	hotfixLabel := map[string]any{
		"id": 208045946, "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=", "url": "https://api.github.com/repos/acme/api/labels/Hotfix",
		"name": "Hotfix", "description": "Fixes production", "color": "f29513", "default": false,
	}
	withLabel := patched(t, "pull_request_merged.json", func(m map[string]any) {
		obj(m, "pull_request")["labels"] = []any{hotfixLabel}
	})
	fromBranch := patched(t, "pull_request_merged.json", func(m map[string]any) {
		obj(obj(m, "pull_request"), "head")["ref"] = "hotfix/export-timeout"
	})
	plain := fixture(t, "pull_request_merged.json")

	configured := provider(func(c *Config) {
		c.HotfixLabels = []string{"hotfix"}
		c.HotfixBranches = []string{"hotfix/*"}
	})
	assert.True(t, parse(t, configured, signed("pull_request", withLabel)).Events[0].Hotfix, "label, case-insensitive")
	assert.True(t, parse(t, configured, signed("pull_request", fromBranch)).Events[0].Hotfix, "branch pattern")
	assert.False(t, parse(t, configured, signed("pull_request", plain)).Events[0].Hotfix)
	// Off unless configured.
	assert.False(t, parse(t, provider(), signed("pull_request", withLabel)).Events[0].Hotfix)
	assert.False(t, parse(t, provider(), signed("pull_request", fromBranch)).Events[0].Hotfix)
}

func TestChangeSignalsConfig(t *testing.T) {
	assert.Equal(t, []string{`This reverts commit ([0-9a-fA-F]{40,64})`, pullRequestRevertPattern}, DefaultConfig().RevertPatterns)
	tests := map[string]func(*Config){
		`revert_patterns[1]: "(" is not a valid regular expression`: func(c *Config) { c.RevertPatterns = []string{"ok (x)", "("} },
		`revert_patterns[0]: "Reverts" has no capture group`:        func(c *Config) { c.RevertPatterns = []string{"Reverts"} },
		"revert_patterns[0]: empty pattern":                         func(c *Config) { c.RevertPatterns = []string{""} },
		"hotfix_labels[0]: empty label":                             func(c *Config) { c.HotfixLabels = []string{" "} },
		`hotfix_branches[1]: "hotfix/[" is not a valid pattern`:     func(c *Config) { c.HotfixBranches = []string{"hotfix/*", "hotfix/["} },
	}
	for want, edit := range tests {
		t.Run(want, func(t *testing.T) {
			c := DefaultConfig()
			c.Secret = secret
			edit(&c)
			assert.ErrorContains(t, c.Validate(), want)
		})
	}
}
