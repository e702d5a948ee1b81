package enginetest

import (
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Scenarios returns the scenarios, freshly built (callers may change them).
// They run with the engine's default configuration (production is
// "production" or "prod"; the incident window and the dedup window 24 h;
// recovery on the first of a deployment, a rollback or the incident's
// resolution; hotfixes by flag and by revert; max lead time 90 days).
//
// Their events carry every time the engine uses, so the values do not
// depend on when they are replayed. Lead times are in seconds: 1800 is 30
// minutes.
//
// The delivery stories (Stories) come last.
func Scenarios() []Scenario {
	return append([]Scenario{
		{
			// cart and checkout deploy from one repository: every commit
			// is a change of both; each records it once, at its own first
			// production deployment of it.
			Name: "monorepo: two services sharing commits",
			Events: []event.Event{
				Succeeded(Cart, "cart-0", "m0", -2*time.Hour), // start of history
				Succeeded(Checkout, "checkout-0", "m0", -2*time.Hour),
				Change("m1", "m0", 0),
				Change("m2", "m1", 30*time.Minute),
				Succeeded(Cart, "cart-1", "m2", time.Hour),           // m1 60m, m2 30m
				Succeeded(Checkout, "checkout-1", "m1", 2*time.Hour), // m1 120m
				Succeeded(Checkout, "checkout-2", "m2", 3*time.Hour), // m2 150m
			},
			Now: At(4 * time.Hour),
			Want: Expected{
				Counters: map[string]Counter{
					Deployments: {{Cart, "success"}: 2, {Checkout, "success"}: 3},
				},
				Histograms: map[string]Histogram{
					LeadTime: {{Cart, ""}: {3600 + 1800, 2}, {Checkout, ""}: {7200 + 9000, 2}},
				},
			},
		},
		{
			Name: "rollback",
			Events: []event.Event{
				Succeeded(API, "d0", "r0", -time.Hour), // start of history
				Change("r1", "r0", 0),
				Started(API, "d1", "r1", 10*time.Minute),
				Succeeded(API, "d1", "r1", 20*time.Minute), // lead 20m: deploy stage 10m (started 10m, done 20m)
				RolledBack(API, "d2", "d1", time.Hour),
				Succeeded(API, "d2", "r0", time.Hour+5*time.Minute), // r0 shipped before: no lead time
			},
			Now: At(2 * time.Hour),
			Want: Expected{
				Counters: map[string]Counter{
					Deployments:        {{API, "success"}: 3},
					DeploymentFailures: {{API, "rollback"}: 1},
					Rework:             {{API, ""}: 1}, // the rollback
				},
				Histograms: map[string]Histogram{
					LeadTime:      {{API, ""}: {1200, 1}},
					LeadTimeStage: {{API, "deploy"}: {600, 1}},
					// From d1's finish (20m) to the completed rollback (65m).
					RecoveryTime: {{API, ""}: {2700, 1}},
				},
			},
		},
		{
			Name: "hotfix",
			Events: []event.Event{
				History(API), // -24h
				WithCommitTime(Succeeded(API, "d1", "h1", 0), -30*time.Minute),                                   // lead 30m
				AsHotfix(Started(API, "d2", "h2", 2*time.Hour)),                                                  // fails d1
				WithCommitTime(Succeeded(API, "d2", "h2", 2*time.Hour+10*time.Minute), time.Hour+50*time.Minute), // lead 20m
			},
			Now: At(3 * time.Hour),
			Want: Expected{
				Counters: map[string]Counter{
					Deployments:        {{API, "success"}: 3},
					DeploymentFailures: {{API, "hotfix"}: 1},
					Rework:             {{API, ""}: 1},
				},
				Histograms: map[string]Histogram{
					LeadTime:      {{API, ""}: {1800 + 1200, 2}},
					LeadTimeStage: {{API, "deploy"}: {600, 1}}, // d2: started 2h, done 2h10m
					// From d1's finish (0) to the hotfix in production (2h10m).
					RecoveryTime: {{API, ""}: {7800, 1}},
				},
			},
		},
		{
			// An incident 30 h after api's only deployment (window 24 h) and
			// one on db, which never deployed: outages, not change failures.
			Name: "unattributed outage",
			Events: []event.Event{
				Succeeded(API, "d1", "", 0),
				Incident(event.IncidentOpened, DB, "db-1", time.Hour),
				Incident(event.IncidentOpened, API, "inc-1", 30*time.Hour),
				Incident(event.IncidentResolved, API, "inc-1", 31*time.Hour),
			},
			Now: At(32 * time.Hour),
			Want: Expected{
				Counters: map[string]Counter{
					Deployments: {{API, "success"}: 1},
					Incidents:   {{API, "false"}: 1, {DB, "false"}: 1},
				},
			},
		},
		{
			// An alert fires, resolves and fires again (a new incident, as
			// Alertmanager's new startsAt makes it); the first one is also
			// reopened by hand. d1 fails once and recovers once, at the
			// first resolution; every incident counts once.
			Name: "flapping incident",
			Events: []event.Event{
				History(API),
				WithCommitTime(Succeeded(API, "d1", "f1", 0), -10*time.Minute), // lead 10m
				Incident(event.IncidentOpened, API, "inc-a", 10*time.Minute),
				Incident(event.IncidentResolved, API, "inc-a", 12*time.Minute), // recovery 12m
				Incident(event.IncidentOpened, API, "inc-b", 14*time.Minute),
				WithID(Incident(event.IncidentOpened, API, "inc-a", 16*time.Minute), "reopen/inc-a"),
				WithCommitTime(Succeeded(API, "d2", "f2", 17*time.Minute), 15*time.Minute), // lead 2m; incidents open: rework
				Incident(event.IncidentResolved, API, "inc-b", 20*time.Minute),
				WithID(Incident(event.IncidentResolved, API, "inc-a", 21*time.Minute), "reresolve/inc-a"),
			},
			Now: At(time.Hour),
			Want: Expected{
				Counters: map[string]Counter{
					Deployments:        {{API, "success"}: 3},
					DeploymentFailures: {{API, "incident"}: 1},
					Incidents:          {{API, "true"}: 2},
					Rework:             {{API, ""}: 1},
				},
				Histograms: map[string]Histogram{
					LeadTime:     {{API, ""}: {600 + 120, 2}},
					RecoveryTime: {{API, ""}: {720, 1}},
				},
			},
		},
		{
			// api's history started 101 days ago, so that a 100-day-old
			// commit known only from its deployment is after the start
			// (not before_history) and too old (too_long).
			Name: "clock skew and absurd lead times",
			Events: []event.Event{
				Succeeded(API, "d0", "k-old", -Days(101)),
				WithCommitTime(Succeeded(API, "d1", "k1", 0), 5*time.Minute), // committed after it shipped
				Change("c1", "k1", 10*time.Minute),
				Succeeded(API, "d2", "c1", 20*time.Minute), // lead 10m
				WithCommitTime(Succeeded(API, "d3", "k0", 30*time.Minute), -Days(100)),
			},
			Now: At(time.Hour),
			Want: Expected{
				Counters: map[string]Counter{
					Deployments:     {{API, "success"}: 4},
					LeadTimeDropped: {{API, "clock_skew"}: 1, {API, "too_long"}: 1},
				},
				Histograms: map[string]Histogram{
					LeadTime: {{API, ""}: {600, 1}},
				},
			},
		},
		{
			// Five days later nothing was deployed in the last day (the
			// rolling values show it). Staging deployments are counted but
			// feed nothing else.
			Name: "a service with no deployments in the window",
			Events: []event.Event{
				Succeeded(API, "d1", "", 0),
				Succeeded(WebStaging, "w1", "", 0),
				Started(API, "d2", "", 50*time.Minute),
				Failed(API, "d2", "ProgressDeadlineExceeded", time.Hour),
				Succeeded(API, "d3", "", 2*time.Hour), // recovery 1h
			},
			Now: At(Days(5)),
			Want: Expected{
				Counters: map[string]Counter{
					Deployments:        {{API, "success"}: 2, {API, "failure"}: 1, {WebStaging, "success"}: 1},
					DeploymentFailures: {{API, "ProgressDeadlineExceeded"}: 1},
				},
				Histograms: map[string]Histogram{
					RecoveryTime: {{API, ""}: {3600, 1}},
				},
			},
		},
		{
			// v1 is committed, reviewed in pull request 7 and merged as v2;
			// d1 ships both, its CI run ending when it starts. v3 reverts
			// v2: its deployment d2 is a hotfix that fails d1 (reason
			// revert) and is rework. Stage boundaries: v1 committed -3h,
			// opened -2h, merged -1h, build end -30m, production 0; v2 is
			// the merge commit (-1h), so its coding and review stages are 0.
			Name: "a reviewed change and its revert",
			Events: []event.Event{
				History(API), // -24h, ships history-api
				Change("v1", "history-api", -3*time.Hour),
				Opened("acme/api/pull/7", -2*time.Hour),
				Change("v2", "v1", -time.Hour),
				Merged("v2", "acme/api/pull/7", -time.Hour),
				Started(API, "d1", "v2", -30*time.Minute),
				Succeeded(API, "d1", "v2", 0), // v2 lead 1h, v1 lead 3h
				Reverting(Change("v3", "v2", time.Hour), "v2"),
				Succeeded(API, "d2", "v3", 2*time.Hour), // v3 lead 1h, no stages (no change, no start)
			},
			Now: At(3 * time.Hour),
			Want: Expected{
				Counters: map[string]Counter{
					Deployments:        {{API, "success"}: 3},
					DeploymentFailures: {{API, "revert"}: 1},
					Rework:             {{API, ""}: 1},
				},
				Histograms: map[string]Histogram{
					LeadTime: {{API, ""}: {3600 + 10800 + 3600, 3}},
					LeadTimeStage: {
						{API, "coding"}: {0 + 3600, 2}, // v2, v1
						{API, "review"}: {0 + 3600, 2},
						{API, "build"}:  {1800 + 1800, 2},
						{API, "deploy"}: {1800 + 1800, 2},
					},
					// From d1's finish (0) to the revert in production (2h).
					RecoveryTime: {{API, ""}: {7200, 1}},
				},
			},
		},
		{
			// The receiver has seen three days of api (its first
			// deployment starts the history), less than a week: the week's
			// rolling values are over the three days seen, and too little of
			// it is covered for levels (the engine's TestScenarios).
			Name: "three days of history under a week's window",
			Events: []event.Event{
				Succeeded(API, "d1", "r1", 0),
				Succeeded(API, "d2", "r2", 26*time.Hour),
				Succeeded(API, "d3", "r3", 53*time.Hour),
				Succeeded(API, "d4", "r4", 71*time.Hour),
			},
			Now: At(72 * time.Hour),
			Want: Expected{
				Counters: map[string]Counter{
					Deployments: {{API, "success"}: 4},
				},
			},
		},
	}, Stories()...)
}
