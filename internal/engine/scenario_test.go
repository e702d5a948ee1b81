package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// expect is every cumulative metric of a snapshot, rendered like the
// helpers in engine_test.go: counters as "service label" -> value,
// histograms as "service" (or "service stage") -> {sum of seconds, count}.
// A nil map expects no series.
type expect struct {
	deployments map[string]uint64 // label: status
	failures    map[string]uint64 // label: reason
	dropped     map[string]uint64 // label: reason
	incidents   map[string]uint64 // label: attributed
	rework      map[string]uint64 // label: empty, so the key ends with a space
	leadTime    map[string][2]float64
	stages      map[string][2]float64
	recovery    map[string][2]float64
}

func checkCumulative(t *testing.T, s Snapshot, want expect) {
	t.Helper()
	assert.Equal(t, nonNil(want.deployments), counters(s.Deployments), "platform.deployments")
	assert.Equal(t, nonNil(want.failures), counters(s.Failures), "platform.deployment.failures")
	assert.Equal(t, nonNil(want.dropped), counters(s.LeadTimeDropped), "platform.lead_time.dropped")
	assert.Equal(t, nonNil(want.incidents), counters(s.Incidents), "platform.incidents")
	assert.Equal(t, nonNil(want.rework), counters(s.Rework), "platform.deployments.rework")
	assert.Equal(t, nonNilH(want.leadTime), observations(s.LeadTime), "platform.lead_time")
	assert.Equal(t, nonNilH(want.stages), stageObservations(s.LeadTimeStages), "platform.lead_time.stage")
	assert.Equal(t, nonNilH(want.recovery), observations(s.RecoveryTime), "platform.recovery_time")
}

func stageObservations(points []HistogramPoint) map[string][2]float64 {
	m := map[string][2]float64{}
	for _, p := range points {
		m[p.Service.Name+" "+p.Label] = [2]float64{p.Histogram.Sum, float64(p.Histogram.Count)}
	}
	return m
}

// rollingWant is one service's rolling values over one window, with the
// levels by the scenario's only tier set (DORA 2024), by metric.
type rollingWant struct {
	frequency float64
	leadTime  Value
	cfr       Value
	recovery  Value
	rework    Value
	levels    map[string]Level
}

func v(x float64) Value { return Value{x, true} }

var none Value

// rollingOf renders rolling points as "service window" -> values.
func rollingOf(points []RollingPoint) map[string]rollingWant {
	m := map[string]rollingWant{}
	for _, p := range points {
		w := rollingWant{
			frequency: p.DeploymentFrequency,
			leadTime:  p.LeadTimeMedian,
			cfr:       p.ChangeFailureRate,
			recovery:  p.RecoveryTimeMedian,
			rework:    p.ReworkRate,
			levels:    map[string]Level{},
		}
		for _, l := range p.Levels {
			w.levels[l.Metric] = l.Level
		}
		m[p.Service.Name+" "+p.Window] = w
	}
	return m
}

func checkRolling(t *testing.T, got []RollingPoint, want map[string]rollingWant) {
	t.Helper()
	g := rollingOf(got)
	require.Equal(t, len(want), len(g), "rolling series: %v", g)
	for k, w := range want {
		gw, ok := g[k]
		if !assert.True(t, ok, "no rolling values for %s", k) {
			continue
		}
		assert.InDelta(t, w.frequency, gw.frequency, 1e-9, "%s deployment frequency", k)
		for _, x := range []struct {
			name      string
			want, got Value
		}{{"lead time median", w.leadTime, gw.leadTime}, {"change failure rate", w.cfr, gw.cfr}, {"recovery time median", w.recovery, gw.recovery}, {"rework rate", w.rework, gw.rework}} {
			assert.Equal(t, x.want.OK, x.got.OK, "%s %s defined", k, x.name)
			assert.InDelta(t, x.want.V, x.got.V, 1e-9, "%s %s", k, x.name)
		}
		assert.Equal(t, w.levels, gw.levels, "%s levels", k)
	}
}

// apply runs events through a new engine.
func apply(t *testing.T, cfg Config, events ...event.Event) *Engine {
	t.Helper()
	e, err := New(cfg, t0)
	require.NoError(t, err)
	for i, ev := range events {
		_, err := e.Apply(ev)
		require.NoError(t, err, "event %d", i)
	}
	return e
}

func days(n float64) time.Duration { return time.Duration(n * float64(24*time.Hour)) }

func asHotfix(ev event.Event) event.Event {
	ev.Hotfix = true
	return ev
}

// levels4 builds a levels map from (metric, level) pairs.
func levels4(pairs ...any) map[string]Level {
	m := map[string]Level{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1].(Level)
	}
	return m
}

const (
	df      = MetricDeploymentFrequency
	lt      = MetricLeadTime
	cfr     = MetricChangeFailureRate
	rt      = MetricRecoveryTime
	overall = MetricOverall
)

// TestScenarios replays delivery histories through the engine and checks
// every metric, cumulative and rolling, against values computed by hand
// (the comments show the arithmetic). The rolling values are taken over
// 1 and 7 days and judged by the DORA 2024 table alone, to keep the tables
// readable; TestDefinition_Level_* cover the other tier sets.
func TestScenarios(t *testing.T) {
	cart := event.Service{Namespace: "shop", Name: "cart", Environment: "production"}
	checkout := event.Service{Namespace: "shop", Name: "checkout", Environment: "production"}
	db := event.Service{Namespace: "shop", Name: "db", Environment: "production"}
	webStaging := event.Service{Namespace: "shop", Name: "web", Environment: "staging"}
	dora2024, err := ReportTierSet(2024)
	require.NoError(t, err)

	tests := []struct {
		name    string
		events  []event.Event
		now     time.Duration
		want    expect
		rolling map[string]rollingWant
	}{
		{
			// cart and checkout deploy from one repository: every commit
			// is a change of both; each records it once, at its own first
			// production deployment of it.
			name: "monorepo: two services sharing commits",
			events: []event.Event{
				succeeded(cart, "cart-0", "m0", -2*time.Hour), // start of history
				succeeded(checkout, "checkout-0", "m0", -2*time.Hour),
				change("m1", "m0", 0),
				change("m2", "m1", 30*time.Minute),
				succeeded(cart, "cart-1", "m2", time.Hour),           // m1 60m, m2 30m
				succeeded(checkout, "checkout-1", "m1", 2*time.Hour), // m1 120m
				succeeded(checkout, "checkout-2", "m2", 3*time.Hour), // m2 150m
			},
			now: 4 * time.Hour,
			want: expect{
				deployments: map[string]uint64{"cart success": 2, "checkout success": 3},
				leadTime:    map[string][2]float64{"cart": {3600 + 1800, 2}, "checkout": {7200 + 9000, 2}},
			},
			rolling: map[string]rollingWant{
				// 2 deployments in the day; median of 30m and 60m.
				"cart 1d": {frequency: 2, leadTime: v(2700), cfr: v(0), rework: v(0), levels: levels4(df, LevelElite, lt, LevelElite, cfr, LevelElite, overall, LevelElite)},
				// 2/7 a day is between weekly and daily: high.
				"cart 7d":     {frequency: 2.0 / 7, leadTime: v(2700), cfr: v(0), rework: v(0), levels: levels4(df, LevelHigh, lt, LevelElite, cfr, LevelElite, overall, LevelHigh)},
				"checkout 1d": {frequency: 3, leadTime: v(8100), cfr: v(0), rework: v(0), levels: levels4(df, LevelElite, lt, LevelElite, cfr, LevelElite, overall, LevelElite)},
				"checkout 7d": {frequency: 3.0 / 7, leadTime: v(8100), cfr: v(0), rework: v(0), levels: levels4(df, LevelHigh, lt, LevelElite, cfr, LevelElite, overall, LevelHigh)},
			},
		},
		{
			name: "rollback",
			events: []event.Event{
				succeeded(api, "d0", "r0", -time.Hour), // start of history
				change("r1", "r0", 0),
				started(api, "d1", "r1", 10*time.Minute),
				succeeded(api, "d1", "r1", 20*time.Minute), // lead 20m: deploy stage 10m (started 10m, done 20m)
				rolledBack(api, "d2", "d1", time.Hour),
				succeeded(api, "d2", "r0", time.Hour+5*time.Minute), // r0 shipped before: no lead time
			},
			now: 2 * time.Hour,
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				failures:    map[string]uint64{"api rollback": 1},
				rework:      map[string]uint64{"api ": 1}, // the rollback
				leadTime:    map[string][2]float64{"api": {1200, 1}},
				stages:      map[string][2]float64{"api deploy": {600, 1}},
				// From d1's finish (20m) to the completed rollback (65m).
				recovery: map[string][2]float64{"api": {2700, 1}},
			},
			rolling: map[string]rollingWant{
				// d0, d1, d2 succeeded; d1 failed (1/3); d2 is rework (1/3);
				// recovery 45m < 1h: elite; CFR 33 % > 20 %: low.
				"api 1d": {frequency: 3, leadTime: v(1200), cfr: v(1.0 / 3), recovery: v(2700), rework: v(1.0 / 3),
					levels: levels4(df, LevelElite, lt, LevelElite, cfr, LevelLow, rt, LevelElite, overall, LevelLow)},
				"api 7d": {frequency: 3.0 / 7, leadTime: v(1200), cfr: v(1.0 / 3), recovery: v(2700), rework: v(1.0 / 3),
					levels: levels4(df, LevelHigh, lt, LevelElite, cfr, LevelLow, rt, LevelElite, overall, LevelLow)},
			},
		},
		{
			name: "hotfix",
			events: []event.Event{
				history(api), // -24h
				withCommitTime(succeeded(api, "d1", "h1", 0), -30*time.Minute),                                   // lead 30m
				asHotfix(started(api, "d2", "h2", 2*time.Hour)),                                                  // fails d1
				withCommitTime(succeeded(api, "d2", "h2", 2*time.Hour+10*time.Minute), time.Hour+50*time.Minute), // lead 20m
			},
			now: 3 * time.Hour,
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				failures:    map[string]uint64{"api hotfix": 1},
				rework:      map[string]uint64{"api ": 1},
				leadTime:    map[string][2]float64{"api": {1800 + 1200, 2}},
				stages:      map[string][2]float64{"api deploy": {600, 1}}, // d2: started 2h, done 2h10m
				// From d1's finish (0) to the hotfix in production (2h10m).
				recovery: map[string][2]float64{"api": {7800, 1}},
			},
			rolling: map[string]rollingWant{
				// The history deployment (-24h) is outside the day.
				"api 1d": {frequency: 2, leadTime: v(1500), cfr: v(0.5), recovery: v(7800), rework: v(0.5),
					levels: levels4(df, LevelElite, lt, LevelElite, cfr, LevelLow, rt, LevelHigh, overall, LevelLow)},
				"api 7d": {frequency: 3.0 / 7, leadTime: v(1500), cfr: v(1.0 / 3), recovery: v(7800), rework: v(1.0 / 3),
					levels: levels4(df, LevelHigh, lt, LevelElite, cfr, LevelLow, rt, LevelHigh, overall, LevelLow)},
			},
		},
		{
			// An incident 30 h after api's only deployment (window 24 h) and
			// one on db, which never deployed: outages, not change failures.
			name: "unattributed outage",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, db, "db-1", time.Hour),
				incident(event.IncidentOpened, api, "inc-1", 30*time.Hour),
				incident(event.IncidentResolved, api, "inc-1", 31*time.Hour),
			},
			now: 32 * time.Hour,
			want: expect{
				deployments: map[string]uint64{"api success": 1},
				incidents:   map[string]uint64{"api false": 1, "db false": 1},
			},
			rolling: map[string]rollingWant{
				// db never deployed: no rolling values. api's deployment is
				// outside the last day.
				"api 1d": {frequency: 0, levels: levels4(df, LevelLow, overall, LevelLow)},
				// One deployment a week is high ("between once per day and
				// once per week").
				"api 7d": {frequency: 1.0 / 7, cfr: v(0), rework: v(0), levels: levels4(df, LevelHigh, cfr, LevelElite, overall, LevelHigh)},
			},
		},
		{
			// An alert fires, resolves and fires again (a new incident, as
			// Alertmanager's new startsAt makes it); the first one is also
			// reopened by hand. d1 fails once and recovers once, at the
			// first resolution; every incident counts once.
			name: "flapping incident",
			events: []event.Event{
				history(api),
				withCommitTime(succeeded(api, "d1", "f1", 0), -10*time.Minute), // lead 10m
				incident(event.IncidentOpened, api, "inc-a", 10*time.Minute),
				incident(event.IncidentResolved, api, "inc-a", 12*time.Minute), // recovery 12m
				incident(event.IncidentOpened, api, "inc-b", 14*time.Minute),
				withID(incident(event.IncidentOpened, api, "inc-a", 16*time.Minute), "reopen/inc-a"),
				withCommitTime(succeeded(api, "d2", "f2", 17*time.Minute), 15*time.Minute), // lead 2m; incidents open: rework
				incident(event.IncidentResolved, api, "inc-b", 20*time.Minute),
				withID(incident(event.IncidentResolved, api, "inc-a", 21*time.Minute), "reresolve/inc-a"),
			},
			now: time.Hour,
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				failures:    map[string]uint64{"api incident": 1},
				incidents:   map[string]uint64{"api true": 2},
				rework:      map[string]uint64{"api ": 1},
				leadTime:    map[string][2]float64{"api": {600 + 120, 2}},
				recovery:    map[string][2]float64{"api": {720, 1}},
			},
			rolling: map[string]rollingWant{
				"api 1d": {frequency: 2, leadTime: v(360), cfr: v(0.5), recovery: v(720), rework: v(0.5),
					levels: levels4(df, LevelElite, lt, LevelElite, cfr, LevelLow, rt, LevelElite, overall, LevelLow)},
				"api 7d": {frequency: 3.0 / 7, leadTime: v(360), cfr: v(1.0 / 3), recovery: v(720), rework: v(1.0 / 3),
					levels: levels4(df, LevelHigh, lt, LevelElite, cfr, LevelLow, rt, LevelElite, overall, LevelLow)},
			},
		},
		{
			name: "clock skew and absurd lead times",
			events: []event.Event{
				history(api),
				withCommitTime(succeeded(api, "d1", "k1", 0), 5*time.Minute), // committed after it shipped
				change("c1", "k1", 10*time.Minute),
				succeeded(api, "d2", "c1", 20*time.Minute), // lead 10m
				withCommitTime(succeeded(api, "d3", "k0", 30*time.Minute), -days(100)),
			},
			now: time.Hour,
			want: expect{
				deployments: map[string]uint64{"api success": 4},
				dropped:     map[string]uint64{"api clock_skew": 1, "api too_long": 1},
				leadTime:    map[string][2]float64{"api": {600, 1}},
			},
			rolling: map[string]rollingWant{
				"api 1d": {frequency: 3, leadTime: v(600), cfr: v(0), rework: v(0), levels: levels4(df, LevelElite, lt, LevelElite, cfr, LevelElite, overall, LevelElite)},
				"api 7d": {frequency: 4.0 / 7, leadTime: v(600), cfr: v(0), rework: v(0), levels: levels4(df, LevelHigh, lt, LevelElite, cfr, LevelElite, overall, LevelHigh)},
			},
		},
		{
			// The engine starts watching: the first deployment ships s1 and
			// s2, which may have run in production before; they get no lead
			// time. s4, committed before that deployment on a branch and
			// shipped later, is new to production and counts.
			name: "the start of history",
			events: []event.Event{
				change("s1", "s0", -3*time.Hour),
				change("s2", "s1", -2*time.Hour),
				succeeded(api, "d1", "s2", 0),
				change("s3", "s2", 30*time.Minute),
				succeeded(api, "d2", "s3", time.Hour), // lead 30m
				change("s4", "s3", -5*time.Hour),
				succeeded(api, "d3", "s4", 2*time.Hour), // lead 7h
			},
			now: 3 * time.Hour,
			want: expect{
				deployments: map[string]uint64{"api success": 3},
				dropped:     map[string]uint64{"api before_history": 2},
				leadTime:    map[string][2]float64{"api": {1800 + 25200, 2}},
			},
			rolling: map[string]rollingWant{
				"api 1d": {frequency: 3, leadTime: v(13500), cfr: v(0), rework: v(0), levels: levels4(df, LevelElite, lt, LevelElite, cfr, LevelElite, overall, LevelElite)},
				"api 7d": {frequency: 3.0 / 7, leadTime: v(13500), cfr: v(0), rework: v(0), levels: levels4(df, LevelHigh, lt, LevelElite, cfr, LevelElite, overall, LevelHigh)},
			},
		},
		{
			// Five days later nothing was deployed in the last day: the
			// frequency is 0 (low), the ratios and medians have no value.
			// Staging deployments are counted but get no rolling values.
			name: "a service with no deployments in the window",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				succeeded(webStaging, "w1", "", 0),
				started(api, "d2", "", 50*time.Minute),
				failed(api, "d2", "ProgressDeadlineExceeded", time.Hour),
				succeeded(api, "d3", "", 2*time.Hour), // recovery 1h
			},
			now: days(5),
			want: expect{
				deployments: map[string]uint64{"api success": 2, "api failure": 1, "web success": 1},
				failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
				recovery:    map[string][2]float64{"api": {3600, 1}},
			},
			rolling: map[string]rollingWant{
				"api 1d": {frequency: 0, levels: levels4(df, LevelLow, overall, LevelLow)},
				// 2 successes of 3 deployments, one failed; recovery of
				// exactly 1 h is not "less than one hour": high.
				"api 7d": {frequency: 2.0 / 7, cfr: v(1.0 / 3), recovery: v(3600), rework: v(0),
					levels: levels4(df, LevelHigh, cfr, LevelLow, rt, LevelHigh, overall, LevelLow)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.RollingWindows = []time.Duration{24 * time.Hour, 7 * 24 * time.Hour}
			cfg.TierSets = []TierSet{dora2024}
			e := apply(t, cfg, tt.events...)
			s := e.SnapshotAt(at(tt.now))
			checkCumulative(t, s, tt.want)
			checkRolling(t, s.Rolling, tt.rolling)

			// Replaying the same events (a redelivery of everything)
			// changes nothing: those within dedup_window by their ids,
			// older ones because deployments and incidents are counted
			// once by their own ids.
			for _, ev := range tt.events {
				out, err := e.Apply(ev)
				require.NoError(t, err)
				require.False(t, out.Changed, fmt.Sprint(ev))
			}
			again := e.SnapshotAt(at(tt.now))
			assert.Equal(t, s, again)
		})
	}
}
