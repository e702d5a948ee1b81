package enginetest

import (
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// The delivery stories every team lives through (METRICS.md, "Delivery
// stories"). Each one names its moments and computes what it expects from
// them, so the arithmetic is the story's own.

// secs is d in seconds, the unit of the histograms.
func secs(d time.Duration) float64 { return d.Seconds() }

// Stories returns the delivery stories, freshly built.
func Stories() []Scenario {
	failedThenAlert := storyFailedRolloutThenAlert()
	return append([]Scenario{
		storyFirstDeploymentWithObservedPushes(),
		failedThenAlert,
		storyAlertDuringRollout(),
		storyHotfixDuringIncident(),
		storyRedeploySameRevision(),
		storyPromotion(),
		storySquashMerge(),
		storyMonorepoPaths(),
		storyOverlappingIncidents(),
		storyTwoSources(),
		storyArgoRolloutsAbortedCanary(),
		storyFlaggerFailedAnalysis(),
		redelivered(failedThenAlert),
		storyJenkins(),
		storyTekton(),
		storyReleases(),
	}, append(append(incidentSourceStories(), IncidentTrackerStories()...), vcsStories()...)...)
}

// The first deployment with observed pushes: acme/payments' commits are
// pushed, then the service's first production deployment ships them. Their
// pushes were seen, so they get their lead time there. ledger's first
// deployment ships a commit known only from the deployment (an image
// annotation), committed days before the receiver first saw ledger: it may
// have run in production before, so it is before_history.
func storyFirstDeploymentWithObservedPushes() Scenario {
	const (
		p1At, p2At     = -50 * time.Minute, -20 * time.Minute
		d1Start, d1End = -5 * time.Minute, time.Duration(0)
		ledgerAt       = 10 * time.Minute
	)
	ledgerCommit := -Days(3)
	return Scenario{
		Name: "first deployment with observed pushes",
		Events: []event.Event{
			Change("p1", "p0", p1At),
			Change("p2", "p1", p2At),
			Started(Payments, "pay-1", "p2", d1Start),
			Succeeded(Payments, "pay-1", "p2", d1End),
			WithCommitTime(Succeeded(Ledger, "ledger-1", "l1", ledgerAt), ledgerCommit),
		},
		Now: At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:     {{Payments, "success"}: 1, {Ledger, "success"}: 1},
				LeadTimeDropped: {{Ledger, "before_history"}: 1},
			},
			Histograms: map[string]Histogram{
				// p0, the parent, was never pushed: no time, no lead time.
				LeadTime:      {{Payments, ""}: {secs(d1End-p1At) + secs(d1End-p2At), 2}},
				LeadTimeStage: {{Payments, "deploy"}: {2 * secs(d1End-d1Start), 2}},
			},
		},
	}
}

// A failed rollout, then an alert: d1 has run healthily for half an hour
// when d2's rollout fails; two minutes later an alert fires. The alert
// belongs to d2 (the latest deployment started before it), which already
// failed: one change failure, one recovery, from the failure (earlier than
// the alert) to the alert's resolution. A fix goes out after.
func storyFailedRolloutThenAlert() Scenario {
	const (
		d1Done             = time.Duration(0)
		d2Start, d2Failed  = 30 * time.Minute, 40 * time.Minute
		alert, resolved    = 42 * time.Minute, 55 * time.Minute
		fixStart, fixDone  = time.Hour, 70 * time.Minute
		fixCommit          = 50 * time.Minute
		recoveryStart      = min(d2Failed, alert)
		successes, failure = 2, 1 // d1 and the fix; d2
	)
	return Scenario{
		Name: "failed rollout, then an alert",
		Events: []event.Event{
			Succeeded(API, "d1", "", d1Done),
			Started(API, "d2", "", d2Start),
			Failed(API, "d2", "ProgressDeadlineExceeded", d2Failed),
			Incident(event.IncidentOpened, API, "alert-1", alert),
			Incident(event.IncidentResolved, API, "alert-1", resolved),
			Change("fix", "", fixCommit),
			Started(API, "d3", "fix", fixStart),
			Succeeded(API, "d3", "fix", fixDone),
		},
		Now: At(2 * time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{API, "success"}: successes, {API, "failure"}: failure},
				DeploymentFailures: {{API, "ProgressDeadlineExceeded"}: 1},
				Incidents:          {{API, "true"}: 1},
			},
			Histograms: map[string]Histogram{
				LeadTime:      {{API, ""}: {secs(fixDone - fixCommit), 1}},
				LeadTimeStage: {{API, "deploy"}: {secs(fixDone - fixStart), 1}},
				RecoveryTime:  {{API, ""}: {secs(resolved - recoveryStart), 1}},
			},
		},
	}
}

// An alert during a rollout: d2 is still rolling out when the alert fires.
// The rollout is the change that caused it: d2 is a change failure, from
// its start (it had not finished) to the alert's resolution. Its own
// completion is neither its recovery nor rework (it started before the
// alert).
func storyAlertDuringRollout() Scenario {
	const (
		d1Done          = time.Duration(0)
		d2Start, d2Done = 30 * time.Minute, 35 * time.Minute
		alert, resolved = 32 * time.Minute, 50 * time.Minute
	)
	return Scenario{
		Name: "an alert during a rollout",
		Events: []event.Event{
			Succeeded(API, "d1", "", d1Done),
			Started(API, "d2", "", d2Start),
			Incident(event.IncidentOpened, API, "alert-1", alert),
			Succeeded(API, "d2", "", d2Done),
			Incident(event.IncidentResolved, API, "alert-1", resolved),
		},
		Now: At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{API, "success"}: 2},
				DeploymentFailures: {{API, "incident"}: 1},
				Incidents:          {{API, "true"}: 1},
			},
			Histograms: map[string]Histogram{
				RecoveryTime: {{API, ""}: {secs(resolved - d2Start), 1}},
			},
		},
	}
}

// A hotfix deployed during an open incident: d1 ships h1; an alert fires
// (d1's change failure); the hotfix h2 is pushed and deployed while the
// incident is open. d1 fails once (the hotfix adds no second failure),
// recovers when the hotfix reaches production (before the incident
// resolves), and the hotfix is rework.
func storyHotfixDuringIncident() Scenario {
	const (
		h1At, d1Done             = -20 * time.Minute, time.Duration(0)
		alert                    = 15 * time.Minute
		h2At, hotfixStart, fixed = 30 * time.Minute, 35 * time.Minute, 45 * time.Minute
		resolved                 = 50 * time.Minute
	)
	return Scenario{
		Name: "a hotfix deployed during an open incident",
		Events: []event.Event{
			Change("h1", "h0", h1At),
			Succeeded(API, "d1", "h1", d1Done),
			Incident(event.IncidentOpened, API, "inc-1", alert),
			Change("h2", "h1", h2At),
			AsHotfix(Started(API, "d2", "h2", hotfixStart)),
			Succeeded(API, "d2", "h2", fixed),
			Incident(event.IncidentResolved, API, "inc-1", resolved),
		},
		Now: At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{API, "success"}: 2},
				DeploymentFailures: {{API, "incident"}: 1},
				Incidents:          {{API, "true"}: 1},
				Rework:             {{API, ""}: 1},
			},
			Histograms: map[string]Histogram{
				LeadTime:      {{API, ""}: {secs(d1Done-h1At) + secs(fixed-h2At), 2}},
				LeadTimeStage: {{API, "deploy"}: {secs(fixed - hotfixStart), 1}},
				// From d1's finish (before the alert) to the hotfix.
				RecoveryTime: {{API, ""}: {secs(fixed - d1Done), 1}},
			},
		},
	}
}

// Redeploying the same revision (a restart, a re-run pipeline) is a
// deployment, but ships nothing new: r1's lead time is recorded once.
func storyRedeploySameRevision() Scenario {
	const r1At, d1Done, d2Done = -10 * time.Minute, time.Duration(0), time.Hour
	return Scenario{
		Name: "redeploying the same revision",
		Events: []event.Event{
			Change("r1", "r0", r1At),
			Succeeded(API, "d1", "r1", d1Done),
			Succeeded(API, "d2", "r1", d2Done),
		},
		Now: At(2 * time.Hour),
		Want: Expected{
			Counters: map[string]Counter{Deployments: {{API, "success"}: 2}},
			Histograms: map[string]Histogram{
				LeadTime: {{API, ""}: {secs(d1Done - r1At), 1}},
			},
		},
	}
}

// Promotion of one revision, staging then production: both deployments
// count, each in its environment; the lead time is recorded once, at
// production (lead time is about production).
func storyPromotion() Scenario {
	const r1At, staged, promoted = -30 * time.Minute, time.Duration(0), 2 * time.Hour
	return Scenario{
		Name: "promotion of one revision, staging then production",
		Events: []event.Event{
			Change("w1", "w0", r1At),
			Succeeded(WebStaging, "web-staging-1", "w1", staged),
			Succeeded(Web, "web-production-1", "w1", promoted),
		},
		Now: At(3 * time.Hour),
		Want: Expected{
			Counters: map[string]Counter{Deployments: {{WebStaging, "success"}: 1, {Web, "success"}: 1}},
			Histograms: map[string]Histogram{
				LeadTime: {{Web, ""}: {secs(promoted - r1At), 1}},
			},
		},
	}
}

// A squash merge: the branch commits f1 and f2 of pull request 9 are
// squashed into one new commit s1 on the main line, made when the request
// is merged. s1 is what runs in production, so its time (the merge) is the
// change's commit time; f1 and f2 are not its ancestors and never reach
// production, so they are not shipped and get no lead time. The request's
// opening is known but precedes s1: the coding and review stages are 0
// (stage boundaries never go before the commit).
func storySquashMerge() Scenario {
	const (
		f1At, opened, f2At = -3 * time.Hour, -150 * time.Minute, -2 * time.Hour
		squashed           = -time.Hour
		buildEnd, done     = -10 * time.Minute, time.Duration(0)
	)
	return Scenario{
		Name: "a squash merge",
		Events: []event.Event{
			Change("f1", "main-0", f1At),
			Opened("acme/api/pull/9", opened),
			Change("f2", "f1", f2At),
			Change("s1", "main-0", squashed),
			Merged("s1", "acme/api/pull/9", squashed),
			Started(API, "d1", "s1", buildEnd),
			Succeeded(API, "d1", "s1", done),
		},
		Now: At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{Deployments: {{API, "success"}: 1}},
			Histograms: map[string]Histogram{
				LeadTime: {{API, ""}: {secs(done - squashed), 1}},
				LeadTimeStage: {
					{API, "coding"}: {0, 1},
					{API, "review"}: {0, 1},
					{API, "build"}:  {secs(buildEnd - squashed), 1},
					{API, "deploy"}: {secs(done - buildEnd), 1},
				},
			},
		},
	}
}

// Two services in one monorepo, with path filters: a commit is a change of
// the services whose paths it touches. Both services' first deployments
// ship the head, each recording its own commits (their pushes were seen).
func storyMonorepoPaths() Scenario {
	const (
		cartCommit, checkoutCommit, sharedCommit = -50 * time.Minute, -40 * time.Minute, -30 * time.Minute
		cartDone, checkoutDone                   = time.Duration(0), 30 * time.Minute
	)
	return Scenario{
		Name: "two services in one monorepo",
		ServicePaths: []ServicePaths{
			{Namespace: Cart.Namespace, Name: Cart.Name, Paths: []string{"cart/**", "lib/**"}},
			{Namespace: Checkout.Namespace, Name: Checkout.Name, Paths: []string{"checkout/**", "lib/**"}},
		},
		Events: []event.Event{
			Touching(Change("mono-1", "mono-0", cartCommit), "cart/cart.go"),
			Touching(Change("mono-2", "mono-1", checkoutCommit), "checkout/pay.go"),
			Touching(Change("mono-3", "mono-2", sharedCommit), "lib/money/money.go"),
			Succeeded(Cart, "cart-1", "mono-3", cartDone),
			Succeeded(Checkout, "checkout-1", "mono-3", checkoutDone),
		},
		Now: At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{Deployments: {{Cart, "success"}: 1, {Checkout, "success"}: 1}},
			Histograms: map[string]Histogram{
				LeadTime: {
					{Cart, ""}:     {secs(cartDone-cartCommit) + secs(cartDone-sharedCommit), 2},
					{Checkout, ""}: {secs(checkoutDone-checkoutCommit) + secs(checkoutDone-sharedCommit), 2},
				},
			},
		},
	}
}

// Overlapping incidents on one service: two alerts after d1 both belong to
// it; d1 fails once and recovers when the last of them resolves.
func storyOverlappingIncidents() Scenario {
	const (
		d1Done            = time.Duration(0)
		aOpen, bOpen      = 10 * time.Minute, 20 * time.Minute
		aResolved, bEnded = 30 * time.Minute, 45 * time.Minute
	)
	return Scenario{
		Name: "overlapping incidents on one service",
		Events: []event.Event{
			Succeeded(API, "d1", "", d1Done),
			Incident(event.IncidentOpened, API, "inc-a", aOpen),
			Incident(event.IncidentOpened, API, "inc-b", bOpen),
			Incident(event.IncidentResolved, API, "inc-a", aResolved),
			Incident(event.IncidentResolved, API, "inc-b", bEnded),
		},
		Now: At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{API, "success"}: 1},
				DeploymentFailures: {{API, "incident"}: 1},
				Incidents:          {{API, "true"}: 2},
			},
			Histograms: map[string]Histogram{
				RecoveryTime: {{API, ""}: {secs(max(aResolved, bEnded) - d1Done), 1}},
			},
		},
	}
}

// StoryTwoSources is the name of the story told by Kubernetes and CI, which
// e2e's TestTwoSourcesEndToEnd replays through the real sources.
const StoryTwoSources = "the same story told by Kubernetes and CI"

// The same story told twice by two sources: the CI run deploys r1 and
// reports it, and Kubernetes reports the rollout of the same revision, each
// with its own ids. One deployment, one lead time; its deploy stage starts
// at the first start reported (the CI job's).
func storyTwoSources() Scenario {
	const (
		r1At                = -20 * time.Minute
		ciStart, k8sStart   = -2 * time.Minute, time.Duration(0)
		k8sDone, ciReported = 3 * time.Minute, 4 * time.Minute
	)
	return Scenario{
		Name: StoryTwoSources,
		// Through the generic source alone every event would be of one
		// source, and one source's reports under two ids are two
		// deployments: the story needs its two real sources.
		EngineOnly: "e2e TestTwoSourcesEndToEnd: a real rollout reported by the Kubernetes source, " +
			"the push and the CI deployment by the GitHub source",
		Events: []event.Event{
			Change("r1", "r0", r1At),
			From("ci", Started(API, "ci-run-42", "r1", ciStart)),
			From(event.SourceKubernetes, Started(API, "shop/api/7", "r1", k8sStart)),
			From(event.SourceKubernetes, Succeeded(API, "shop/api/7", "r1", k8sDone)),
			From("ci", Succeeded(API, "ci-run-42", "r1", ciReported)),
		},
		Now: At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{Deployments: {{API, "success"}: 1}},
			Histograms: map[string]Histogram{
				LeadTime:      {{API, ""}: {secs(k8sDone - r1At), 1}},
				LeadTimeStage: {{API, "deploy"}: {secs(k8sDone - ciStart), 1}},
			},
		},
	}
}

// redelivered is sc with every delivery made twice (a sender retrying each
// one after a lost answer): the same values.
func redelivered(sc Scenario) Scenario {
	out := sc
	out.Name = "every delivery redelivered: " + sc.Name
	out.Events = nil
	for _, ev := range sc.Events {
		out.Events = append(out.Events, ev, ev)
	}
	return out
}
