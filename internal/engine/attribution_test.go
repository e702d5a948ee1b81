package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Tests of METRICS.md's attribution definitions: the team of a service and
// the services of a monorepo's commits.

func ofTeam(ev event.Event, team string) event.Event {
	ev.Team = team
	return ev
}

func ownerTeam(ev event.Event, team string) event.Event {
	ev.Team, ev.TeamFallback = team, true
	return ev
}

func touching(ev event.Event, paths ...string) event.Event {
	ev.Paths = paths
	return ev
}

// teamsOf renders the team of every point as "metric service[ label]" ->
// team.
func teamsOf(s Snapshot) map[string]string {
	m := map[string]string{}
	counters := map[string][]CounterPoint{
		"deployments": s.Deployments, "failures": s.Failures, "dropped": s.LeadTimeDropped,
		"incidents": s.Incidents, "rework": s.Rework,
	}
	for name, ps := range counters {
		for _, p := range ps {
			m[fmt.Sprintf("%s %s %s", name, p.Service.Name, p.Label)] = p.Team
		}
	}
	histograms := map[string][]HistogramPoint{"lead_time": s.LeadTime, "stage": s.LeadTimeStages, "recovery": s.RecoveryTime}
	for name, ps := range histograms {
		for _, p := range ps {
			m[fmt.Sprintf("%s %s %s", name, p.Service.Name, p.Label)] = p.Team
		}
	}
	for _, p := range s.Rolling {
		m[fmt.Sprintf("rolling %s %s", p.Service.Name, p.Window)] = p.Team
	}
	return m
}

// The team is on every series of the service, counters, histograms and
// rolling values alike; a service without a team has none.
func TestDefinition_Team_OnEverySeries(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RollingWindows = []time.Duration{24 * time.Hour}
	e := apply(t, cfg,
		ofTeam(history(api), "payments"),
		change("c1", "history-api", 0),
		started(api, "d1", "c1", 10*time.Minute),
		succeeded(api, "d1", "c1", 20*time.Minute),
		// The incident names the service but no team: the service keeps its
		// team.
		incident(event.IncidentOpened, api, "inc-1", 30*time.Minute),
		incident(event.IncidentResolved, api, "inc-1", 40*time.Minute),
		history(web),
		incident(event.IncidentOpened, web, "inc-2", 26*time.Hour),
	)
	s := e.SnapshotAt(at(time.Hour))
	assert.Equal(t, map[string]string{
		"deployments api success": "payments",
		"failures api incident":   "payments",
		"incidents api true":      "payments",
		"lead_time api ":          "payments",
		"stage api deploy":        "payments",
		"recovery api ":           "payments",
		"rolling api 1d":          "payments",
		"deployments web success": "",
		"incidents web false":     "",
		"rolling web 1d":          "",
	}, teamsOf(s))
}

// Two sources that name different teams for one service do not split it:
// it is one service, one deployment, one series, with the team named last.
// A repository owner (a fallback) names the team only until a source names
// a real one, and never replaces it.
func TestDefinition_Team_NotPartOfTheService(t *testing.T) {
	e := apply(t, DefaultConfig(),
		ownerTeam(from("github", started(api, "gh-1", "c1", 0)), "acme"),
		ofTeam(from("kubernetes", started(api, "k8s-1", "c1", time.Minute)), "payments"),
		ownerTeam(from("github", succeeded(api, "gh-1", "c1", 2*time.Minute)), "acme"),
		from("kubernetes", succeeded(api, "k8s-1", "c1", 3*time.Minute)),
	)
	s := e.Snapshot()
	checkCumulative(t, s, expect{deployments: map[string]uint64{"api success": 1}})
	assert.Equal(t, map[string]string{"deployments api success": "payments"}, teamsOf(s), "the fallback did not replace the label's team")

	_, err := e.Apply(ofTeam(from("kubernetes", started(api, "k8s-2", "c2", time.Hour)), "checkout"))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"deployments api success": "checkout"}, teamsOf(e.Snapshot()), "the team named last")

	// A service known only by its repository owner has that team.
	_, err = e.Apply(ownerTeam(from("github", succeeded(web, "gh-9", "c9", time.Hour)), "acme"))
	require.NoError(t, err)
	assert.Equal(t, "acme", teamsOf(e.Snapshot())["deployments web success"])
}

// A team change is a metric change (every series of the service moves to
// the new attribute), so the receiver emits it; the same team again is not.
func TestDefinition_Team_ChangeIsEmitted(t *testing.T) {
	e := apply(t, DefaultConfig(), ofTeam(succeeded(api, "d1", "", 0), "payments"))
	out, err := e.Apply(ofTeam(started(api, "d2", "", time.Minute), "payments"))
	require.NoError(t, err)
	assert.False(t, out.Changed, "same team, a start: nothing to emit")
	out, err = e.Apply(ofTeam(started(api, "d3", "", 2*time.Minute), "checkout"))
	require.NoError(t, err)
	assert.True(t, out.Changed, "new team: the series change")
	// Change events carry no team for the engine.
	out, err = e.Apply(ofTeam(committed("c1", 3*time.Minute), "other"))
	require.NoError(t, err)
	assert.False(t, out.Changed)
}

var (
	jobs   = event.Service{Namespace: "shop", Name: "jobs", Environment: "production"}
	worker = event.Service{Namespace: "shop", Name: "worker", Environment: "production"}
)

// monorepo is the path filters of three services deployed from one
// repository; worker, also deployed from it, has none.
func monorepo(c *Config) {
	c.ServicePaths = map[ServiceKey][]string{
		{Namespace: "shop", Name: "api"}:  {"services/api/**", "libs/shared/**"},
		{Namespace: "shop", Name: "web"}:  {"services/web/"},
		{Namespace: "shop", Name: "jobs"}: {"services/jobs/**"},
	}
}

// A commit belongs to the services whose paths it touches; a service without
// paths, or a commit whose paths are unknown, belongs to every service. The
// others are walked through: neither recorded nor dropped.
func TestDefinition_Monorepo_ChangesBelongToTheirServices(t *testing.T) {
	commits := []event.Event{
		touching(change("m1", "m0", 0), "services/api/main.go"),                                   // api
		touching(change("m2", "m1", 10*time.Minute), "services/web/index.ts"),                     // web
		touching(change("m3", "m2", 20*time.Minute), "services/web/app.ts", "libs/shared/log.go"), // api and web
		change("m4", "m3", 30*time.Minute),                                                        // paths unknown: all
		touching(change("m5", "m4", 40*time.Minute), "docs/README.md"),                            // none with paths
	}
	events := []event.Event{
		// The start of history of three services.
		succeeded(api, "api-0", "m0", -2*time.Hour),
		succeeded(web, "web-0", "m0", -2*time.Hour),
		succeeded(worker, "worker-0", "m0", -2*time.Hour),
	}
	events = append(events, commits...)
	events = append(events,
		succeeded(api, "api-1", "m5", time.Hour),         // m1 60m, m3 40m, m4 30m
		succeeded(web, "web-1", "m5", 2*time.Hour),       // m2 110m, m3 100m, m4 90m
		succeeded(worker, "worker-1", "m5", 3*time.Hour), // all five: 180+170+160+150+140 m
		// jobs' first deployment ships its own commits only (m4, whose
		// paths are unknown): pushed while the receiver watched, it gets
		// its lead time there.
		succeeded(jobs, "jobs-0", "m5", 4*time.Hour), // m4 210m
	)
	runDefinitions(t, []definitionCase{{
		name:   "two services in one repository, commits touching one, the other, both, neither, unknown",
		cfg:    monorepo,
		events: events,
		want: expect{
			deployments: map[string]uint64{"api success": 2, "web success": 2, "worker success": 2, "jobs success": 1},
			leadTime: map[string][2]float64{
				"api":    {(60 + 40 + 30) * 60, 3},
				"web":    {(110 + 100 + 90) * 60, 3},
				"worker": {(180 + 170 + 160 + 150 + 140) * 60, 5},
				"jobs":   {210 * 60, 1},
			},
		},
	}, {
		name:   "without path filters every commit belongs to every service",
		events: events,
		want: expect{
			deployments: map[string]uint64{"api success": 2, "web success": 2, "worker success": 2, "jobs success": 1},
			leadTime: map[string][2]float64{
				"api":    {(60 + 50 + 40 + 30 + 20) * 60, 5},
				"web":    {(120 + 110 + 100 + 90 + 80) * 60, 5},
				"worker": {(180 + 170 + 160 + 150 + 140) * 60, 5},
				"jobs":   {(240 + 230 + 220 + 210 + 200) * 60, 5},
			},
		},
	}})
}

// The deployed revision may belong to another service: the walk goes on to
// the service's own commits below it; a later deployment does not record
// the commits walked through again.
func TestDefinition_Monorepo_WalkThroughOtherServicesCommits(t *testing.T) {
	runDefinitions(t, []definitionCase{{
		name: "api deploys a head that only touched web, then again",
		cfg:  monorepo,
		events: []event.Event{
			succeeded(api, "api-0", "m0", -time.Hour),
			touching(change("m1", "m0", 0), "services/api/a.go"),
			touching(change("m2", "m1", 10*time.Minute), "services/web/b.ts"),
			succeeded(api, "api-1", "m2", 30*time.Minute), // m1: 30m
			touching(change("m3", "m2", 40*time.Minute), "services/web/c.ts"),
			succeeded(api, "api-2", "m3", time.Hour), // nothing of api's
		},
		want: expect{
			deployments: map[string]uint64{"api success": 3},
			leadTime:    map[string][2]float64{"api": {1800, 1}},
		},
	}, {
		name: "the first report with paths counts; a later push of the same commit with other paths does not change it",
		cfg:  monorepo,
		events: []event.Event{
			succeeded(api, "api-0", "m0", -time.Hour),
			change("m1", "m0", 0), // unknown so far
			withID(touching(change("m1", "m0", 0), "services/web/b.ts"), "again-with-paths"),
			withID(touching(change("m1", "m0", 0), "services/api/a.go"), "third"),
			succeeded(api, "api-1", "m1", 30*time.Minute),
		},
		want: expect{deployments: map[string]uint64{"api success": 2}},
	}})
}

// A commit that reverts another service's commit is not a hotfix of this
// one, even though this service's deployment walked through the reverted
// commit; the service whose paths the revert touches fails.
func TestDefinition_Monorepo_RevertsStayWithTheirService(t *testing.T) {
	runDefinitions(t, []definitionCase{{
		name: "a revert of web's commit fails web's deployment, not api's",
		cfg:  monorepo,
		events: []event.Event{
			succeeded(api, "api-0", "m0", -time.Hour),
			succeeded(web, "web-0", "m0", -time.Hour),
			touching(change("m1", "m0", 0), "services/web/bad.ts"),
			succeeded(api, "api-1", "m1", 10*time.Minute),
			succeeded(web, "web-1", "m1", 10*time.Minute), // m1 10m
			reverting(touching(change("r1", "m1", 20*time.Minute), "services/web/bad.ts"), "m1"),
			succeeded(api, "api-2", "r1", 30*time.Minute),
			succeeded(web, "web-2", "r1", 30*time.Minute), // r1 10m
		},
		want: expect{
			deployments: map[string]uint64{"api success": 3, "web success": 3},
			failures:    map[string]uint64{"web revert": 1},
			rework:      map[string]uint64{"web ": 1},
			leadTime:    map[string][2]float64{"web": {1200, 2}},
			recovery:    map[string][2]float64{"web": {1200, 1}},
		},
	}})
}

func TestMatchPath(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"services/api/**", "services/api/main.go", true},
		{"services/api/**", "services/api/internal/x/y.go", true},
		{"services/api/**", "services/api", true},
		{"services/api/**", "services/apiv2/main.go", false},
		{"services/api/**", "services/web/main.go", false},
		{"services/api/", "services/api/main.go", true},
		{"/services/api/**", "services/api/main.go", true},
		{"services/api/**", "/services/api/main.go", true},
		{"services/*/go.mod", "services/api/go.mod", true},
		{"services/*/go.mod", "services/api/sub/go.mod", false},
		{"services/*", "services/api/main.go", false},
		{"**/*.proto", "api.proto", true},
		{"**/*.proto", "proto/v1/api.proto", true},
		{"**/*.proto", "proto/v1/api.go", false},
		{"a/**/b/*.go", "a/b/x.go", true},
		{"a/**/b/*.go", "a/1/2/b/x.go", true},
		{"a/**/b/*.go", "a/1/2/c/x.go", false},
		{"a/**/**/b", "a/b", true},
		{"Makefile", "Makefile", true},
		{"Makefile", "services/Makefile", false},
		{"svc-[ab]/**", "svc-a/x", true},
		{"svc-[ab]/**", "svc-c/x", false},
		{"**", "anything/at/all", true},
		{"", "x", false},
		{"x", "", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, MatchPath(tt.pattern, tt.name), "%q ~ %q", tt.pattern, tt.name)
	}
}

func TestValidatePathPatterns(t *testing.T) {
	assert.NoError(t, ValidatePathPatterns([]string{"services/api/**", "services/web/", "**/*.go"}))
	err := ValidatePathPatterns([]string{"ok/**", "", "/", "svc-[a/**"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `[1]: "" is empty`)
	assert.Contains(t, err.Error(), `[2]: "/" is empty`)
	assert.Contains(t, err.Error(), `[3]: "svc-[a/**" is not a valid pattern`)

	cfg := DefaultConfig()
	cfg.ServicePaths = map[ServiceKey][]string{{Namespace: "shop", Name: "api"}: {"["}}
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `paths of shop/api: [0]: "[" is not a valid pattern`)
}
