package e2e

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-dora/dorareceiver/internal/scenario"
)

// shippedRules are the recording and alerting rules users load.
func shippedRules(t *testing.T) []string {
	path := filepath.Join("..", "deploy", "prometheus", "dora-rules.yaml")
	_, err := os.Stat(path)
	require.NoError(t, err)
	return []string{path}
}

// grafanaVariables are the values the dashboard's variables take for the
// check: every team, namespace, service and environment, a 7-day range, and a
// "rate interval" that spans the whole test so per-interval panels show
// totals.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "1h",
	"$__range_s", "604800",
	"$__range", "7d",
	"$__interval", "1m",
	"$team", ".*",
	"$namespace", ".*",
	"$deployment", ".*",
	"$environment", ".*",
	"$production", "production|prod",
)

// series names one sample of a result: its label values in a fixed order.
func series(labels map[string]string, keys ...string) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// expectation is what one query must return: a value per series, the
// series named by the values of keys.
type expectation struct {
	keys   []string
	values map[string]float64
	// delta is how far a value may be from the expected one: 1e-6 unless
	// set (a value that depends on the wall clock).
	delta float64
}

func (e expectation) tolerance() float64 {
	if e.delta > 0 {
		return e.delta
	}
	return 1e-6
}

func one(v float64) expectation { return expectation{values: map[string]float64{"": v}} }

func by(keys []string, values map[string]float64) expectation {
	return expectation{keys: keys, values: values}
}

// matches reports whether got is exactly what e expects.
func (e expectation) matches(got []promSample) bool {
	if len(got) != len(e.values) {
		return false
	}
	for _, s := range got {
		v, ok := e.values[series(s.Labels, e.keys...)]
		if !ok || math.Abs(v-s.Value) > e.tolerance() {
			return false
		}
	}
	return true
}

func (e expectation) check(t *testing.T, what string, got []promSample) {
	t.Helper()
	actual := map[string]float64{}
	for _, s := range got {
		actual[series(s.Labels, e.keys...)] = s.Value
	}
	want := make([]string, 0, len(e.values))
	for k := range e.values {
		want = append(want, k)
	}
	have := make([]string, 0, len(actual))
	for k := range actual {
		have = append(have, k)
	}
	sort.Strings(want)
	sort.Strings(have)
	if !assert.Equal(t, want, have, "%s: series", what) {
		return
	}
	for k, v := range e.values {
		assert.InDelta(t, v, actual[k], e.tolerance(), "%s: %s", what, k)
	}
}

// byWindow expects one value per service, the same in each default window.
func byWindow(perService map[string]float64) expectation {
	e := expectation{keys: []string{"deployment", "window"}, values: map[string]float64{}}
	for svc, v := range perService {
		for _, w := range []string{"1d", "7d", "30d"} {
			e.values["deployment="+svc+",window="+w] = v
		}
	}
	return e
}

// coverageSliver expects every window of api and web covered between 0
// and 0.1 (less than 2.4 hours of history in the shortest window).
func coverageSliver() expectation {
	e := byWindow(map[string]float64{"api": 0.05, "web": 0.05})
	e.delta = 0.05
	return e
}

// checkShippedQueries runs every dashboard panel query and every recording
// rule through Prometheus and compares them with the scenario's numbers
// (after the monitoring loop added an incident on api and its recovery).
//
// The numbers, production only: api deployed 3 times (create, 2.0, the
// rollback) and failed once (3.0); web deployed twice. Change failures: api
// ProgressDeadlineExceeded and incident. Lead times: api 90 minutes (bucket
// 1h..2h), web 4 hours (bucket 4h..8h); histogram_quantile interpolates
// within buckets. Recoveries: api twice, each within a minute (bucket 0..60s).
func checkShippedQueries(t *testing.T, stack *doraStack, want scenario.Expected) {
	t.Helper()
	require.Equal(t, 3, want.Deployments["api"]["success"])
	require.Equal(t, 2, want.Deployments["web"]["success"])

	// Both recoveries must fall in the first bucket for the interpolated
	// quantiles below; they do unless the machine stalled for a minute.
	buckets := query(t, stack.prometheus, `platform_recovery_time_seconds_bucket`)
	// le is "60.0" scraped, "60" through OTLP and remote write.
	fast, ok := valueOf(query(t, stack.prometheus, `sum(platform_recovery_time_seconds_bucket{le=~"60|60.0"})`), nil)
	require.True(t, ok, "recovery buckets: %v", buckets)
	require.Equal(t, 2.0, fast, "both recoveries took under a minute")

	svc := []string{"deployment"}
	dashboard := map[string]expectation{
		"Deployment frequency/A": one(5.0 / 7),
		"Median lead time/A":     one(7200),
		"Change failure rate/A":  one(2.0 / 6),
		"Median recovery time/A": one(30),
		"Deployment frequency (successful deployments in the last 24 hours)/A": by(svc, map[string]float64{"deployment=api": 3, "deployment=web": 2}),
		"Lead time p50 / p90 (changes of the last 7 days)/A":                   one(7200),
		"Lead time p50 / p90 (changes of the last 7 days)/B":                   one(14400 + 0.8*14400),
		"Change failure rate (last 7 days)/A":                                  by(svc, map[string]float64{"deployment=api": 0.5, "deployment=web": 0}),
		"Recovery time p50 / p90 (recoveries of the last 7 days)/A":            one(30),
		"Recovery time p50 / p90 (recoveries of the last 7 days)/B":            one(54),
		"Deployments per interval (selected environments)/A": by([]string{"environment", "status"}, map[string]float64{
			"environment=production,status=success": 5, "environment=production,status=failure": 1,
		}),
		"Deployments per service/A": by(svc, map[string]float64{"deployment=api": 3, "deployment=web": 2}),
		"Deployments per service/B": by(svc, map[string]float64{"deployment=api": 1}),
		"Deployments per service/C": by(svc, map[string]float64{"deployment=api": 2}),
		"Deployments per service/D": by(svc, map[string]float64{"deployment=api": 0.5, "deployment=web": 0}),
		"Deployments per service/E": by(svc, map[string]float64{"deployment=api": 5400, "deployment=web": 21600}),
		"Deployments per service/F": by(svc, map[string]float64{"deployment=api": 30}),
		"Change failures by reason/A": by([]string{"reason"}, map[string]float64{
			"reason=ProgressDeadlineExceeded": 1, "reason=incident": 1,
		}),
		"Change failures per interval, by reason/A": by([]string{"reason"}, map[string]float64{
			"reason=ProgressDeadlineExceeded": 1, "reason=incident": 1,
		}),
		"Rework rate/A": one(1.0 / 5), // the rollback
		"Incidents, attributed to a deployment or not/A": by([]string{"attributed"}, map[string]float64{"attributed=true": 1}),
		// The receiver's rolling gauges, per service and window (1d, 7d,
		// 30d). The story is minutes old: every window reaches back before
		// the history start, so the frequency is over one day (the least
		// it divides by) and the coverage a sliver; levels come with the
		// stack's min_window_coverage 0. api: change failure rate 50 %,
		// low; web: elite on all its metrics.
		"Overall level and window coverage, per service and window/A": byWindow(map[string]float64{"api": 1, "web": 4}),
		"Overall level and window coverage, per service and window/B": byWindow(map[string]float64{"api": 3, "web": 2}),
		"Overall level and window coverage, per service and window/C": coverageSliver(),
	}

	raw, err := os.ReadFile(filepath.Join("..", "dashboard", "dora-metrics.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	checked := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			key := p.Title + "/" + target.RefID
			exp, ok := dashboard[key]
			if !assert.True(t, ok, "no expected value for panel query %q: add one", key) {
				continue
			}
			exp.check(t, "panel "+key, query(t, stack.prometheus, grafanaVariables.Replace(target.Expr)))
			checked++
		}
	}
	assert.Equal(t, len(dashboard), checked, "every expectation matched a panel query")

	// The recording rules, by the series they record.
	all := []string{"deployment", "status"}
	rules := map[string]expectation{
		"dora:deployments:increase1d":           by(all, map[string]float64{"deployment=api,status=success": 3, "deployment=api,status=failure": 1, "deployment=web,status=success": 2}),
		"dora:deployments:increase7d":           by(all, map[string]float64{"deployment=api,status=success": 3, "deployment=api,status=failure": 1, "deployment=web,status=success": 2}),
		"dora:deployments:increase30d":          by(all, map[string]float64{"deployment=api,status=success": 3, "deployment=api,status=failure": 1, "deployment=web,status=success": 2}),
		"dora:deployment_frequency:per_day_7d":  by(svc, map[string]float64{"deployment=api": 3.0 / 7, "deployment=web": 2.0 / 7}),
		"dora:deployment_frequency:per_day_30d": by(svc, map[string]float64{"deployment=api": 3.0 / 30, "deployment=web": 2.0 / 30}),
		"dora:deployment_failures:increase7d": by([]string{"deployment", "reason"}, map[string]float64{
			"deployment=api,reason=ProgressDeadlineExceeded": 1, "deployment=api,reason=incident": 1,
		}),
		"dora:change_failure_rate:ratio_7d":           by(svc, map[string]float64{"deployment=api": 0.5, "deployment=web": 0}),
		"dora:lead_time_seconds_count:increase7d":     by(svc, map[string]float64{"deployment=api": 1, "deployment=web": 1}),
		"dora:lead_time_seconds:p50_7d":               by(svc, map[string]float64{"deployment=api": 5400, "deployment=web": 21600}),
		"dora:lead_time_seconds:p90_7d":               by(svc, map[string]float64{"deployment=api": 3600 + 0.9*3600, "deployment=web": 14400 + 0.9*14400}),
		"dora:recovery_time_seconds_count:increase7d": by(svc, map[string]float64{"deployment=api": 2}),
		"dora:recovery_time_seconds:p50_7d":           by(svc, map[string]float64{"deployment=api": 30}),
		"dora:recovery_time_seconds:p90_7d":           by(svc, map[string]float64{"deployment=api": 54}),
	}
	var recorded []string
	var groups struct {
		Groups []struct {
			Rules []struct {
				Record string `json:"record"`
			} `json:"rules"`
		} `json:"groups"`
	}
	rawRules, err := os.ReadFile(shippedRules(t)[0])
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(rawRules, &groups))
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded = append(recorded, r.Record)
			}
		}
	}
	now := float64(time.Now().Unix())
	for _, name := range recorded {
		if strings.HasSuffix(name, ":last_timestamp_seconds") {
			// A time, not a count: the failure and the recoveries happened
			// during this test.
			got := query(t, stack.prometheus, name)
			v, ok := valueOf(got, map[string]string{"deployment": "api"})
			if assert.True(t, ok, "%s for api: %v", name, got) {
				assert.InDelta(t, now, v, 600, "%s is a recent time", name)
			}
			continue
		}
		// Bucket series are checked through the quantiles and counts.
		if strings.Contains(name, "_bucket:") {
			continue
		}
		exp, ok := rules[name]
		if !assert.True(t, ok, "no expected value for recording rule %s: add one", name) {
			continue
		}
		// Rules are evaluated every second: give the last evaluation time
		// to catch up with the last scrape.
		deadline := time.Now().Add(15 * time.Second)
		got := query(t, stack.prometheus, name)
		for !exp.matches(got) && time.Now().Before(deadline) {
			time.Sleep(250 * time.Millisecond)
			got = query(t, stack.prometheus, name)
		}
		exp.check(t, "rule "+name, got)
	}
	t.Logf("checked %d dashboard queries and %d recording rules against the scenario", checked, len(recorded))
	checkAnnotations(t, stack, raw)
}

// checkAnnotations evaluates the dashboard's annotation queries over the
// last 30 minutes at 15-second steps (a subquery: the story is shorter than
// Grafana's 5-minute step, whose aligned points may all fall before it) and
// now (the last seconds are after the subquery's last aligned step), and
// checks that they mark exactly what the scenario did: each service's
// production deployments by status, api's change failures by reason, and
// nothing else (no failure of web).
func checkAnnotations(t *testing.T, stack *doraStack, raw []byte) {
	t.Helper()
	var dash struct {
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	want := map[string][]string{
		"Production deployments": {"deployment=api,status=success", "deployment=api,status=failure", "deployment=web,status=success"},
		"Change failures":        {"deployment=api,reason=ProgressDeadlineExceeded", "deployment=api,reason=incident"},
	}
	keys := map[string][]string{"Production deployments": {"deployment", "status"}, "Change failures": {"deployment", "reason"}}
	seen := 0
	for _, a := range dash.Annotations.List {
		if a.Expr == "" {
			continue
		}
		exp, ok := want[a.Name]
		if !assert.True(t, ok, "no expectation for annotation %q: add one", a.Name) {
			continue
		}
		seen++
		expr := grafanaVariables.Replace(a.Expr)
		marks := query(t, stack.prometheus, "max_over_time(("+expr+")[30m:15s]) or ("+expr+")")
		var got []string
		for _, m := range marks {
			got = append(got, series(m.Labels, keys[a.Name]...))
		}
		assert.ElementsMatch(t, exp, got, "annotation %q marks", a.Name)
	}
	assert.Equal(t, len(want), seen, "every expected annotation is in the dashboard")
}
