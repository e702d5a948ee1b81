package engine

import (
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// maxLeadTimeWalk bounds how many commits one deployment attributes.
const maxLeadTimeWalk = 1000

// ship handles what a successful production deployment ships: every commit
// it deploys for the first time to this service, that is the deployed
// revision and its ancestors (from push events) back to the last commit the
// service already shipped. For each it records the lead time, once per
// commit and service, with its stages; or counts why not. A commit that
// reverts one an earlier deployment shipped fails that deployment. In a
// monorepo, only the commits that belong to the service (Engine.belongs)
// count; the others are walked through.
//
// A commit whose push or merge the engine received (it is in the commit
// graph) is new to production whenever it is first shipped, by the
// service's first deployment too. A commit known only from the deployment
// (its CommitTime) and committed before the service's history started
// (serviceState.historyStart) may have run in production before the
// engine watched: it gets no lead time (before_history), which keeps
// months-old commits from poisoning the first deployment.
func (e *Engine) ship(ev event.Event, s *serviceState, d *deploymentState) {
	s.historyStarted = true
	// The build ends when the deployment starts: the CI run's end, when a
	// deployment start was reported; unknown otherwise.
	buildEnd := d.startSeen
	// change is the merge commit (with its change's times) the commits
	// walked so far belong to: a merged change's commits come right after
	// its merge commit on the branch.
	var change *commit
	rev := ev.Revision
	for i := 0; rev != "" && i < maxLeadTimeWalk && !s.revisionDeployed(rev); i++ {
		s.markRevisionDeployed(rev, d.id)
		c := e.pendingCommit(rev)
		if !e.belongs(ev.Service, c) {
			// Monorepo: the commit touched none of the service's paths, so
			// it is not a change of this service. It is walked through (and
			// marked shipped) but neither recorded nor dropped; a merge
			// commit still gives its change's times to the commits below.
			if !c.merged().isZero() {
				change = c
			}
			if rev == ev.Revision && ev.Reverts != "" {
				e.reverted(ev, s, d, ev.Reverts)
			}
			rev = c.parent
			continue
		}
		var committed time.Time
		var reverts string
		if c != nil {
			committed, reverts = c.time.time(), c.reverts()
			if !c.merged().isZero() {
				change = c
			}
		}
		if rev == ev.Revision {
			if committed.IsZero() {
				committed = ev.CommitTime
			}
			if reverts == "" {
				reverts = ev.Reverts
			}
		}
		if reverts != "" {
			e.reverted(ev, s, d, reverts)
		}
		if c != nil && c.hotfix() {
			e.hotfixed(ev, s, d)
		}
		// A rollback deploys code that ran in production before: no lead
		// time. A commit without a known time has none either.
		shipped := ShippedCommit{Revision: rev, CommitTime: committed}
		if !committed.IsZero() && !d.rollback {
			beforeHistory := c == nil && committed.Before(s.historyStart)
			shipped.Dropped, shipped.Stages = e.recordLeadTime(ev, s, committed, change, buildEnd, beforeHistory)
			if shipped.Dropped == "" {
				shipped.Recorded, shipped.LeadTime = true, ev.Time.Sub(committed)
			}
		}
		e.report.addCommit(shipped)
		if c == nil {
			break
		}
		rev = c.parent
	}
}

// recordLeadTime records the lead time of one commit deployed at ev.Time, or
// counts why it is dropped. It returns the reason it was dropped ("" when
// recorded) and the stage boundaries it recorded.
func (e *Engine) recordLeadTime(ev event.Event, s *serviceState, committed time.Time, change *commit, buildEnd time.Time, beforeHistory bool) (string, StageBoundaries) {
	lt := ev.Time.Sub(committed)
	drop := ""
	switch {
	case beforeHistory:
		drop = DropBeforeHistory
	case lt < 0:
		// A commit time after the deployment is clock skew between the
		// committer and the deployer.
		drop = DropClockSkew
	case lt > e.cfg.MaxLeadTime:
		drop = DropTooLong
	default:
		observe(e, e.leadTime, ev.Service, e.cfg.LeadTimeBounds, lt.Seconds())
		s.addLeadTime(ev.Time, lt.Seconds(), e.cutoff())
		return "", boundariesOf(e.stagesOf(ev.Service, committed, change, buildEnd, ev.Time))
	}
	count(e, e.dropped, reasonKey{ev.Service, drop})
	return drop, StageBoundaries{}
}

var stageNames = [...]string{StageCoding, StageReview, StageBuild, StageDeploy}

// stagesOf splits one commit's lead time at the boundaries that are known:
// commit, change opened, change merged, build end (the deployment's start),
// production. Each boundary is clamped between the previous known one and
// the deployment, so the stages never go negative and, when all are known,
// add up to the lead time. A stage is recorded only when both its
// boundaries are known. It returns the clamped boundaries.
func (e *Engine) stagesOf(svc event.Service, committed time.Time, change *commit, buildEnd, deployed time.Time) [len(stageNames) + 1]time.Time {
	b := [len(stageNames) + 1]time.Time{0: committed, 3: buildEnd, 4: deployed}
	if change != nil {
		b[1], b[2] = change.opened().time(), change.merged().time()
	}
	last := committed
	for i := 1; i < len(b); i++ {
		if b[i].IsZero() {
			continue
		}
		if b[i].Before(last) {
			b[i] = last
		}
		if b[i].After(deployed) {
			b[i] = deployed
		}
		last = b[i]
	}
	for i, stage := range stageNames {
		if b[i].IsZero() || b[i+1].IsZero() {
			continue
		}
		observe(e, e.stages, reasonKey{svc, stage}, e.cfg.LeadTimeBounds, b[i+1].Sub(b[i]).Seconds())
	}
	return b
}

// reverted fails the deployment of s that shipped the reverted revision,
// when reverts are hotfix signals; d, which ships the revert, is a hotfix.
func (e *Engine) reverted(ev event.Event, s *serviceState, d *deploymentState, reverted string) {
	if !e.cfg.Hotfix.Revert {
		return
	}
	id, ok := s.deployedRevisions[reverted]
	if !ok {
		return
	}
	prev := s.find(id)
	if prev == nil || prev == d {
		return
	}
	d.hotfix = true
	e.markFailure(ev.Service, s, prev, ReasonRevert, ev.Time)
}

// hotfixed makes d, which ships a commit of a hotfix change, a hotfix, as
// the Hotfix flag on a deployment event does (Engine.record): the
// deployment it follows fails (reason hotfix).
func (e *Engine) hotfixed(ev event.Event, s *serviceState, d *deploymentState) {
	if e.cfg.Hotfix.Flag && !d.hotfix {
		e.markHotfix(ev, s, d)
	}
}

// markHotfix makes d a hotfix: the deployment it follows (hotfixTarget)
// fails, reason hotfix, unless it already counts as failed.
func (e *Engine) markHotfix(ev event.Event, s *serviceState, d *deploymentState) {
	d.hotfix = true
	if prev := s.hotfixTarget(ev.Time, d); prev != nil {
		e.markFailure(ev.Service, s, prev, ReasonHotfix, ev.Time)
	}
}
