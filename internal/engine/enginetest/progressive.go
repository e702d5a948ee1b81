package enginetest

import (
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Progressive-delivery stories: the events the Argo Rollouts and Flagger
// sources make of an aborted canary and of its recovery (see
// internal/argorollouts and internal/flagger; their ids are those sources'
// rollout ids).

// An Argo Rollouts canary aborted by a failed AnalysisRun, then undone:
// checkout's new revision starts its steps, the analysis step fails and the
// controller aborts it (a failed deployment, reason AnalysisRunFailed);
// `kubectl argo rollouts undo` brings the stable revision back (a rollback,
// promoted at once, and rework), which ends the failure. The aborted revision never
// reached production: no lead time.
func storyArgoRolloutsAbortedCanary() Scenario {
	const (
		committed      = -30 * time.Minute
		canary, abort  = time.Duration(0), 15 * time.Minute
		undo, promoted = 20 * time.Minute, 21 * time.Minute
	)
	const v2, v3 = "shop/checkout/uid-1@2", "shop/checkout/uid-1@3"
	argo := func(ev event.Event) event.Event { return From(event.SourceArgoRollouts, ev) }
	return Scenario{
		Name: "Argo Rollouts: a canary aborted by its analysis, then undone",
		Events: []event.Event{
			History(Checkout),
			argo(WithCommitTime(Started(Checkout, v2, "c2", canary), committed)),
			argo(Failed(Checkout, v2, "AnalysisRunFailed", abort)),
			argo(RolledBack(Checkout, v3, v2, undo)),
			argo(Succeeded(Checkout, v3, "", promoted)),
		},
		Now: At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{Checkout, "success"}: 2, {Checkout, "failure"}: 1},
				DeploymentFailures: {{Checkout, "AnalysisRunFailed"}: 1},
				// The undo is made to fix the failure: rework.
				Rework: {{Checkout, ""}: 1},
			},
			Histograms: map[string]Histogram{
				RecoveryTime: {{Checkout, ""}: {secs(promoted - abort), 1}},
			},
		},
	}
}

// A Flagger canary whose analysis fails, then the fix promoted: Flagger
// analyses web's revision f1 (phase Progressing), its checks reach the
// threshold and it fails (reason CanaryAnalysisFailed; the primary keeps
// serving the previous revision); the fix f2 is analysed and promoted
// (Succeeded), shipping f1 and f2: their lead times, and the analysis as
// their deploy stage. The failure ends at the promotion.
func storyFlaggerFailedAnalysis() Scenario {
	const (
		f1At, f2At           = -time.Hour, 20 * time.Minute
		analysis1, failed    = time.Duration(0), 10 * time.Minute
		analysis2, promotion = 30 * time.Minute, 45 * time.Minute
	)
	const h2, h3 = "test/web/uid-9@7c9d6f8b5f@t0", "test/web/uid-9@5b8f9c6d7a@t30"
	flagger := func(ev event.Event) event.Event { return From(event.SourceFlagger, ev) }
	return Scenario{
		Name: "Flagger: a failed canary analysis, then the fix promoted",
		Events: []event.Event{
			History(Web),
			Change("f1", "", f1At),
			flagger(Started(Web, h2, "f1", analysis1)),
			flagger(Failed(Web, h2, "CanaryAnalysisFailed", failed)),
			Change("f2", "f1", f2At),
			flagger(Started(Web, h3, "f2", analysis2)),
			flagger(Succeeded(Web, h3, "f2", promotion)),
		},
		Now: At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{Web, "success"}: 2, {Web, "failure"}: 1},
				DeploymentFailures: {{Web, "CanaryAnalysisFailed"}: 1},
			},
			Histograms: map[string]Histogram{
				LeadTime:      {{Web, ""}: {secs(promotion-f2At) + secs(promotion-f1At), 2}},
				LeadTimeStage: {{Web, "deploy"}: {2 * secs(promotion-analysis2), 2}},
				RecoveryTime:  {{Web, ""}: {secs(promotion - failed), 1}},
			},
		},
	}
}
