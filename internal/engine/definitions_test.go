package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// One test per definition of METRICS.md, named after it. The cumulative
// values are checked in full (checkCumulative), so each test also shows
// what a definition does not count.

var staging = event.Service{Namespace: "shop", Name: "api", Environment: "staging"}

func merged(rev, changeID string, t time.Duration) event.Event {
	return event.Event{Kind: event.ChangeMerged, Source: "test", ID: "merged/" + rev, Time: at(t), Revision: rev, ChangeID: changeID}
}

func opened(changeID string, t time.Duration) event.Event {
	return event.Event{Kind: event.ChangeOpened, Source: "test", ID: "opened/" + changeID, Time: at(t), ChangeID: changeID}
}

func reverting(ev event.Event, rev string) event.Event {
	ev.Reverts = rev
	return ev
}

type definitionCase struct {
	name   string
	cfg    func(*Config)
	events []event.Event
	want   expect
}

func runDefinitions(t *testing.T, cases []definitionCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			checkCumulative(t, apply(t, cfg, tt.events...).Snapshot(), tt.want)
		})
	}
}

func TestDefinition_Deployment_CountedOnce(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name:   "a start alone is not a deployment",
			events: []event.Event{started(api, "d1", "", 0)},
		},
		{
			name: "counted once at its outcome, whatever the number of reports",
			events: []event.Event{
				started(api, "d1", "", 0),
				succeeded(api, "d1", "", time.Minute),
				withID(succeeded(api, "d1", "", 2*time.Minute), "again"),
				succeeded(api, "d1", "", time.Minute), // a redelivery
			},
			want: expect{deployments: map[string]uint64{"api success": 1}},
		},
		{
			name: "a failed rollout is a deployment with status failure",
			events: []event.Event{
				started(api, "d1", "", 0),
				failed(api, "d1", "ProgressDeadlineExceeded", 10*time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api failure": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
			},
		},
	})
}

func TestDefinition_Deployment_SameRolloutAcrossSources(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name: "Kubernetes and CI reporting one revision within merge_window are one deployment",
			events: []event.Event{
				from("kubernetes", started(api, "k8s-1", "c1", 0)),
				from("github", succeeded(api, "gh-7", "c1", 2*time.Minute)),
				from("kubernetes", succeeded(api, "k8s-1", "c1", 3*time.Minute)),
			},
			want: expect{deployments: map[string]uint64{"api success": 1}},
		},
		{
			name: "one source deploying a revision twice is two deployments",
			events: []event.Event{
				from("github", succeeded(api, "gh-1", "c1", 0)),
				from("github", succeeded(api, "gh-2", "c1", time.Minute)),
			},
			want: expect{deployments: map[string]uint64{"api success": 2}},
		},
	})
}

func TestDefinition_Production_OnlyProductionFeedsDORA(t *testing.T) {
	e := apply(t, DefaultConfig(),
		history(staging),
		change("c1", "history-api", 0),
		succeeded(staging, "d1", "c1", time.Hour),
		failed(staging, "d2", "ProgressDeadlineExceeded", 2*time.Hour),
		rolledBack(staging, "d3", "d1", 3*time.Hour),
		succeeded(staging, "d3", "", 3*time.Hour+time.Minute),
		asHotfix(succeeded(staging, "d4", "c2", 4*time.Hour)),
		incident(event.IncidentOpened, staging, "inc-1", 4*time.Hour+time.Minute),
	)
	s := e.SnapshotAt(at(5 * time.Hour))
	checkCumulative(t, s, expect{
		// Counted, with their environment; nothing else.
		deployments: map[string]uint64{"api success": 4, "api failure": 1},
		// Incidents are counted in every environment, attributed only in
		// production.
		incidents: map[string]uint64{"api false": 1},
	})
	assert.Empty(t, s.Rolling, "no rolling values outside production")
}

func TestDefinition_ChangeFailure_FailedRollout(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name: "the source's reason is the reason",
			events: []event.Event{
				failed(api, "d1", "ProgressDeadlineExceeded", 0),
			},
			want: expect{deployments: map[string]uint64{"api failure": 1}, failures: map[string]uint64{"api ProgressDeadlineExceeded": 1}},
		},
		{
			name:   "without a reason: failed",
			events: []event.Event{failed(api, "d1", "", 0)},
			want:   expect{deployments: map[string]uint64{"api failure": 1}, failures: map[string]uint64{"api failed": 1}},
		},
		{
			name: "a deployment that succeeded and then degraded (Argo CD health) fails once, keeping its success",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				failed(api, "d1", "HealthDegraded", 10*time.Minute),
			},
			want: expect{deployments: map[string]uint64{"api success": 1}, failures: map[string]uint64{"api HealthDegraded": 1}},
		},
	})
}

func TestDefinition_ChangeFailure_Rollback(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name: "rolling back a successful deployment fails it; the rollback is a deployment and rework",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				rolledBack(api, "d2", "d1", time.Hour),
				succeeded(api, "d2", "", time.Hour+time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				failures:    map[string]uint64{"api rollback": 1},
				rework:      map[string]uint64{"api ": 1},
				recovery:    map[string][2]float64{"api": {3660, 1}},
			},
		},
		{
			name: "rolling back an unfinished rollout makes it a failed deployment",
			events: []event.Event{
				started(api, "d1", "", 0),
				rolledBack(api, "d2", "d1", 2*time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api failure": 1},
				failures:    map[string]uint64{"api rollback": 1},
			},
		},
	})
}

func TestDefinition_ChangeFailure_Hotfix(t *testing.T) {
	hotfixed := []event.Event{
		succeeded(api, "d1", "", 0),
		asHotfix(started(api, "d2", "", time.Hour)),
		succeeded(api, "d2", "", time.Hour+10*time.Minute),
	}
	runDefinitions(t, []definitionCase{
		{
			name:   "a deployment flagged hotfix fails the deployment it follows",
			events: hotfixed,
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				failures:    map[string]uint64{"api hotfix": 1},
				rework:      map[string]uint64{"api ": 1},
				// d1's finish (0) to the hotfix in production.
				recovery: map[string][2]float64{"api": {4200, 1}},
			},
		},
		{
			name:   "with hotfix_signals without flag, the flag means nothing",
			cfg:    func(c *Config) { c.Hotfix.Flag = false },
			events: hotfixed,
			want:   expect{deployments: map[string]uint64{"api success": 2}},
		},
		{
			// d2's rollout failed and already counts; the hotfix fixes
			// it, not d1, which ran healthily before it.
			name: "a hotfix after a failed rollout adds no second failure",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				started(api, "d2", "", time.Hour),
				failed(api, "d2", "ProgressDeadlineExceeded", time.Hour+10*time.Minute),
				asHotfix(started(api, "d3", "", 2*time.Hour)),
				succeeded(api, "d3", "", 2*time.Hour+10*time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2, "api failure": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
				rework:      map[string]uint64{"api ": 1},
				// d2's failure (1h10m) to the hotfix in production (2h10m).
				recovery: map[string][2]float64{"api": {3600, 1}},
			},
		},
		{
			name:   "a hotfix with no earlier deployment known fails nothing, and is rework",
			events: []event.Event{asHotfix(succeeded(api, "d1", "", 0))},
			want:   expect{deployments: map[string]uint64{"api success": 1}, rework: map[string]uint64{"api ": 1}},
		},
	})
}

func TestDefinition_ChangeFailure_Revert(t *testing.T) {
	base := []event.Event{
		history(api),
		change("c1", "history-api", 0),
		succeeded(api, "d1", "c1", 10*time.Minute), // lead 10m
	}
	revertCommit := reverting(change("r1", "c1", 30*time.Minute), "c1")
	runDefinitions(t, []definitionCase{
		{
			name:   "shipping a commit that reverts a revision fails the deployment that shipped it",
			events: append(append([]event.Event{}, base...), revertCommit, succeeded(api, "d2", "r1", 40*time.Minute)),
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				failures:    map[string]uint64{"api revert": 1},
				rework:      map[string]uint64{"api ": 1},
				leadTime:    map[string][2]float64{"api": {600 + 600, 2}},
				// d1's finish (10m) to the revert in production (40m).
				recovery: map[string][2]float64{"api": {1800, 1}},
			},
		},
		{
			name:   "a deployment event can name what it reverts",
			events: append(append([]event.Event{}, base...), reverting(succeeded(api, "d2", "r1", 40*time.Minute), "c1")),
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				failures:    map[string]uint64{"api revert": 1},
				rework:      map[string]uint64{"api ": 1},
				leadTime:    map[string][2]float64{"api": {600, 1}},
				recovery:    map[string][2]float64{"api": {1800, 1}},
			},
		},
		{
			name:   "with hotfix_signals without revert, a revert is a plain change",
			cfg:    func(c *Config) { c.Hotfix.Revert = false },
			events: append(append([]event.Event{}, base...), revertCommit, succeeded(api, "d2", "r1", 40*time.Minute)),
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				leadTime:    map[string][2]float64{"api": {600 + 600, 2}},
			},
		},
		{
			name:   "reverting a revision the service never shipped fails nothing",
			events: append(append([]event.Event{}, base...), reverting(succeeded(api, "d2", "r1", 40*time.Minute), "elsewhere")),
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				leadTime:    map[string][2]float64{"api": {600, 1}},
			},
		},
	})
}

func TestDefinition_ChangeFailure_IncidentWindow(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name: "an incident within incident_window after a deployment is its change failure",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, api, "inc-1", 23*time.Hour),
			},
			want: expect{deployments: map[string]uint64{"api success": 1}, failures: map[string]uint64{"api incident": 1}, incidents: map[string]uint64{"api true": 1}},
		},
		{
			name: "after the window it is an outage, not a change failure",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, api, "inc-1", 25*time.Hour),
			},
			want: expect{deployments: map[string]uint64{"api success": 1}, incidents: map[string]uint64{"api false": 1}},
		},
		{
			name: "the window is configurable",
			cfg:  func(c *Config) { c.IncidentWindow = 2 * time.Hour },
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, api, "inc-1", 3*time.Hour),
			},
			want: expect{deployments: map[string]uint64{"api success": 1}, incidents: map[string]uint64{"api false": 1}},
		},
		{
			name: "an incident before the deployment is not caused by it",
			events: []event.Event{
				incident(event.IncidentOpened, api, "inc-1", 0),
				succeeded(api, "d1", "", time.Hour),
			},
			want: expect{deployments: map[string]uint64{"api success": 1}, incidents: map[string]uint64{"api false": 1}, rework: map[string]uint64{"api ": 1}},
		},
		{
			name: "an incident during a rollout in progress belongs to it",
			events: []event.Event{
				started(api, "d1", "", 0),
				incident(event.IncidentOpened, api, "inc-1", time.Minute),
			},
			want: expect{failures: map[string]uint64{"api incident": 1}, incidents: map[string]uint64{"api true": 1}},
		},
		{
			name: "the latest deployment before the incident is the one that fails",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				succeeded(api, "d2", "", 2*time.Hour),
				incident(event.IncidentOpened, api, "inc-1", 3*time.Hour),
				incident(event.IncidentResolved, api, "inc-1", 4*time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				failures:    map[string]uint64{"api incident": 1},
				incidents:   map[string]uint64{"api true": 1},
				recovery:    map[string][2]float64{"api": {2 * 3600, 1}}, // from d2 (2h)
			},
		},
		{
			name: "an incident must name the service: another service's incident fails nothing",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, web, "inc-1", time.Hour),
			},
			want: expect{deployments: map[string]uint64{"api success": 1}, incidents: map[string]uint64{"web false": 1}},
		},
	})
}

func TestDefinition_ChangeFailure_OncePerDeployment(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name: "rolled back, two incidents, a hotfix and a degraded health report: one failure",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				rolledBack(api, "d2", "d1", 10*time.Minute),
				incident(event.IncidentOpened, api, "inc-1", 11*time.Minute),
				incident(event.IncidentOpened, api, "inc-2", 12*time.Minute),
				asHotfix(started(api, "d3", "", 13*time.Minute)),
				failed(api, "d1", "HealthDegraded", 14*time.Minute),
				succeeded(api, "d2", "", 15*time.Minute),
				succeeded(api, "d3", "", 16*time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				failures:    map[string]uint64{"api rollback": 1},
				// Both incidents are caused by d1 (the last deployment that
				// succeeded before them).
				incidents: map[string]uint64{"api true": 2},
				// d2 (a rollback, during the incidents) and d3 (a hotfix).
				rework: map[string]uint64{"api ": 2},
				// d1's finish (0) to the completed rollback (15m).
				recovery: map[string][2]float64{"api": {900, 1}},
			},
		},
		{
			name: "a failed rollout that is rolled back counts one failure, with the first reason",
			events: []event.Event{
				started(api, "d1", "", 0),
				failed(api, "d1", "ProgressDeadlineExceeded", 10*time.Minute),
				rolledBack(api, "d2", "d1", 11*time.Minute),
				succeeded(api, "d2", "", 12*time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api failure": 1, "api success": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
				rework:      map[string]uint64{"api ": 1},
				recovery:    map[string][2]float64{"api": {120, 1}},
			},
		},
	})
}

func TestDefinition_Incident_Unattributed(t *testing.T) {
	runDefinitions(t, []definitionCase{{
		name: "an outage no deployment caused is counted as an incident, never as a change failure",
		events: []event.Event{
			incident(event.IncidentOpened, web, "inc-1", 0),
			incident(event.IncidentResolved, web, "inc-1", time.Hour),
		},
		want: expect{incidents: map[string]uint64{"web false": 1}},
	}})
}

// An incident belongs to the latest production deployment of its service
// that started before it, within incident_window, whatever its outcome, a
// rollout in progress included; joining a deployment that already failed
// adds no failure and no recovery.
func TestDefinition_Incident_Attribution(t *testing.T) {
	const (
		d1Done          = time.Duration(0)
		d2Start, d2Fail = 30 * time.Minute, 40 * time.Minute
		alert, resolved = 42 * time.Minute, time.Hour
	)
	runDefinitions(t, []definitionCase{
		{
			name: "a failed rollout, then an alert: one change failure, one recovery",
			events: []event.Event{
				succeeded(api, "d1", "", d1Done),
				started(api, "d2", "", d2Start),
				failed(api, "d2", "ProgressDeadlineExceeded", d2Fail),
				incident(event.IncidentOpened, api, "inc-1", alert),
				incident(event.IncidentResolved, api, "inc-1", resolved),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 1, "api failure": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
				incidents:   map[string]uint64{"api true": 1},
				// From the failure (earlier than the alert) to the
				// alert's resolution, the first recovery signal.
				recovery: map[string][2]float64{"api": {(resolved - min(d2Fail, alert)).Seconds(), 1}},
			},
		},
		{
			name: "an incident that started before the failure was reported: recovery from the incident",
			events: []event.Event{
				started(api, "d2", "", d2Start),
				failed(api, "d2", "ProgressDeadlineExceeded", d2Fail),
				incident(event.IncidentOpened, api, "inc-1", d2Fail-5*time.Minute),
				incident(event.IncidentResolved, api, "inc-1", resolved),
			},
			want: expect{
				deployments: map[string]uint64{"api failure": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
				incidents:   map[string]uint64{"api true": 1},
				recovery:    map[string][2]float64{"api": {(resolved - (d2Fail - 5*time.Minute)).Seconds(), 1}},
			},
		},
		{
			name: "an alert during a rollout: the rollout failed, its own completion is no recovery and no rework",
			events: []event.Event{
				succeeded(api, "d1", "", d1Done),
				started(api, "d2", "", d2Start),
				incident(event.IncidentOpened, api, "inc-1", alert),
				succeeded(api, "d2", "", alert+3*time.Minute),
				incident(event.IncidentResolved, api, "inc-1", resolved),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				failures:    map[string]uint64{"api incident": 1},
				incidents:   map[string]uint64{"api true": 1},
				// From d2's start (it had not finished) to the resolution.
				recovery: map[string][2]float64{"api": {(resolved - d2Start).Seconds(), 1}},
			},
		},
		{
			name: "a failed rollout outside incident_window of the alert: an outage",
			events: []event.Event{
				started(api, "d2", "", 0),
				failed(api, "d2", "ProgressDeadlineExceeded", 10*time.Minute),
				incident(event.IncidentOpened, api, "inc-1", 10*time.Minute+25*time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api failure": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
				incidents:   map[string]uint64{"api false": 1},
			},
		},
		{
			name: "a rollout that never finished, started longer than incident_window before: an outage",
			events: []event.Event{
				started(api, "d2", "", 0),
				incident(event.IncidentOpened, api, "inc-1", 25*time.Hour),
			},
			want: expect{incidents: map[string]uint64{"api false": 1}},
		},
	})
}

func TestDefinition_Incident_CountedOncePerIncident(t *testing.T) {
	runDefinitions(t, []definitionCase{{
		name: "opened, redelivered under another id, resolved and reopened: one incident",
		events: []event.Event{
			incident(event.IncidentOpened, api, "inc-1", 0),
			withID(incident(event.IncidentOpened, api, "inc-1", 0), "labeled"),
			incident(event.IncidentResolved, api, "inc-1", time.Hour),
			withID(incident(event.IncidentOpened, api, "inc-1", 2*time.Hour), "reopened"),
		},
		want: expect{incidents: map[string]uint64{"api false": 1}},
	}})
}

func TestDefinition_Recovery_StartsAtFailedDeployment(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name: "a failed rollout: from its failure",
			events: []event.Event{
				started(api, "d1", "", 0),
				failed(api, "d1", "ProgressDeadlineExceeded", 10*time.Minute),
				succeeded(api, "d2", "", 25*time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api failure": 1, "api success": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
				recovery:    map[string][2]float64{"api": {900, 1}},
			},
		},
		{
			name: "a rollout that never finished: from its start",
			events: []event.Event{
				started(api, "d1", "", 0),
				rolledBack(api, "d2", "d1", 10*time.Minute),
				succeeded(api, "d2", "", 12*time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api failure": 1, "api success": 1},
				failures:    map[string]uint64{"api rollback": 1},
				rework:      map[string]uint64{"api ": 1},
				recovery:    map[string][2]float64{"api": {720, 1}},
			},
		},
		{
			name: "a deployment that caused an incident: from the deployment, which is before the incident",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, api, "inc-1", 10*time.Minute),
				incident(event.IncidentResolved, api, "inc-1", 40*time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 1},
				failures:    map[string]uint64{"api incident": 1},
				incidents:   map[string]uint64{"api true": 1},
				recovery:    map[string][2]float64{"api": {2400, 1}},
			},
		},
	})
}

func TestDefinition_Recovery_Signals(t *testing.T) {
	// d1 causes an incident (10m), is rolled back (20m, done 30m), the
	// incident resolves (50m), a fix goes forward (70m). Each recovery_on
	// takes the first of its signals.
	events := []event.Event{
		succeeded(api, "d1", "", 0),
		incident(event.IncidentOpened, api, "inc-1", 10*time.Minute),
		rolledBack(api, "d2", "d1", 20*time.Minute),
		succeeded(api, "d2", "", 30*time.Minute),
		incident(event.IncidentResolved, api, "inc-1", 50*time.Minute),
		succeeded(api, "d3", "", 70*time.Minute),
	}
	base := expect{
		deployments: map[string]uint64{"api success": 3},
		failures:    map[string]uint64{"api incident": 1},
		incidents:   map[string]uint64{"api true": 1},
		rework:      map[string]uint64{"api ": 1}, // d2, a rollback during the incident
	}
	with := func(recovery float64) expect {
		w := base
		w.recovery = map[string][2]float64{"api": {recovery, 1}}
		return w
	}
	runDefinitions(t, []definitionCase{
		{name: "all (the default): the completed rollback comes first", events: events, want: with(1800)},
		{name: "deployment: the fix forward, not the rollback", cfg: func(c *Config) { c.RecoveryOn = RecoverySignals{Deployment: true} }, events: events, want: with(4200)},
		{name: "rollback", cfg: func(c *Config) { c.RecoveryOn = RecoverySignals{Rollback: true} }, events: events, want: with(1800)},
		{name: "incident_resolved", cfg: func(c *Config) { c.RecoveryOn = RecoverySignals{IncidentResolved: true} }, events: events, want: with(3000)},
		{name: "deployment and incident_resolved: the resolution comes first", cfg: func(c *Config) { c.RecoveryOn = RecoverySignals{Deployment: true, IncidentResolved: true} }, events: events, want: with(3000)},
	})
}

func TestDefinition_Recovery_OncePerFailedDeployment(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name: "two failed deployments recovered by one success: two recovery times",
			events: []event.Event{
				failed(api, "d1", "ProgressDeadlineExceeded", 10*time.Minute),
				failed(api, "d2", "ProgressDeadlineExceeded", 20*time.Minute),
				succeeded(api, "d3", "", 30*time.Minute),
			},
			want: expect{
				deployments: map[string]uint64{"api failure": 2, "api success": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 2},
				recovery:    map[string][2]float64{"api": {1200 + 600, 2}},
			},
		},
		{
			name: "a failure with several incidents recovers when the last one resolves",
			cfg:  func(c *Config) { c.RecoveryOn = RecoverySignals{IncidentResolved: true} },
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, api, "inc-1", time.Hour),
				incident(event.IncidentOpened, api, "inc-2", 2*time.Hour),
				incident(event.IncidentResolved, api, "inc-1", 3*time.Hour),
				incident(event.IncidentResolved, api, "inc-2", 4*time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 1},
				failures:    map[string]uint64{"api incident": 1},
				incidents:   map[string]uint64{"api true": 2},
				recovery:    map[string][2]float64{"api": {4 * 3600, 1}},
			},
		},
		{
			name: "a failure without its configured signal is never recovered",
			cfg:  func(c *Config) { c.RecoveryOn = RecoverySignals{IncidentResolved: true} },
			events: []event.Event{
				failed(api, "d1", "ProgressDeadlineExceeded", 0),
				succeeded(api, "d2", "", time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api failure": 1, "api success": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
			},
		},
	})
}

func TestDefinition_Rework(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name:   "a planned deployment is not rework",
			events: []event.Event{succeeded(api, "d1", "", 0), succeeded(api, "d2", "", time.Hour)},
			want:   expect{deployments: map[string]uint64{"api success": 2}},
		},
		{
			name:   "a hotfix is rework",
			events: []event.Event{asHotfix(succeeded(api, "d1", "", 0))},
			want:   expect{deployments: map[string]uint64{"api success": 1}, rework: map[string]uint64{"api ": 1}},
		},
		{
			name:   "a completed rollback is rework",
			events: []event.Event{succeeded(api, "d1", "", 0), rolledBack(api, "d2", "d1", time.Hour), succeeded(api, "d2", "", 2*time.Hour)},
			want: expect{deployments: map[string]uint64{"api success": 2}, failures: map[string]uint64{"api rollback": 1}, rework: map[string]uint64{"api ": 1},
				recovery: map[string][2]float64{"api": {7200, 1}}},
		},
		{
			name: "a deployment while the service has an open incident is rework, after its resolution not",
			events: []event.Event{
				incident(event.IncidentOpened, api, "inc-1", 0),
				succeeded(api, "d1", "", time.Hour),
				incident(event.IncidentResolved, api, "inc-1", 2*time.Hour),
				succeeded(api, "d2", "", 3*time.Hour),
			},
			want: expect{deployments: map[string]uint64{"api success": 2}, incidents: map[string]uint64{"api false": 1}, rework: map[string]uint64{"api ": 1}},
		},
		{
			name:   "a failed deployment is not rework (it did not reach production)",
			events: []event.Event{incident(event.IncidentOpened, api, "inc-1", 0), asHotfix(failed(api, "d1", "", time.Hour))},
			want:   expect{deployments: map[string]uint64{"api failure": 1}, failures: map[string]uint64{"api failed": 1}, incidents: map[string]uint64{"api false": 1}},
		},
		{
			name:   "outside production nothing is rework",
			events: []event.Event{asHotfix(succeeded(staging, "d1", "", 0))},
			want:   expect{deployments: map[string]uint64{"api success": 1}},
		},
	})
}

func TestDefinition_LeadTime_OncePerCommit(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			name: "a deployment ships every commit since the service's previous one; a redeployment ships nothing",
			events: []event.Event{
				history(api),
				change("c1", "history-api", 0),
				change("c2", "c1", 10*time.Minute),
				succeeded(api, "d1", "c2", time.Hour), // c1 60m, c2 50m
				succeeded(api, "d2", "c2", 2*time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				leadTime:    map[string][2]float64{"api": {3600 + 3000, 2}},
			},
		},
		{
			name: "each service records a shared commit at its own first deployment of it",
			events: []event.Event{
				history(api), history(web),
				change("c1", "", 0),
				succeeded(api, "d1", "c1", time.Hour),
				succeeded(web, "d2", "c1", 2*time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2, "web success": 2},
				leadTime:    map[string][2]float64{"api": {3600, 1}, "web": {7200, 1}},
			},
		},
	})
}

// The history of a service starts at the earliest deployment or incident
// event about it. Commits whose push or merge the engine received get their
// lead time at the first deployment that ships them, the service's first
// included; a commit known only from a deployment and committed before the
// history start is before_history.
func TestDefinition_LeadTime_StartOfHistory(t *testing.T) {
	const (
		c1At, c2At, c3At = -2 * time.Hour, -time.Hour, 10 * time.Minute
		d1At, d2At       = time.Duration(0), time.Hour
	)
	runDefinitions(t, []definitionCase{
		{
			name: "commits whose push was seen get their lead time at the service's first deployment",
			events: []event.Event{
				change("c1", "", c1At),
				change("c2", "c1", c2At),
				succeeded(api, "d1", "c2", d1At),
				change("c3", "c2", c3At),
				succeeded(api, "d2", "c3", d2At),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {(d1At - c1At + d1At - c2At + d2At - c3At).Seconds(), 3}},
			},
		},
		{
			name: "a month-old commit whose push was seen counts too (it never ran in production before)",
			events: []event.Event{
				change("c1", "", -days(30)),
				succeeded(api, "d1", "c1", d1At),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 1},
				leadTime:    map[string][2]float64{"api": {(d1At + days(30)).Seconds(), 1}},
			},
		},
		{
			name: "a commit known only from the first deployment, older than it, is before_history",
			events: []event.Event{
				withCommitTime(succeeded(api, "d1", "c1", d1At), -days(30)),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 1},
				dropped:     map[string]uint64{"api before_history": 1},
			},
		},
		{
			name: "the history starts at the first event about the service, an incident too: a later commit counts",
			events: []event.Event{
				incident(event.IncidentOpened, api, "inc-1", d1At),
				incident(event.IncidentResolved, api, "inc-1", d1At+10*time.Minute),
				withCommitTime(succeeded(api, "d1", "c1", d2At+time.Hour), d2At),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 1},
				incidents:   map[string]uint64{"api false": 1},
				leadTime:    map[string][2]float64{"api": {time.Hour.Seconds(), 1}},
			},
		},
		{
			name: "at a later deployment, a commit known only from it and older than the history start is before_history; one pushed as old counts",
			events: []event.Event{
				succeeded(api, "d0", "", d1At),
				withCommitTime(succeeded(api, "d1", "k1", d2At), d1At-2*time.Hour),
				change("p1", "", d1At-3*time.Hour),
				succeeded(api, "d2", "p1", 2*time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				dropped:     map[string]uint64{"api before_history": 1},
				leadTime:    map[string][2]float64{"api": {(2*time.Hour - (d1At - 3*time.Hour)).Seconds(), 1}},
			},
		},
		{
			name: "a first deployment without a revision; the next ships its commits",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				change("c1", "", -90*time.Minute),
				succeeded(api, "d2", "c1", time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {150 * 60, 1}},
			},
		},
		{
			name: "a first deployment that failed starts the history too",
			events: []event.Event{
				failed(api, "d1", "", 0),
				withCommitTime(succeeded(api, "d2", "c1", time.Hour), 0),
				withCommitTime(succeeded(api, "d3", "c2", 2*time.Hour), time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2, "api failure": 1},
				failures:    map[string]uint64{"api failed": 1},
				// c1 at the history start (0) is not before it: 1h; c2 1h.
				leadTime: map[string][2]float64{"api": {3600 + 3600, 2}},
				recovery: map[string][2]float64{"api": {3600, 1}},
			},
		},
	})
}

func TestDefinition_LeadTime_ClockSkew(t *testing.T) {
	runDefinitions(t, []definitionCase{{
		name:   "a commit time after the deployment is dropped, counted as clock_skew",
		events: []event.Event{history(api), withCommitTime(succeeded(api, "d1", "c1", 0), time.Second)},
		want: expect{
			deployments: map[string]uint64{"api success": 2},
			dropped:     map[string]uint64{"api clock_skew": 1},
		},
	}})
}

func TestDefinition_LeadTime_TooLong(t *testing.T) {
	runDefinitions(t, []definitionCase{
		{
			// The history must start before the commit, else it would be
			// before_history.
			name:   "longer than max_lead_time (90 days): too_long",
			events: []event.Event{succeeded(api, "d0", "", -days(91)), withCommitTime(succeeded(api, "d1", "c1", 0), -days(90)-time.Second)},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				dropped:     map[string]uint64{"api too_long": 1},
			},
		},
		{
			name:   "exactly max_lead_time is recorded",
			events: []event.Event{succeeded(api, "d0", "", -days(91)), withCommitTime(succeeded(api, "d1", "c1", 0), -days(90))},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {days(90).Seconds(), 1}},
			},
		},
		{
			name:   "max_lead_time is configurable",
			cfg:    func(c *Config) { c.MaxLeadTime = time.Hour },
			events: []event.Event{history(api), withCommitTime(succeeded(api, "d1", "c1", 0), -2*time.Hour)},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				dropped:     map[string]uint64{"api too_long": 1},
			},
		},
	})
}

func TestDefinition_LeadTime_RollbackRecordsNone(t *testing.T) {
	runDefinitions(t, []definitionCase{{
		name: "a rollback to code never seen deployed records no lead time and drops nothing",
		events: []event.Event{
			history(api),
			succeeded(api, "d1", "c2", 0),
			rolledBack(api, "d2", "d1", time.Hour),
			withCommitTime(succeeded(api, "d2", "c1", time.Hour+time.Minute), -days(2)),
		},
		want: expect{
			deployments: map[string]uint64{"api success": 3},
			failures:    map[string]uint64{"api rollback": 1},
			rework:      map[string]uint64{"api ": 1},
			recovery:    map[string][2]float64{"api": {3660, 1}},
		},
	}})
}

func TestDefinition_LeadTimeStage_Boundaries(t *testing.T) {
	// One reviewed change: commit 0, opened 10m, merged 30m (the merge
	// commit m1), rollout started 40m, in production 60m.
	reviewed := []event.Event{
		history(api),
		change("m1", "history-api", 0),
		opened("pr-1", 10*time.Minute),
		merged("m1", "pr-1", 30*time.Minute),
		started(api, "d1", "m1", 40*time.Minute),
		succeeded(api, "d1", "m1", time.Hour),
	}
	runDefinitions(t, []definitionCase{
		{
			name:   "all boundaries known: the stages add up to the lead time",
			events: reviewed,
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {3600, 1}},
				stages:      map[string][2]float64{"api coding": {600, 1}, "api review": {1200, 1}, "api build": {600, 1}, "api deploy": {1200, 1}},
			},
		},
		{
			name: "the change opened after it merged is linked by its change id",
			events: []event.Event{
				history(api),
				change("m1", "history-api", 0),
				merged("m1", "pr-1", 30*time.Minute),
				opened("pr-1", 10*time.Minute), // delivered late
				started(api, "d1", "m1", 40*time.Minute),
				succeeded(api, "d1", "m1", time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {3600, 1}},
				stages:      map[string][2]float64{"api coding": {600, 1}, "api review": {1200, 1}, "api build": {600, 1}, "api deploy": {1200, 1}},
			},
		},
		{
			name: "without the change opened: build and deploy only",
			events: []event.Event{
				history(api),
				change("m1", "history-api", 0),
				merged("m1", "", 30*time.Minute),
				started(api, "d1", "m1", 40*time.Minute),
				succeeded(api, "d1", "m1", time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {3600, 1}},
				stages:      map[string][2]float64{"api build": {600, 1}, "api deploy": {1200, 1}},
			},
		},
		{
			name: "without a deployment start: coding and review only",
			events: []event.Event{
				history(api),
				change("m1", "history-api", 0),
				opened("pr-1", 10*time.Minute),
				merged("m1", "pr-1", 30*time.Minute),
				succeeded(api, "d1", "m1", time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {3600, 1}},
				stages:      map[string][2]float64{"api coding": {600, 1}, "api review": {1200, 1}},
			},
		},
		{
			name: "a commit pushed directly (no merge): deploy only",
			events: []event.Event{
				history(api),
				change("c1", "history-api", 0),
				started(api, "d1", "c1", 40*time.Minute),
				succeeded(api, "d1", "c1", time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {3600, 1}},
				stages:      map[string][2]float64{"api deploy": {1200, 1}},
			},
		},
		{
			// A merge commit M (merged 40m) after the change's commits p1
			// (0) and p2 (20m, after the change opened at 10m): both belong
			// to M's change. p2's coding is clamped to 0: it was written
			// during review.
			name: "the commits before a merge commit belong to its change",
			events: []event.Event{
				history(api),
				change("p1", "history-api", 0),
				change("p2", "p1", 20*time.Minute),
				change("M", "p2", 40*time.Minute),
				opened("pr-1", 10*time.Minute),
				merged("M", "pr-1", 40*time.Minute),
				started(api, "d1", "M", 50*time.Minute),
				succeeded(api, "d1", "M", time.Hour),
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				// p1 60m, p2 40m, M 20m.
				leadTime: map[string][2]float64{"api": {(60 + 40 + 20) * 60, 3}},
				stages: map[string][2]float64{
					"api coding": {(10 + 0 + 0) * 60, 3},  // p1 0→10m; p2 and M after the opening
					"api review": {(30 + 20 + 0) * 60, 3}, // to 40m: p1 from 10m, p2 from 20m, M from 40m
					"api build":  {3 * 600, 3},
					"api deploy": {3 * 600, 3},
				},
			},
		},
	})
}

func TestDefinition_Rolling_Windows(t *testing.T) {
	cfg := DefaultConfig()
	dora2024, err := ReportTierSet(2024)
	require.NoError(t, err)
	cfg.TierSets = []TierSet{dora2024}
	// Deployments 40, 10 and 2 days and 1 hour before now; the one 10 days
	// ago failed, recovered 2 hours later by the next one.
	now := at(days(40))
	e := apply(t, cfg,
		succeeded(api, "d1", "", 0),
		failed(api, "d2", "ProgressDeadlineExceeded", days(30)),
		succeeded(api, "d3", "", days(30)+2*time.Hour),
		succeeded(api, "d4", "", days(38)),
		succeeded(api, "d5", "", days(40)-time.Hour),
		succeeded(api, "d6", "", days(40)+time.Hour), // in the future: not yet in any window
	)
	s := e.SnapshotAt(now)
	checkRolling(t, s.Rolling, map[string]rollingWant{
		// The history starts 40 days back (d1): every window is observed.
		"api 1d": {coverage: 1, frequency: 1, cfr: v(0), rework: v(0), levels: levels4(df, LevelHigh, cfr, LevelElite, overall, LevelHigh)},
		"api 7d": {coverage: 1, frequency: 2.0 / 7, cfr: v(0), rework: v(0), levels: levels4(df, LevelHigh, cfr, LevelElite, overall, LevelHigh)},
		// d2 (failed), d3, d4, d5: 3 successes in 30 days; 1 of 4 failed.
		"api 30d": {coverage: 1, frequency: 3.0 / 30, cfr: v(0.25), recovery: v(7200), rework: v(0),
			levels: levels4(df, LevelMedium, cfr, LevelLow, rt, LevelHigh, overall, LevelLow)},
	})
	// Windows are (now-w, now]: a deployment exactly 1 day before now is
	// out of the 1d window.
	s = e.SnapshotAt(at(days(39)))
	assert.InDelta(t, 0, rollingOf(s.Rolling)["api 1d"].frequency, 1e-9)
	s = e.SnapshotAt(at(days(39) - time.Nanosecond))
	assert.InDelta(t, 1, rollingOf(s.Rolling)["api 1d"].frequency, 1e-9)
}

// TestDefinition_Rolling_ShortHistory: windows longer than the history
// seen are computed over the observed part, report their coverage, and
// get no levels below min_window_coverage (default 0.5). Before, the
// 30-day frequency divided by 30 days and read "low" on day three.
func TestDefinition_Rolling_ShortHistory(t *testing.T) {
	cfg := DefaultConfig()
	dora2024, err := ReportTierSet(2024)
	require.NoError(t, err)
	cfg.TierSets = []TierSet{dora2024}
	// An incident 3 days before now (resolved an hour later) starts the
	// history; 6 successful deployments after it, the last 2 in the last
	// day.
	e := apply(t, cfg,
		incident(event.IncidentOpened, api, "i0", 0),
		incident(event.IncidentResolved, api, "i0", time.Hour),
		succeeded(api, "d1", "", 6*time.Hour),
		succeeded(api, "d2", "", days(1)),
		succeeded(api, "d3", "", days(1)+time.Hour),
		succeeded(api, "d4", "", days(2)-time.Hour),
		succeeded(api, "d5", "", days(2)+time.Hour),
		succeeded(api, "d6", "", days(3)-time.Hour),
	)
	s := e.SnapshotAt(at(days(3)))
	checkRolling(t, s.Rolling, map[string]rollingWant{
		// The last day is wholly observed: 2 a day, more than daily: elite.
		"api 1d": {coverage: 1, frequency: 2, cfr: v(0), rework: v(0), levels: levels4(df, LevelElite, cfr, LevelElite, overall, LevelElite)},
		// 3 of 7 days observed (0.43 < 0.5): 6 deployments / 3 days, no levels.
		"api 7d": {coverage: 3.0 / 7, frequency: 2, cfr: v(0), rework: v(0), levels: map[string]Level{}},
		// 3 of 30 days: 6 / 3 days, not 6 / 30 (0.2, which read "high").
		"api 30d": {coverage: 0.1, frequency: 2, cfr: v(0), rework: v(0), levels: map[string]Level{}},
	})

	// A day later 4 of 7 days are observed (0.57): the week gets levels,
	// over 6 deployments in 4 days (1.5 a day: elite).
	s = e.SnapshotAt(at(days(4)))
	checkRolling(t, s.Rolling, map[string]rollingWant{
		"api 1d":  {coverage: 1, frequency: 0, levels: levels4(df, LevelLow, overall, LevelLow)},
		"api 7d":  {coverage: 4.0 / 7, frequency: 1.5, cfr: v(0), rework: v(0), levels: levels4(df, LevelElite, cfr, LevelElite, overall, LevelElite)},
		"api 30d": {coverage: 4.0 / 30, frequency: 1.5, cfr: v(0), rework: v(0), levels: map[string]Level{}},
	})

	// Less than a day observed: a rate per day over at least one day, not
	// extrapolated from 7 hours.
	e = apply(t, cfg, succeeded(api, "d1", "", 0), succeeded(api, "d2", "", time.Hour))
	s = e.SnapshotAt(at(7 * time.Hour))
	checkRolling(t, s.Rolling, map[string]rollingWant{
		"api 1d":  {coverage: 7.0 / 24, frequency: 2, cfr: v(0), rework: v(0), levels: map[string]Level{}},
		"api 7d":  {coverage: 7.0 / 168, frequency: 2, cfr: v(0), rework: v(0), levels: map[string]Level{}},
		"api 30d": {coverage: 7.0 / 720, frequency: 2, cfr: v(0), rework: v(0), levels: map[string]Level{}},
	})

	// min_window_coverage 0 gives levels from the first deployment on;
	// 1 only to wholly observed windows.
	cfg.MinWindowCoverage = 0
	e = apply(t, cfg, succeeded(api, "d1", "", 0))
	assert.NotEmpty(t, rollingOf(e.SnapshotAt(at(time.Hour)).Rolling)["api 30d"].levels)
	cfg.MinWindowCoverage = 1
	e = apply(t, cfg, succeeded(api, "d1", "", 0))
	assert.Empty(t, rollingOf(e.SnapshotAt(at(days(30) - time.Nanosecond)).Rolling)["api 30d"].levels)
	assert.NotEmpty(t, rollingOf(e.SnapshotAt(at(days(30))).Rolling)["api 30d"].levels)
}

func TestDefinition_Rolling_Bounded(t *testing.T) {
	e := apply(t, DefaultConfig(), history(api))
	// One deployment an hour for 100 days, each with a lead time.
	for i := range 2400 {
		rev := fmt.Sprintf("rev%04d", i)
		d := time.Duration(i) * time.Hour
		_, err := e.Apply(withCommitTime(succeeded(api, rev, rev, d), d-time.Minute))
		require.NoError(t, err)
	}
	s := e.services[api]
	// Only the longest window (30 days = 720 hours) is kept.
	assert.LessOrEqual(t, len(s.history), 721)
	assert.GreaterOrEqual(t, len(s.history), 720)
	assert.LessOrEqual(t, len(s.leadTimes), 721)
	assert.True(t, cap(s.history) < 4*721, "the backing array does not grow without end: %d", cap(s.history))
	rolling := rollingOf(e.SnapshotAt(at(2399 * time.Hour)).Rolling)
	assert.InDelta(t, 24, rolling["api 1d"].frequency, 1e-9)
	assert.InDelta(t, 24, rolling["api 30d"].frequency, 1e-9)
	assert.Equal(t, v(60), rolling["api 30d"].leadTime)

	// And a count bounds a burst within the window.
	e = apply(t, DefaultConfig(), history(api))
	for i := range maxHistoryPerService + 100 {
		rev := fmt.Sprintf("rev%05d", i)
		_, err := e.Apply(withCommitTime(succeeded(api, rev, rev, time.Duration(i)*time.Second), 0))
		require.NoError(t, err)
	}
	assert.Len(t, e.services[api].history, maxHistoryPerService)
	assert.Len(t, e.services[api].leadTimes, maxLeadTimesPerService)
}

func TestDefinition_Level_DORA2024(t *testing.T) {
	ts, err := ReportTierSet(2024)
	require.NoError(t, err)
	assert.Equal(t, "dora-2024", ts.Name)
	h := time.Hour.Seconds()
	checkLevels(t, ts, []levelCase{
		{df, 2, LevelElite}, {df, 1, LevelHigh}, {df, 1.0 / 7, LevelHigh}, {df, 0.1, LevelMedium}, {df, 1.0 / 30, LevelMedium}, {df, 0.03, LevelLow}, {df, 0, LevelLow},
		{lt, 23 * h, LevelElite}, {lt, 24 * h, LevelHigh}, {lt, 7 * 24 * h, LevelHigh}, {lt, 30 * 24 * h, LevelMedium}, {lt, 31 * 24 * h, LevelLow},
		// 2024's medium cluster had a lower failure rate (10 %) than the
		// high one (20 %): by this metric alone nothing is medium.
		{cfr, 0.05, LevelElite}, {cfr, 0.06, LevelHigh}, {cfr, 0.20, LevelHigh}, {cfr, 0.21, LevelLow},
		{rt, 0.5 * h, LevelElite}, {rt, h, LevelHigh}, {rt, 23 * h, LevelHigh}, {rt, 24 * h, LevelLow},
	})
}

func TestDefinition_Level_DORA2023(t *testing.T) {
	ts, err := ReportTierSet(2023)
	require.NoError(t, err)
	assert.Equal(t, "dora-2023", ts.Name)
	h := time.Hour.Seconds()
	checkLevels(t, ts, []levelCase{
		{df, 2, LevelElite}, {df, 1.0 / 7, LevelHigh}, {df, 1.0 / 30, LevelMedium}, {df, 0.03, LevelLow},
		{lt, 23 * h, LevelElite}, {lt, 7 * 24 * h, LevelHigh}, {lt, 30 * 24 * h, LevelMedium}, {lt, 31 * 24 * h, LevelLow},
		{cfr, 0.05, LevelElite}, {cfr, 0.10, LevelHigh}, {cfr, 0.15, LevelMedium}, {cfr, 0.16, LevelLow},
		{rt, 0.5 * h, LevelElite}, {rt, 23 * h, LevelHigh}, {rt, 7 * 24 * h, LevelMedium}, {rt, 8 * 24 * h, LevelLow},
	})
	_, err = ReportTierSet(2022)
	require.ErrorContains(t, err, "no DORA report table for 2022")
}

func TestDefinition_Level_Custom(t *testing.T) {
	e, h, m := DefaultCustomTiers()
	require.NoError(t, ValidateCustomTiers(e, h, m))
	ts := CustomTierSet("team", e, h, m)
	hour := time.Hour.Seconds()
	// The team's targets: more than 10 a day, under 2 h, under 5 %, under
	// 30 min are elite; the bounds themselves are not.
	checkLevels(t, ts, []levelCase{
		{df, 11, LevelElite}, {df, 10, LevelHigh}, {df, 2, LevelHigh}, {df, 1, LevelMedium}, {df, 0.2, LevelMedium}, {df, 1.0 / 7, LevelLow},
		{lt, 1.9 * hour, LevelElite}, {lt, 2 * hour, LevelHigh}, {lt, 23 * hour, LevelHigh}, {lt, 24 * hour, LevelMedium}, {lt, 7 * 24 * hour, LevelLow},
		{cfr, 0.049, LevelElite}, {cfr, 0.05, LevelHigh}, {cfr, 0.10, LevelMedium}, {cfr, 0.15, LevelLow},
		{rt, 29 * 60, LevelElite}, {rt, 30 * 60, LevelHigh}, {rt, 4 * hour, LevelMedium}, {rt, 24 * hour, LevelLow},
	})
	err := ValidateCustomTiers(e, CustomTier{DeploymentsPerDay: 20, LeadTime: time.Hour, ChangeFailureRate: 0.5, RecoveryTime: time.Minute}, m)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "high::deployment_frequency: 20 is above elite's 10")
	assert.Contains(t, err.Error(), "high::lead_time: 1h0m0s is below elite's 2h0m0s")
	assert.Contains(t, err.Error(), "medium::change_failure_rate: 0.15 is below high's 0.5")
}

func TestDefinition_Level_Overall(t *testing.T) {
	ts, err := ReportTierSet(2024)
	require.NoError(t, err)
	p := RollingPoint{DeploymentFrequency: 3, LeadTimeMedian: v(3600), ChangeFailureRate: v(0.1), RecoveryTimeMedian: Value{}}
	got := map[string]Level{}
	for _, l := range levels(ts, p) {
		assert.Equal(t, "dora-2024", l.TierSet)
		got[l.Metric] = l.Level
	}
	// The lowest level of the metrics that have a value; a metric without
	// one (no recovery in the window) neither helps nor hurts.
	assert.Equal(t, levels4(df, LevelElite, lt, LevelElite, cfr, LevelHigh, overall, LevelHigh), got)
}

type levelCase struct {
	metric string
	value  float64
	want   Level
}

func checkLevels(t *testing.T, ts TierSet, cases []levelCase) {
	t.Helper()
	for _, c := range cases {
		assert.Equal(t, c.want, ts.Classify(c.metric, c.value), "%s %s = %v", ts.Name, c.metric, c.value)
	}
}

func TestDefinition_LeadTime_PendingChangeExpiry(t *testing.T) {
	maxAge := func(d time.Duration) func(*Config) { return func(c *Config) { c.PendingChangeMaxAge = d } }
	runDefinitions(t, []definitionCase{
		{
			name:   "a commit older than pending_change_max_age when it is deployed records no lead time",
			cfg:    maxAge(24 * time.Hour),
			events: []event.Event{history(api), change("c1", "history-api", 0), succeeded(api, "d1", "c1", 24*time.Hour+time.Second)},
			want:   expect{deployments: map[string]uint64{"api success": 2}},
		},
		{
			name:   "a commit exactly pending_change_max_age old is recorded",
			cfg:    maxAge(24 * time.Hour),
			events: []event.Event{history(api), change("c1", "history-api", 0), succeeded(api, "d1", "c1", 24*time.Hour)},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {days(1).Seconds(), 1}},
			},
		},
		{
			name: "age is event time against the newest event: any newer event expires older commits",
			cfg:  maxAge(24 * time.Hour),
			events: []event.Event{
				history(api), change("c1", "history-api", 0),
				change("other", "", 30*time.Hour),
				// Reported late, with the time of the deployment itself.
				succeeded(api, "d1", "c1", 30*time.Minute),
			},
			want: expect{deployments: map[string]uint64{"api success": 2}},
		},
		{
			name: "an old commit reported after a newer one expires too",
			cfg:  maxAge(24 * time.Hour),
			events: []event.Event{
				history(api),
				change("c2", "", 20*time.Hour),
				change("c1", "history-api", 0),
				succeeded(api, "d1", "c1", 24*time.Hour+time.Minute),
			},
			want: expect{deployments: map[string]uint64{"api success": 2}},
		},
		{
			name: "the walk to earlier commits stops at an expired one",
			cfg:  maxAge(24 * time.Hour),
			events: []event.Event{
				history(api),
				change("c1", "history-api", 0),
				change("c2", "c1", 20*time.Hour),
				succeeded(api, "d1", "c2", 25*time.Hour), // c1 is 25h old, c2 5h
			},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {5 * 3600, 1}},
			},
		},
		{
			name:   "a deployment's own commit time still counts for an expired commit",
			cfg:    maxAge(24 * time.Hour),
			events: []event.Event{history(api), change("c1", "history-api", 0), withCommitTime(succeeded(api, "d1", "c1", 25*time.Hour), 0)},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {25 * 3600, 1}},
			},
		},
		{
			name:   "the default keeps commits 90 days",
			events: []event.Event{history(api), change("c1", "history-api", 0), succeeded(api, "d1", "c1", days(89))},
			want: expect{
				deployments: map[string]uint64{"api success": 2},
				leadTime:    map[string][2]float64{"api": {days(89).Seconds(), 1}},
			},
		},
		{
			name:   "by default a commit over 90 days old is forgotten, not dropped as too_long",
			events: []event.Event{history(api), change("c1", "history-api", 0), succeeded(api, "d1", "c1", days(90)+time.Second)},
			want:   expect{deployments: map[string]uint64{"api success": 2}},
		},
	})
}

// Expired commits leave memory as newer events arrive, not only when a
// deployment looks them up.
func TestPendingChangesExpireFromMemory(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PendingChangeMaxAge = time.Hour
	var evs []event.Event
	for i := range 100 {
		evs = append(evs, change(fmt.Sprintf("c%d", i), "", time.Duration(i)*time.Minute))
	}
	e := apply(t, cfg, evs...)
	// The newest is at 99m: commits before 39m are gone.
	assert.Equal(t, 61, e.commits.len())
	assert.Nil(t, e.commits.get("c38"))
	assert.NotNil(t, e.commits.get("c39"))
	require.Error(t, func() error { c := DefaultConfig(); c.PendingChangeMaxAge = 0; return c.Validate() }())
}
