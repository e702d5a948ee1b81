package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Reverts and hotfixes as the Git host sources report them: a revert that
// names the pull request it reverts (RevertsChange), and a hotfix marked on
// the merged change (Hotfix on a ChangeMerged event), not on a deployment.

func revertingChange(ev event.Event, changeID string) event.Event {
	ev.RevertsChange = changeID
	return ev
}

func TestDefinition_ChangeFailure_RevertOfAChange(t *testing.T) {
	// c1 is merged as pull request 1 (a squash merge: the merge commit is
	// c1) and shipped by d1 at 10m.
	base := []event.Event{
		history(api),
		change("c1", "history-api", 0),
		merged("c1", "github/acme/api/pull/1", 5*time.Minute),
		succeeded(api, "d1", "c1", 10*time.Minute),
	}
	// r1, pushed at 30m, is merged as pull request 2, which reverts 1.
	revertPR := revertingChange(merged("r1", "github/acme/api/pull/2", 35*time.Minute), "github/acme/api/pull/1")
	runDefinitions(t, []definitionCase{
		{
			name:   "a merged revert of a known pull request fails the deployment that shipped its merge commit",
			events: append(append([]event.Event{}, base...), change("r1", "c1", 30*time.Minute), revertPR, succeeded(api, "d2", "r1", 40*time.Minute)),
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				failures:    map[string]uint64{"api revert": 1},
				rework:      map[string]uint64{"api ": 1},
				// c1: 0 to 10m; r1: 30m to 40m.
				leadTime: map[string][2]float64{"api": {600 + 600, 2}},
				// d1's finish (10m) to the revert in production (40m).
				recovery: map[string][2]float64{"api": {1800, 1}},
			},
		},
		{
			name: "a pushed commit can name the reverted change too",
			events: append(append([]event.Event{}, base...),
				revertingChange(change("r1", "c1", 30*time.Minute), "github/acme/api/pull/1"), succeeded(api, "d2", "r1", 40*time.Minute)),
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				failures:    map[string]uint64{"api revert": 1},
				rework:      map[string]uint64{"api ": 1},
				leadTime:    map[string][2]float64{"api": {600 + 600, 2}},
				recovery:    map[string][2]float64{"api": {1800, 1}},
			},
		},
		{
			name: "a revert of a change whose merge the engine never saw fails nothing",
			events: append(append([]event.Event{}, base...), change("r1", "c1", 30*time.Minute),
				revertingChange(merged("r1", "github/acme/api/pull/2", 35*time.Minute), "github/acme/api/pull/9"), succeeded(api, "d2", "r1", 40*time.Minute)),
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				leadTime:    map[string][2]float64{"api": {600 + 600, 2}},
			},
		},
	})
}

func TestDefinition_ChangeFailure_HotfixChange(t *testing.T) {
	// h1, pushed at 30m, is merged at 35m as a hotfix pull request and
	// shipped by d2 at 40m.
	hotfix := []event.Event{
		history(api),
		change("c1", "history-api", 0),
		succeeded(api, "d1", "c1", 10*time.Minute),
		change("h1", "c1", 30*time.Minute),
		asHotfix(merged("h1", "github/acme/api/pull/2", 35*time.Minute)),
		succeeded(api, "d2", "h1", 40*time.Minute),
	}
	runDefinitions(t, []definitionCase{
		{
			name:   "the deployment that ships a hotfix change is a hotfix: the deployment it follows fails",
			events: hotfix,
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				failures:    map[string]uint64{"api hotfix": 1},
				rework:      map[string]uint64{"api ": 1},
				leadTime:    map[string][2]float64{"api": {600 + 600, 2}},
				// d1's finish (10m) to the hotfix in production (40m).
				recovery: map[string][2]float64{"api": {1800, 1}},
			},
		},
		{
			name:   "with hotfix_signals without flag, a hotfix change is a plain change",
			cfg:    func(c *Config) { c.Hotfix.Flag = false },
			events: hotfix,
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				leadTime:    map[string][2]float64{"api": {600 + 600, 2}},
			},
		},
	})
}

// TestHotfixChangeSurvivesRestore: the hotfix mark of a commit not yet
// shipped is part of the saved state.
func TestHotfixChangeSurvivesRestore(t *testing.T) {
	cfg := DefaultConfig()
	before := []event.Event{
		history(api),
		change("c1", "history-api", 0),
		succeeded(api, "d1", "c1", 10*time.Minute),
		change("h1", "c1", 30*time.Minute),
		asHotfix(merged("h1", "github/acme/api/pull/2", 35*time.Minute)),
	}
	ship := succeeded(api, "d2", "h1", 40*time.Minute)
	ref := apply(t, cfg, append(before, ship)...)
	r := restore(t, cfg, encode(t, apply(t, cfg, before...)))
	_, err := r.Apply(ship)
	assert.NoError(t, err)
	assert.Equal(t, ref.Snapshot(), r.Snapshot())
	assert.Equal(t, uint64(1), counters(r.Snapshot().Failures)["api hotfix"])
}
