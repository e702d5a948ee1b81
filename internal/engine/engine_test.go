package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

var (
	t0  = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	api = event.Service{Namespace: "shop", Name: "api", Environment: "production"}
	web = event.Service{Namespace: "shop", Name: "web", Environment: "production"}
)

func at(d time.Duration) time.Time { return t0.Add(d) }

func started(svc event.Service, id, rev string, t time.Duration) event.Event {
	return event.Event{Kind: event.DeploymentStarted, Source: "test", ID: "start/" + id, Time: at(t), Service: svc, DeploymentID: id, Revision: rev}
}

func succeeded(svc event.Service, id, rev string, t time.Duration) event.Event {
	return event.Event{Kind: event.DeploymentSucceeded, Source: "test", ID: "ok/" + id, Time: at(t), Service: svc, DeploymentID: id, Revision: rev}
}

func failed(svc event.Service, id, reason string, t time.Duration) event.Event {
	return event.Event{Kind: event.DeploymentFailed, Source: "test", ID: "fail/" + id, Time: at(t), Service: svc, DeploymentID: id, Reason: reason}
}

func rolledBack(svc event.Service, id, prev string, t time.Duration) event.Event {
	return event.Event{Kind: event.DeploymentRolledBack, Source: "test", ID: "rb/" + id, Time: at(t), Service: svc, DeploymentID: id, PreviousDeploymentID: prev}
}

func committed(rev string, t time.Duration) event.Event {
	return event.Event{Kind: event.ChangeCommitted, Source: "test", ID: "commit/" + rev, Time: at(t), Revision: rev}
}

func incident(kind event.Kind, svc event.Service, id string, t time.Duration) event.Event {
	return event.Event{Kind: kind, Source: "test", ID: fmt.Sprintf("%s/%s", kind, id), Time: at(t), Service: svc, IncidentID: id}
}

func withCommitTime(ev event.Event, t time.Duration) event.Event {
	ev.CommitTime = at(t)
	return ev
}

// history is the first successful deployment of svc, a day before t0: the
// start of the service's history (see METRICS.md, lead time), so that the
// deployments after it record lead times. Its revision is not in any test's
// commit graph.
func history(svc event.Service) event.Event {
	return succeeded(svc, "history-"+svc.Name, "history-"+svc.Name, -24*time.Hour)
}

func withID(ev event.Event, id string) event.Event {
	ev.ID = id
	return ev
}

// counters renders counter points as "service label" -> value.
func counters(points []CounterPoint) map[string]uint64 {
	m := map[string]uint64{}
	for _, p := range points {
		m[p.Service.Name+" "+p.Label] = p.Value
	}
	return m
}

// observations renders histograms as service -> sum of seconds, count.
func observations(points []HistogramPoint) map[string][2]float64 {
	m := map[string][2]float64{}
	for _, p := range points {
		m[p.Service.Name] = [2]float64{p.Histogram.Sum, float64(p.Histogram.Count)}
	}
	return m
}

func TestEngineDefinitions(t *testing.T) {
	tests := []struct {
		name        string
		events      []event.Event
		deployments map[string]uint64
		failures    map[string]uint64
		leadTime    map[string][2]float64 // sum seconds, count
		recovery    map[string][2]float64
		dropped     map[string]uint64 // lead times not recorded, by reason
		incidents   map[string]uint64 // by attributed
	}{
		{
			name: "successful rollout counts one deployment",
			events: []event.Event{
				started(api, "d1", "", 0),
				succeeded(api, "d1", "", 5*time.Minute),
			},
			deployments: map[string]uint64{"api success": 1},
		},
		{
			name: "success reported twice under different ids counts once",
			events: []event.Event{
				succeeded(api, "d1", "", time.Minute),
				withID(succeeded(api, "d1", "", 2*time.Minute), "other-delivery"),
			},
			deployments: map[string]uint64{"api success": 1},
		},
		{
			name: "deployment without a started event is counted at success",
			events: []event.Event{
				succeeded(api, "d1", "abc1234", time.Minute),
				succeeded(web, "d2", "abc1234", time.Minute),
			},
			deployments: map[string]uint64{"api success": 1, "web success": 1},
		},
		{
			name: "failed rollout is a failed deployment and a change failure, recovered by the next success",
			events: []event.Event{
				started(api, "d1", "", 0),
				failed(api, "d1", "ProgressDeadlineExceeded", 10*time.Minute),
				started(api, "d2", "", 20*time.Minute),
				succeeded(api, "d2", "", 25*time.Minute),
			},
			deployments: map[string]uint64{"api failure": 1, "api success": 1},
			failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
			recovery:    map[string][2]float64{"api": {900, 1}},
		},
		{
			name: "failure without a reason gets the generic reason",
			events: []event.Event{
				failed(api, "d1", "", 0),
			},
			deployments: map[string]uint64{"api failure": 1},
			failures:    map[string]uint64{"api failed": 1},
		},
		{
			name: "failed rollout that completes later is a recovery, not a second deployment",
			events: []event.Event{
				started(api, "d1", "", 0),
				failed(api, "d1", "ProgressDeadlineExceeded", 10*time.Minute),
				succeeded(api, "d1", "", 12*time.Minute),
			},
			deployments: map[string]uint64{"api failure": 1},
			failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
			recovery:    map[string][2]float64{"api": {120, 1}},
		},
		{
			name: "rollback of a successful deployment is a change failure, the completed rollback the recovery",
			events: []event.Event{
				started(api, "d1", "", 0),
				succeeded(api, "d1", "", time.Minute),
				rolledBack(api, "d2", "d1", time.Hour),
				succeeded(api, "d2", "", time.Hour+3*time.Minute),
			},
			deployments: map[string]uint64{"api success": 2},
			failures:    map[string]uint64{"api rollback": 1},
			// Recovery runs from the failed deployment (d1 finished at 1m),
			// not from the rollback's start: 1h3m - 1m. (It was 180 s when
			// recovery started at the rollback.)
			recovery: map[string][2]float64{"api": {3720, 1}},
		},
		{
			name: "rollback of an unfinished rollout fails it",
			events: []event.Event{
				started(api, "d1", "", 0),
				rolledBack(api, "d2", "d1", 2*time.Minute),
				succeeded(api, "d2", "", 4*time.Minute),
			},
			deployments: map[string]uint64{"api failure": 1, "api success": 1},
			failures:    map[string]uint64{"api rollback": 1},
			// d1 never finished: its failure starts when it started (0),
			// and ends when the rollback completes (4m). (It was 120 s when
			// recovery started at the rollback.)
			recovery: map[string][2]float64{"api": {240, 1}},
		},
		{
			name: "a failed rollout that is then rolled back counts one failure",
			events: []event.Event{
				started(api, "d1", "", 0),
				failed(api, "d1", "ProgressDeadlineExceeded", 10*time.Minute),
				rolledBack(api, "d2", "d1", 11*time.Minute),
				succeeded(api, "d2", "", 12*time.Minute),
			},
			deployments: map[string]uint64{"api failure": 1, "api success": 1},
			failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
			recovery:    map[string][2]float64{"api": {120, 1}},
		},
		{
			name: "lead time from the commit time carried by the deployment",
			events: []event.Event{
				history(api),
				withCommitTime(succeeded(api, "d1", "abc1234", 2*time.Hour), 0),
			},
			deployments: map[string]uint64{"api success": 2},
			leadTime:    map[string][2]float64{"api": {7200, 1}},
		},
		{
			name: "lead time from an earlier change event for the deployed revision",
			events: []event.Event{
				history(api),
				committed("abc1234", 0),
				succeeded(api, "d1", "abc1234", 30*time.Minute),
			},
			deployments: map[string]uint64{"api success": 2},
			leadTime:    map[string][2]float64{"api": {1800, 1}},
		},
		{
			name: "lead time without a known commit time is not recorded",
			events: []event.Event{
				succeeded(api, "d1", "abc1234", 30*time.Minute),
			},
			deployments: map[string]uint64{"api success": 1},
		},
		{
			name: "lead time is recorded once per revision and service",
			events: []event.Event{
				history(api),
				history(web),
				withCommitTime(succeeded(api, "d1", "abc1234", time.Hour), 0),
				withCommitTime(succeeded(api, "d2", "abc1234", 3*time.Hour), 0),
				withCommitTime(succeeded(web, "d3", "abc1234", 2*time.Hour), 0),
			},
			deployments: map[string]uint64{"api success": 3, "web success": 2},
			leadTime:    map[string][2]float64{"api": {3600, 1}, "web": {7200, 1}},
		},
		{
			name: "negative lead time from clock skew is dropped",
			events: []event.Event{
				history(api),
				withCommitTime(succeeded(api, "d1", "abc1234", 0), time.Minute),
			},
			deployments: map[string]uint64{"api success": 2},
			dropped:     map[string]uint64{"api clock_skew": 1},
		},
		{
			name: "the first deployment seen of a service records no lead time: the start of its history",
			events: []event.Event{
				withCommitTime(succeeded(api, "d1", "abc1234", 2*time.Hour), 0),
			},
			deployments: map[string]uint64{"api success": 1},
			dropped:     map[string]uint64{"api before_history": 1},
		},
		{
			name: "incident within the window is a change failure of the last deployment, its resolution the recovery",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, api, "inc-1", time.Hour),
				incident(event.IncidentResolved, api, "inc-1", time.Hour+20*time.Minute),
			},
			deployments: map[string]uint64{"api success": 1},
			failures:    map[string]uint64{"api incident": 1},
			// From the failed deployment (0), which is before the incident
			// it caused (1h), to the resolution. (It was 1200 s, from the
			// incident's start.)
			recovery:  map[string][2]float64{"api": {4800, 1}},
			incidents: map[string]uint64{"api true": 1},
		},
		{
			name: "incident outside the window is not a change failure",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, api, "inc-1", 25*time.Hour),
				incident(event.IncidentResolved, api, "inc-1", 26*time.Hour),
			},
			deployments: map[string]uint64{"api success": 1},
			incidents:   map[string]uint64{"api false": 1},
		},
		{
			name: "incident on a service without deployments is not a change failure",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, web, "inc-1", time.Hour),
			},
			deployments: map[string]uint64{"api success": 1},
			incidents:   map[string]uint64{"web false": 1},
		},
		{
			name: "two incidents on one deployment count one failure",
			events: []event.Event{
				succeeded(api, "d1", "", 0),
				incident(event.IncidentOpened, api, "inc-1", time.Hour),
				incident(event.IncidentOpened, api, "inc-2", 2*time.Hour),
				incident(event.IncidentResolved, api, "inc-2", 3*time.Hour),
				incident(event.IncidentResolved, api, "inc-1", 4*time.Hour),
			},
			deployments: map[string]uint64{"api success": 1},
			failures:    map[string]uint64{"api incident": 1},
			// From d1 (0) to the resolution of the last of its incidents
			// (inc-1, 4h). (It was 3 h, from inc-1's start.)
			recovery:  map[string][2]float64{"api": {4 * 3600, 1}},
			incidents: map[string]uint64{"api true": 2},
		},
		{
			name: "redelivered event is applied once",
			events: []event.Event{
				failed(api, "d1", "ProgressDeadlineExceeded", 0),
				failed(api, "d1", "ProgressDeadlineExceeded", 0),
			},
			deployments: map[string]uint64{"api failure": 1},
			failures:    map[string]uint64{"api ProgressDeadlineExceeded": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(DefaultConfig(), t0)
			require.NoError(t, err)
			for _, ev := range tt.events {
				_, err := e.Apply(ev)
				require.NoError(t, err)
			}
			s := e.Snapshot()
			assert.Equal(t, nonNil(tt.deployments), counters(s.Deployments), "deployments")
			assert.Equal(t, nonNil(tt.failures), counters(s.Failures), "failures")
			assert.Equal(t, nonNilH(tt.leadTime), observations(s.LeadTime), "lead time")
			assert.Equal(t, nonNilH(tt.recovery), observations(s.RecoveryTime), "recovery time")
			assert.Equal(t, nonNil(tt.dropped), counters(s.LeadTimeDropped), "dropped lead times")
			assert.Equal(t, nonNil(tt.incidents), counters(s.Incidents), "incidents")
			assert.Equal(t, t0, s.StartTime)
		})
	}
}

func nonNil(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return map[string]uint64{}
	}
	return m
}

func nonNilH(m map[string][2]float64) map[string][2]float64 {
	if m == nil {
		return map[string][2]float64{}
	}
	return m
}

func TestApplyReportsDuplicatesAndChanges(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)

	out, err := e.Apply(started(api, "d1", "", 0))
	require.NoError(t, err)
	assert.Equal(t, Outcome{}, out, "a start changes no metric")

	out, err = e.Apply(succeeded(api, "d1", "", time.Minute))
	require.NoError(t, err)
	assert.True(t, out.Changed)
	assert.False(t, out.Duplicate)
	assert.NotNil(t, out.Deployment, "a production deployment's outcome is reported")

	out, err = e.Apply(succeeded(api, "d1", "", time.Minute))
	require.NoError(t, err)
	assert.Equal(t, Outcome{Duplicate: true}, out)
}

func TestDedupForgetsIDsOutsideTheWindow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DedupWindow = time.Hour
	e, err := New(cfg, t0)
	require.NoError(t, err)

	ev := committed("abc1234", 0)
	_, err = e.Apply(ev)
	require.NoError(t, err)
	_, err = e.Apply(committed("later", 2*time.Hour))
	require.NoError(t, err)

	out, err := e.Apply(ev)
	require.NoError(t, err)
	assert.False(t, out.Duplicate, "an id older than the window is forgotten")
	assert.Len(t, e.seen.ids, 2)
}

func TestHistogramBuckets(t *testing.T) {
	h := newHistogram([]float64{60, 300})
	for _, v := range []float64{10, 60, 61, 300, 301, 9999} {
		h.observe(v)
	}
	assert.Equal(t, []uint64{2, 2, 2}, h.Counts, "buckets are upper-inclusive")
	assert.Equal(t, uint64(6), h.Count)
	assert.InDelta(t, 10731.0, h.Sum, 1e-9)
	assert.Equal(t, 10.0, h.Min)
	assert.Equal(t, 9999.0, h.Max)
}

func TestInvalidEvents(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	tests := []struct {
		name string
		ev   event.Event
		want string
	}{
		{"unknown kind", event.Event{Time: t0}, "unknown event kind"},
		{"no time", event.Event{Kind: event.DeploymentSucceeded, Service: api, DeploymentID: "d"}, "without a time"},
		{"no service", event.Event{Kind: event.DeploymentSucceeded, Time: t0, DeploymentID: "d"}, "without a service name"},
		{"no deployment identity", event.Event{Kind: event.DeploymentFailed, Time: t0, Service: api}, "deployment id or a revision"},
		{"change without revision", event.Event{Kind: event.ChangeCommitted, Time: t0}, "without a revision"},
		{"incident without id", event.Event{Kind: event.IncidentOpened, Time: t0, Service: api}, "without an incident id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Apply(tt.ev)
			require.ErrorContains(t, err, tt.want)
		})
	}
	assert.Empty(t, e.Snapshot().Deployments, "rejected events change nothing")
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LeadTimeBounds = []float64{10, 5}
	cfg.DedupWindow = 0
	_, err := New(cfg, t0)
	require.ErrorContains(t, err, "lead time buckets: bounds must increase strictly")
	require.ErrorContains(t, err, "dedup window must be positive")
}

func TestServiceMemoryIsBounded(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	for i := range 2000 {
		rev := fmt.Sprintf("rev%04d", i)
		_, err := e.Apply(withCommitTime(succeeded(api, rev, rev, time.Duration(i)*time.Minute), 0))
		require.NoError(t, err)
	}
	s := e.services[api]
	assert.Equal(t, maxDeploymentsPerService, len(s.deployments))
	assert.Equal(t, maxRevisionsPerService, len(s.deployedRevisions))
	assert.Equal(t, uint64(2000), counters(e.Snapshot().Deployments)["api success"])
}

func change(rev, parent string, t time.Duration) event.Event {
	ev := committed(rev, t)
	ev.ParentRevision = parent
	return ev
}

func from(source string, ev event.Event) event.Event {
	ev.Source = source
	ev.ID = source + "/" + ev.ID
	return ev
}

func TestCorrelation(t *testing.T) {
	staging := event.Service{Namespace: "shop", Name: "api", Environment: "staging"}
	tests := []struct {
		name        string
		events      []event.Event
		deployments map[string]uint64
		failures    map[string]uint64
		leadTime    map[string][2]float64
		recovery    map[string][2]float64
	}{
		{
			name: "lead time per change: a deployment ships every commit since the service's previous deployment",
			events: []event.Event{
				succeeded(api, "d0", "c0", -time.Hour), // the start of history
				change("c1", "c0", 0),
				change("c2", "c1", 10*time.Minute),
				change("c3", "c2", 20*time.Minute),
				succeeded(api, "d1", "c3", time.Hour),
				change("c4", "c3", 70*time.Minute),
				succeeded(api, "d2", "c4", 90*time.Minute),
			},
			deployments: map[string]uint64{"api success": 3},
			// d1 ships c1 (60m), c2 (50m), c3 (40m); d2 ships only c4 (20m).
			leadTime: map[string][2]float64{"api": {(60 + 50 + 40 + 20) * 60, 4}},
		},
		{
			name: "each service records its own first deployment of a commit",
			events: []event.Event{
				history(api),
				history(web),
				change("c1", "", 0),
				succeeded(api, "d1", "c1", time.Hour),
				succeeded(web, "d2", "c1", 2*time.Hour),
			},
			deployments: map[string]uint64{"api success": 2, "web success": 2},
			leadTime:    map[string][2]float64{"api": {3600, 1}, "web": {7200, 1}},
		},
		{
			name: "a rollout reported by Kubernetes and by CI is one deployment",
			events: []event.Event{
				from("kubernetes", started(api, "k8s-1", "c1", 0)),
				from("github", succeeded(api, "gh-7", "c1", 2*time.Minute)),
				from("kubernetes", succeeded(api, "k8s-1", "c1", 3*time.Minute)),
			},
			deployments: map[string]uint64{"api success": 1},
		},
		{
			name: "the same source deploying a revision twice is two deployments",
			events: []event.Event{
				from("github", succeeded(api, "gh-1", "c1", 0)),
				from("github", succeeded(api, "gh-2", "c1", time.Minute)),
			},
			deployments: map[string]uint64{"api success": 2},
		},
		{
			name: "reports of one revision far apart in time are two deployments",
			events: []event.Event{
				from("kubernetes", succeeded(api, "k8s-1", "c1", 0)),
				from("github", succeeded(api, "gh-7", "c1", 3*time.Hour)),
			},
			deployments: map[string]uint64{"api success": 2},
		},
		{
			name: "a failure reported by CI for a rollout Kubernetes started fails that deployment once",
			events: []event.Event{
				from("kubernetes", started(api, "k8s-1", "c1", 0)),
				func() event.Event {
					ev := from("github", failed(api, "gh-7", "failure", time.Minute))
					ev.Revision = "c1"
					return ev
				}(),
			},
			deployments: map[string]uint64{"api failure": 1},
			failures:    map[string]uint64{"api failure": 1},
		},
		{
			name: "non-production deployments are counted but feed no lead time, failures or recovery",
			events: []event.Event{
				change("c1", "", 0),
				succeeded(staging, "d1", "c1", time.Hour),
				failed(staging, "d2", "ProgressDeadlineExceeded", 2*time.Hour),
				succeeded(staging, "d3", "c2", 3*time.Hour),
			},
			deployments: map[string]uint64{"api success": 2, "api failure": 1},
		},
		{
			name: "rollback of a deployment the engine never saw is still a change failure",
			events: []event.Event{
				rolledBack(api, "d2", "d1", 0),
				succeeded(api, "d2", "", time.Minute),
			},
			deployments: map[string]uint64{"api success": 1},
			failures:    map[string]uint64{"api rollback": 1},
			recovery:    map[string][2]float64{"api": {60, 1}},
		},
		{
			name: "rollback that does not name what it replaces fails the latest deployment",
			events: []event.Event{
				succeeded(api, "d1", "c1", 0),
				rolledBack(api, "d2", "", time.Hour),
				succeeded(api, "d2", "c0", time.Hour+time.Minute),
			},
			deployments: map[string]uint64{"api success": 2},
			failures:    map[string]uint64{"api rollback": 1},
			// From d1's finish (0) to the completed rollback. (It was 60 s,
			// from the rollback's start.)
			recovery: map[string][2]float64{"api": {3660, 1}},
		},
		{
			name: "merge events do not invent commit times",
			events: []event.Event{
				history(api),
				{Kind: event.ChangeMerged, Source: "test", ID: "m1", Time: at(0), Revision: "m1"},
				succeeded(api, "d1", "m1", time.Hour),
			},
			deployments: map[string]uint64{"api success": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(DefaultConfig(), t0)
			require.NoError(t, err)
			for _, ev := range tt.events {
				_, err := e.Apply(ev)
				require.NoError(t, err)
			}
			s := e.Snapshot()
			assert.Equal(t, nonNil(tt.deployments), counters(s.Deployments), "deployments")
			assert.Equal(t, nonNil(tt.failures), counters(s.Failures), "failures")
			assert.Equal(t, nonNilH(tt.leadTime), observations(s.LeadTime), "lead time")
			assert.Equal(t, nonNilH(tt.recovery), observations(s.RecoveryTime), "recovery time")
		})
	}
}
