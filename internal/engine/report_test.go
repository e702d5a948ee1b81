package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// applyReport applies ev and returns the deployment report of its outcome.
func applyReport(t *testing.T, e *Engine, ev event.Event) *DeploymentReport {
	t.Helper()
	out, err := e.Apply(ev)
	require.NoError(t, err)
	return out.Deployment
}

// TestDefinition_Explain_ReportListsShippedCommits: the report of a production
// deployment lists exactly the commits it shipped for the first time, with
// the lead times and stage boundaries the metrics recorded.
func TestDefinition_Explain_ReportListsShippedCommits(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)

	first := applyReport(t, e, history(api))
	require.NotNil(t, first)
	assert.True(t, first.HistoryStart)
	assert.Equal(t, []ShippedCommit{{Revision: "history-api"}}, first.Commits, "a revision without a commit time has no lead time")

	// Two commits, then a merge commit of the change opened at 15m.
	for _, ev := range []event.Event{
		change("c1", "history-api", 0),
		change("c2", "c1", 10*time.Minute),
		opened("pr-1", 15*time.Minute),
		change("m1", "c2", 30*time.Minute),
		merged("m1", "pr-1", 30*time.Minute),
		started(api, "d1", "m1", 40*time.Minute),
	} {
		assert.Nil(t, applyReport(t, e, ev), "%s reports no deployment", ev.Kind)
	}
	r := applyReport(t, e, succeeded(api, "d1", "m1", time.Hour))
	require.NotNil(t, r)

	assert.Equal(t, api, r.Service)
	assert.Equal(t, "d1", r.DeploymentID)
	assert.Equal(t, "test", r.Source)
	assert.Equal(t, "m1", r.Revision)
	assert.Equal(t, at(40*time.Minute), r.Started)
	assert.Equal(t, at(40*time.Minute), r.BuildEnd)
	assert.Equal(t, at(time.Hour), r.Finished)
	assert.False(t, r.Failed || r.Rework || r.Rollback || r.Hotfix || r.HistoryStart)
	assert.Equal(t, []EventRef{
		{Source: "test", ID: "start/d1", Kind: event.DeploymentStarted},
		{Source: "test", ID: "ok/d1", Kind: event.DeploymentSucceeded},
	}, r.Events)

	bounds := func(committed time.Duration) StageBoundaries {
		return StageBoundaries{
			Committed:  at(committed),
			Opened:     at(max(committed, 15*time.Minute)),
			Merged:     at(30 * time.Minute),
			BuildEnd:   at(40 * time.Minute),
			Production: at(time.Hour),
		}
	}
	want := []ShippedCommit{
		{Revision: "m1", CommitTime: at(30 * time.Minute), Recorded: true, LeadTime: 30 * time.Minute, Stages: bounds(30 * time.Minute)},
		{Revision: "c2", CommitTime: at(10 * time.Minute), Recorded: true, LeadTime: 50 * time.Minute, Stages: bounds(10 * time.Minute)},
		{Revision: "c1", CommitTime: at(0), Recorded: true, LeadTime: time.Hour, Stages: bounds(0)},
	}
	assert.Equal(t, want, r.Commits)
	assert.Equal(t, []time.Duration{30 * time.Minute, 50 * time.Minute, time.Hour}, r.LeadTimes())
	require.NotNil(t, r.Oldest())
	assert.Equal(t, "c1", r.Oldest().Revision)
	assert.Equal(t, []Stage{
		{StageCoding, at(0), at(15 * time.Minute)},
		{StageReview, at(15 * time.Minute), at(30 * time.Minute)},
		{StageBuild, at(30 * time.Minute), at(40 * time.Minute)},
		{StageDeploy, at(40 * time.Minute), at(time.Hour)},
	}, r.Oldest().Stages.Stages())

	// The report holds the numbers of the metrics, not others.
	snap := e.Snapshot()
	assert.Equal(t, map[string][2]float64{"api": {(30 + 50 + 60) * 60, 3}}, observations(snap.LeadTime))

	t.Run("a redelivery reports nothing", func(t *testing.T) {
		assert.Nil(t, applyReport(t, e, succeeded(api, "d1", "m1", time.Hour)))
	})
	t.Run("a redeployment ships no commit", func(t *testing.T) {
		r := applyReport(t, e, succeeded(api, "d2", "m1", 2*time.Hour))
		require.NotNil(t, r)
		assert.Empty(t, r.Commits)
	})
	t.Run("dropped lead times are listed with their reason", func(t *testing.T) {
		r := applyReport(t, e, withCommitTime(succeeded(api, "d3", "c9", 3*time.Hour), 3*time.Hour+time.Second))
		require.NotNil(t, r)
		assert.Equal(t, []ShippedCommit{{Revision: "c9", CommitTime: at(3*time.Hour + time.Second), Dropped: DropClockSkew}}, r.Commits)
		assert.Nil(t, r.Oldest())
	})
	t.Run("a failed rollout is reported failed, with its reason", func(t *testing.T) {
		assert.Nil(t, applyReport(t, e, started(api, "d4", "c10", 4*time.Hour)))
		r := applyReport(t, e, failed(api, "d4", "ProgressDeadlineExceeded", 5*time.Hour))
		require.NotNil(t, r)
		assert.True(t, r.Failed)
		assert.Equal(t, "ProgressDeadlineExceeded", r.Reason)
		assert.Equal(t, at(4*time.Hour), r.Started)
		assert.Equal(t, at(5*time.Hour), r.Finished)
		assert.Empty(t, r.Commits)
		// Failed again: the outcome was reported already.
		assert.Nil(t, applyReport(t, e, withID(failed(api, "d4", "", 5*time.Hour+time.Minute), "again")))
	})
	t.Run("a rollback is rework and records no lead time", func(t *testing.T) {
		assert.Nil(t, applyReport(t, e, rolledBack(api, "d5", "d3", 6*time.Hour)))
		r := applyReport(t, e, withCommitTime(succeeded(api, "d5", "c0", 6*time.Hour+time.Minute), time.Hour))
		require.NotNil(t, r)
		assert.True(t, r.Rollback)
		assert.True(t, r.Rework)
		assert.Equal(t, []ShippedCommit{{Revision: "c0", CommitTime: at(time.Hour)}}, r.Commits)
	})
	t.Run("outside production nothing is reported", func(t *testing.T) {
		assert.Nil(t, applyReport(t, e, succeeded(staging, "s1", "m1", 7*time.Hour)))
		assert.Nil(t, applyReport(t, e, failed(staging, "s2", "", 7*time.Hour)))
	})
}
