package engine

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// TestRollingMatchesOracle drives random rolling histories (out-of-order
// and future times, change failures marked after the fact, also on records
// the history forgot, expiry by age and by count) through the state
// methods the engine uses, and compares SnapshotAt's rolling points and
// levels with the straightforward computation (oracleRolling) at many nows
// moving forward, repeating, and jumping both ways.
func TestRollingMatchesOracle(t *testing.T) {
	short := DefaultConfig()
	short.RollingWindows = []time.Duration{time.Hour, 90 * time.Minute, 12 * time.Hour}
	for _, tc := range []struct {
		name  string
		cfg   Config
		seed  uint64
		steps int
		// unit is the time granularity: coarse, so that entries often sit
		// exactly on a window boundary.
		unit time.Duration
	}{
		{"default windows", DefaultConfig(), 1, 6000, time.Hour},
		{"short windows", short, 2, 6000, 5 * time.Minute},
		{"short windows, other seed", short, 3, 6000, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkRollingMatchesOracle(t, tc.cfg, tc.seed, tc.steps, tc.unit)
		})
	}
}

func checkRollingMatchesOracle(t *testing.T, cfg Config, seed uint64, steps int, unit time.Duration) {
	rnd := rand.New(rand.NewPCG(seed, seed))
	e, err := New(cfg, t0)
	require.NoError(t, err)
	var services []event.Service
	for i := range 12 {
		env := "production"
		if i == 11 {
			env = "staging"
		}
		services = append(services, event.Service{Namespace: "ns", Name: fmt.Sprintf("svc-%d", i), Environment: env})
	}
	// records are every history record made, forgotten ones included.
	records := map[event.Service][]*deploymentState{}
	now := t0
	randTime := func() time.Time {
		// Mostly around now, sometimes far back or in the future.
		switch rnd.IntN(10) {
		case 0:
			return now.Add(time.Duration(rnd.IntN(100)) * unit)
		case 1:
			return now.Add(-time.Duration(rnd.IntN(2000)) * unit)
		default:
			return now.Add(-time.Duration(rnd.IntN(30)) * unit)
		}
	}
	mutate := func(svc event.Service, s *serviceState) {
		at := randTime()
		if at.After(e.newest) {
			e.newest = at
		}
		switch k := rnd.IntN(10); {
		case k < 5:
			d := &deploymentState{failureCounted: rnd.IntN(8) == 0}
			s.addDeployment(d, at, rnd.IntN(4) != 0, rnd.IntN(5) == 0, e.cutoff(), e.cfg.RollingWindows)
			records[svc] = append(records[svc], d)
		case k < 7:
			s.addLeadTime(at, float64(rnd.IntN(50))*3600, e.cutoff())
		case k < 9:
			s.addRecovery(at, float64(rnd.IntN(20))*600, e.cutoff())
		default:
			if ds := records[svc]; len(ds) > 0 {
				d := ds[rnd.IntN(len(ds))]
				if !d.failureCounted {
					d.failureCounted = true
					s.markChangeFailure(d.history)
				}
			}
		}
	}
	check := func(step int) {
		want := e.oracleRolling(now)
		got := e.SnapshotAt(now).Rolling
		for i := range want {
			if i < len(got) && !reflect.DeepEqual(want[i], got[i]) {
				s := e.services[want[i].Service]
				// What to look at first when they differ.
				t.Logf("first difference: %s %s at now %d: counts cache %+v; %d history records, %d lead times, %d recoveries",
					want[i].Service.Name, want[i].Window, now.UnixNano(), s.rolling.counts, len(s.history), len(s.leadTimes), len(s.recoveries))
				break
			}
		}
		require.Equal(t, want, got, "step %d, now %s", step, now)
	}
	// First one service past the history's count limit: entries within a
	// few units of now, now moving slowly.
	longest := 0
	for i := range maxHistoryPerService * 3 {
		mutate(services[0], e.service(services[0], time.Time{}))
		longest = max(longest, len(e.services[services[0]].history))
		if i%4 == 0 {
			now = now.Add(unit / 100)
		}
		if i%97 == 0 {
			check(-i)
			check(-i)
		}
	}
	require.Equal(t, maxHistoryPerService, longest, "the history reached its count limit")
	for step := range steps {
		svc := services[rnd.IntN(len(services))]
		mutate(svc, e.service(svc, time.Time{}))
		switch r := rnd.IntN(20); {
		case r < 8:
			now = now.Add(time.Duration(rnd.IntN(3)) * unit)
		case r == 8:
			now = now.Add(time.Duration(rnd.IntN(500)) * unit)
		case r == 9:
			now = now.Add(-time.Duration(rnd.IntN(50)) * unit)
		}
		if step%3 == 0 {
			check(step)
			// The same now again and a little later, without a change:
			// from the cache.
			check(step)
			now = now.Add(time.Duration(rnd.IntN(2)) * unit / 2)
			check(step)
		}
	}
}

// TestRollingCoverageNotCached: the cached rolling points follow the
// coverage, which moves with now until the windows are observed, and with
// the history start when an older event (an import) moves it back.
func TestRollingCoverageNotCached(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RollingWindows = []time.Duration{24 * time.Hour}
	e := apply(t, cfg, succeeded(api, "d1", "r1", 0))
	cov := func(now time.Duration) float64 { return e.SnapshotAt(at(now)).Rolling[0].Coverage }
	assert.InDelta(t, 6.0/24, cov(6*time.Hour), 1e-9)
	assert.InDelta(t, 12.0/24, cov(12*time.Hour), 1e-9, "later, same inputs")
	assert.InDelta(t, 1, cov(days(2)), 1e-9)
	assert.InDelta(t, 6.0/24, cov(6*time.Hour), 1e-9, "back to an earlier now")
	// An incident changes no rolling input but the history start.
	_, err := e.Apply(incident(event.IncidentOpened, api, "i0", -6*time.Hour))
	require.NoError(t, err)
	assert.InDelta(t, 12.0/24, cov(6*time.Hour), 1e-9, "the history start moved back 6h")
}
