// Package deploy_test checks what is shipped for running otelcol-dora: the
// Grafana dashboard (dashboard/), the Prometheus rules and example
// configuration (deploy/prometheus/) and the Kubernetes manifests
// (deploy/kubernetes/), with the real promtool, a real kube-apiserver and the
// built otelcol-dora binary.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

const (
	dashboardFile   = "../dashboard/dora-metrics.json"
	rulesFile       = "prometheus/dora-rules.yaml"
	rulesTestFile   = "prometheus/dora-rules.test.yaml"
	promConfigFile  = "prometheus/prometheus.yaml"
	kubernetesDir   = "kubernetes"
	inClusterConfig = "../config/in-cluster.yaml"

	// The collector's service account, as the manifests create it.
	serviceAccountUser = "system:serviceaccount:otelcol-dora:otelcol-dora"
	fieldManager       = "otelcol-dora-test"
)

// contractSeries are the Prometheus series of the metric contract
// (README.md), as the Prometheus exporter renders them.
var contractSeries = []string{
	"platform_deployments_total",
	"platform_deployment_failures_total",
	"platform_lead_time_seconds_bucket",
	"platform_lead_time_seconds_sum",
	"platform_lead_time_seconds_count",
	"platform_recovery_time_seconds_bucket",
	"platform_recovery_time_seconds_sum",
	"platform_recovery_time_seconds_count",
	"platform_deployments_rework_total",
	"platform_incidents_total",
	// The rolling gauges the dashboard's levels table reads.
	"platform_dora_level",
	"platform_dora_deployment_frequency_per_day",
	"platform_dora_window_coverage_ratio",
}

// ---------------------------------------------------------------------------
// Tools.

// promtool returns the promtool that `make tools` builds. A missing binary
// fails the test: these checks must not pass silently without it.
func promtool(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs promtool; `make unit` (-short) runs no tools")
	}
	dir, err := localcluster.BinDir()
	require.NoError(t, err)
	bin := filepath.Join(dir, "promtool")
	if info, err := os.Stat(bin); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		t.Fatalf("promtool not found at %s: run `make tools` (it builds prometheus and promtool into .tools/bin), or set DORA_TOOLS_BIN", bin)
	}
	return bin
}

// collectorBinary returns the otelcol-dora that `make build` produces:
// $OTELCOL_DORA_BIN, else ../bin/otelcol-dora.
func collectorBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the built otelcol-dora; `make unit` (-short) runs no binary")
	}
	bin := os.Getenv("OTELCOL_DORA_BIN")
	if bin == "" {
		bin = filepath.Join("..", "bin", "otelcol-dora")
	}
	abs, err := filepath.Abs(bin)
	require.NoError(t, err)
	if info, err := os.Stat(abs); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		t.Fatalf("otelcol-dora binary not found at %s: run `make build` (or set OTELCOL_DORA_BIN)", abs)
	}
	return abs
}

// run runs a command in dir and returns its combined output and error.
func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out.String(), err
}

// mustRun runs a command and fails the test, with its output, unless it
// exits 0.
func mustRun(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, dir, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

// ---------------------------------------------------------------------------
// Dashboard.

type dashboard struct {
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	SchemaVersion int              `json:"schemaVersion"`
	Inputs        []dashboardInput `json:"__inputs"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels      []panel `json:"panels"`
	Annotations struct {
		List []annotation `json:"list"`
	} `json:"annotations"`
}

// annotation is a Grafana annotation query; the built-in one has no expr.
type annotation struct {
	Name       string         `json:"name"`
	Datasource *datasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
	Target     struct {
		Expr string `json:"expr"`
	} `json:"target"`
}

type dashboardInput struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PluginID string `json:"pluginId"`
}

type variable struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasourceRef  `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	Current    struct {
		Value any `json:"value"`
	} `json:"current"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	require.True(t, json.Valid(raw), "%s is not valid JSON", dashboardFile)
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(raw))
	require.NoError(t, dec.Decode(&d))
	return d, raw
}

// allPanels flattens rows that hold their panels (collapsed rows).
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardExpr is one panel or annotation query.
type dashboardExpr struct {
	where string // "panel 2 (Deployment frequency) A"
	expr  string
}

func dashboardExprs(d dashboard) []dashboardExpr {
	var out []dashboardExpr
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, dashboardExpr{
				where: fmt.Sprintf("panel %d (%s) %s", p.ID, p.Title, tg.RefID),
				expr:  tg.Expr,
			})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, dashboardExpr{where: fmt.Sprintf("annotation %q", a.Name), expr: a.Expr})
		}
	}
	return out
}

func TestDashboardImportable(t *testing.T) {
	d, _ := loadDashboard(t)

	assert.NotEmpty(t, d.UID, "uid")
	assert.LessOrEqual(t, len(d.UID), 40, "Grafana uids have at most 40 characters")
	assert.NotEmpty(t, d.Title, "title")
	assert.GreaterOrEqual(t, d.SchemaVersion, 36, "schemaVersion")
	assert.Equal(t, "now-7d", d.Time.From, "default time range: last 7 days")
	assert.Equal(t, "now", d.Time.To)

	// Dashboards > Import asks for the data source named in __inputs.
	require.Len(t, d.Inputs, 1, "__inputs")
	assert.Equal(t, dashboardInput{Name: "DS_PROMETHEUS", Type: "datasource", PluginID: "prometheus"}, d.Inputs[0])

	// Template variables.
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	ds, ok := vars["datasource"]
	require.True(t, ok, "a datasource variable, so that the dashboard also works without import")
	assert.Equal(t, "datasource", ds.Type)
	assert.JSONEq(t, `"prometheus"`, string(ds.Query))
	assert.Equal(t, "${DS_PROMETHEUS}", ds.Current.Value, "the import input selects the default data source")
	for _, name := range []string{"team", "namespace", "deployment", "environment"} {
		v, ok := vars[name]
		if !assert.True(t, ok, "variable %s", name) {
			continue
		}
		assert.Equal(t, "query", v.Type, name)
		assert.True(t, v.Multi, "%s: multi", name)
		assert.True(t, v.IncludeAll, "%s: include all", name)
		assert.Regexp(t, `^label_values\(platform_deployments_total(\{[^}]*\})?, `+name+`\)$`, v.Definition, name)
		assert.Contains(t, string(v.Query), strings.ReplaceAll(v.Definition, `"`, `\"`), "%s: query and definition agree", name)
		if assert.NotNil(t, v.Datasource, name) {
			assert.Equal(t, "${datasource}", v.Datasource.UID, "%s uses the datasource variable", name)
		}
	}

	// Panels: unique ids, on the 24-column grid without overlaps, every
	// query on the datasource variable.
	ids := map[int]bool{}
	type rect struct {
		id         int
		x, y, w, h int
	}
	var rects []rect
	for _, p := range allPanels(d.Panels) {
		assert.False(t, ids[p.ID], "panel id %d used twice", p.ID)
		ids[p.ID] = true
		assert.NotEmpty(t, p.Title, "panel %d title", p.ID)
		if !assert.NotNil(t, p.GridPos, "panel %d (%s) gridPos", p.ID, p.Title) {
			continue
		}
		g := p.GridPos
		assert.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.Y >= 0 && g.X+g.W <= 24, "panel %d (%s) gridPos %+v", p.ID, p.Title, *g)
		rects = append(rects, rect{p.ID, g.X, g.Y, g.W, g.H})
		if p.Type == "row" {
			continue
		}
		if assert.NotNil(t, p.Datasource, "panel %d (%s) datasource", p.ID, p.Title) {
			assert.Equal(t, datasourceRef{Type: "prometheus", UID: "${datasource}"}, *p.Datasource, "panel %d (%s)", p.ID, p.Title)
		}
		assert.NotEmpty(t, p.Targets, "panel %d (%s) has no query", p.ID, p.Title)
		for _, tg := range p.Targets {
			if assert.NotNil(t, tg.Datasource, "panel %d %s datasource", p.ID, tg.RefID) {
				assert.Equal(t, "${datasource}", tg.Datasource.UID, "panel %d %s", p.ID, tg.RefID)
			}
			assert.NotEmpty(t, tg.RefID, "panel %d refId", p.ID)
		}
	}
	for i, a := range rects {
		for _, b := range rects[i+1:] {
			overlap := a.x < b.x+b.w && b.x < a.x+a.w && a.y < b.y+b.h && b.y < a.y+a.h
			assert.False(t, overlap, "panels %d and %d overlap", a.id, b.id)
		}
	}

	// The panels the dashboard promises.
	var titles []string
	for _, p := range allPanels(d.Panels) {
		titles = append(titles, strings.ToLower(p.Title))
	}
	for _, want := range []string{"deployment frequency", "median lead time", "change failure rate", "median recovery time", "lead time p50 / p90", "recovery time p50", "deployments per service", "change failures by reason", "window coverage"} {
		assert.True(t, slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, want) }), "a panel titled %q", want)
	}

	// The annotations the dashboard promises (docs/dashboard.md): the
	// production deployments and the change failures, marked from the
	// exported counters on the Prometheus data source, the query also in
	// the target that Grafana's editor shows.
	var marks []string
	for _, a := range d.Annotations.List {
		if a.Expr == "" {
			continue
		}
		marks = append(marks, a.Name)
		if assert.NotNil(t, a.Datasource, "annotation %q datasource", a.Name) {
			assert.Equal(t, datasourceRef{Type: "prometheus", UID: "${datasource}"}, *a.Datasource, "annotation %q", a.Name)
		}
		assert.Equal(t, a.Expr, a.Target.Expr, "annotation %q: expr and target.expr", a.Name)
		assert.Contains(t, a.Expr, `environment=~"$production"`, "annotation %q marks production only", a.Name)
	}
	assert.ElementsMatch(t, []string{"Production deployments", "Change failures"}, marks)

	// Every query filters by the four variables with a regex matcher (All
	// is .*, which also matches series without the label: services without
	// a team).
	for _, e := range dashboardExprs(d) {
		for _, v := range []string{"team", "namespace", "deployment", "environment"} {
			assert.Contains(t, e.expr, v+`=~"$`+v+`"`, "%s: filter by $%s", e.where, v)
		}
	}
}

// grafanaVars stands in for Grafana's interpolation: the built-in
// variables, then every dashboard variable as "match anything".
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__range_s", "604800",
	"$__range_ms", "604800000",
	"$__range", "7d",
	"$__interval_ms", "60000",
	"$__interval", "1m",
)

var dashboardVarRE = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

func substitute(expr string) string {
	return dashboardVarRE.ReplaceAllString(grafanaVars.Replace(expr), ".*")
}

// TestDashboardQueriesArePromQL writes every panel query, with Grafana's
// variables substituted, as a recording rule and has promtool check them.
func TestDashboardQueriesArePromQL(t *testing.T) {
	bin := promtool(t)
	d, _ := loadDashboard(t)
	exprs := dashboardExprs(d)
	require.NotEmpty(t, exprs)

	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q := substitute(e.expr)
		require.NotContains(t, q, "$", "%s: unsubstituted variable", e.where)
		quoted, err := json.Marshal(q) // a JSON string is a YAML string
		require.NoError(t, err)
		fmt.Fprintf(&b, "      # %s\n      - record: dashboard:query_%d\n        expr: %s\n", e.where, i, quoted)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o644))
	out := mustRun(t, ".", bin, "check", "rules", file)
	assert.Contains(t, out, fmt.Sprintf("SUCCESS: %d rules found", len(exprs)), out)
}

var (
	platformNameRE = regexp.MustCompile(`platform_[a-z_]+`)
	doraNameRE     = regexp.MustCompile(`dora:[a-z0-9_:]+`)
)

// TestDashboardNamesOnlyContractMetrics: every metric the dashboard queries
// is in the contract or recorded by the rules.
func TestDashboardNamesOnlyContractMetrics(t *testing.T) {
	d, _ := loadDashboard(t)
	known := map[string]bool{}
	for _, s := range contractSeries {
		known[s] = true
	}
	for _, r := range loadRules(t).all() {
		if r.Record != "" {
			known[r.Record] = true
		}
	}
	seen := 0
	for _, e := range dashboardExprs(d) {
		for _, name := range append(platformNameRE.FindAllString(e.expr, -1), doraNameRE.FindAllString(e.expr, -1)...) {
			seen++
			assert.True(t, known[name], "%s: %s is neither a contract metric nor a recording rule", e.where, name)
		}
	}
	assert.NotZero(t, seen)
}

// ---------------------------------------------------------------------------
// Prometheus rules.

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Record string `json:"record"`
	Alert  string `json:"alert"`
	Expr   string `json:"expr"`
}

func (f ruleFile) all() []rule {
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	var f ruleFile
	require.NoError(t, utilyaml.Unmarshal(raw, &f))
	require.NotEmpty(t, f.all())
	return f
}

func TestRulesCheck(t *testing.T) {
	out := mustRun(t, ".", promtool(t), "check", "rules", rulesFile)
	t.Log(out)
}

func TestRulesUnitTests(t *testing.T) {
	t.Parallel()
	out := mustRun(t, ".", promtool(t), "test", "rules", rulesTestFile)
	t.Log(out)
}

// TestRulesNameOnlyContractMetrics: the rules read only the contract's
// series and their own recordings (and, for the receiver alerts, the
// collector's own telemetry, which is not matched here).
func TestRulesNameOnlyContractMetrics(t *testing.T) {
	f := loadRules(t)
	known := map[string]bool{}
	for _, s := range contractSeries {
		known[s] = true
	}
	for _, r := range f.all() {
		if r.Record != "" {
			known[r.Record] = true
		}
	}
	for _, r := range f.all() {
		name := r.Record + r.Alert
		for _, m := range append(platformNameRE.FindAllString(r.Expr, -1), doraNameRE.FindAllString(r.Expr, -1)...) {
			assert.True(t, known[m], "rule %s: %s is neither a contract metric nor a recording rule", name, m)
		}
	}
}

// TestRulesAllTested: every recording rule is evaluated and every alert is
// checked by the unit tests.
func TestRulesAllTested(t *testing.T) {
	f := loadRules(t)
	raw, err := os.ReadFile(rulesTestFile)
	require.NoError(t, err)
	var tests struct {
		Tests []struct {
			PromQLExprTest []struct {
				Expr string `json:"expr"`
			} `json:"promql_expr_test"`
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	require.NoError(t, utilyaml.Unmarshal(raw, &tests))
	exprs := map[string]bool{}
	fires := map[string]bool{}
	quiet := map[string]bool{}
	for _, tg := range tests.Tests {
		for _, e := range tg.PromQLExprTest {
			for _, m := range doraNameRE.FindAllString(e.Expr, -1) {
				exprs[m] = true
			}
		}
		for _, a := range tg.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, r := range f.all() {
		switch {
		case r.Record != "":
			assert.True(t, exprs[r.Record], "recording rule %s has no promql_expr_test", r.Record)
		case r.Alert != "":
			assert.True(t, fires[r.Alert], "alert %s is never tested firing", r.Alert)
			assert.True(t, quiet[r.Alert], "alert %s is never tested not firing", r.Alert)
		}
	}
}

// TestPrometheusExampleConfig: the example configuration (scrape jobs and
// rule_files) is valid, rules included.
func TestPrometheusExampleConfig(t *testing.T) {
	out := mustRun(t, ".", promtool(t), "check", "config", promConfigFile)
	t.Log(out)
}

// ---------------------------------------------------------------------------
// Kubernetes manifests.

// manifestFilesIn returns the resources listed in dir's kustomization.yaml.
func manifestFilesIn(t *testing.T, kubernetesDir string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(kubernetesDir, "kustomization.yaml"))
	require.NoError(t, err)
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	require.NoError(t, utilyaml.Unmarshal(raw, &k))
	require.Equal(t, "Kustomization", k.Kind)
	require.NotEmpty(t, k.Resources)

	// Every manifest in the folder is listed.
	entries, err := os.ReadDir(kubernetesDir)
	require.NoError(t, err)
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".yaml") && name != "kustomization.yaml" {
			assert.Contains(t, k.Resources, name, "kustomization.yaml does not list %s", name)
		}
	}
	return k.Resources
}

// decodeManifests decodes every document of the listed files.
func decodeManifests(t *testing.T) []*unstructured.Unstructured {
	return decodeManifestsIn(t, kubernetesDir)
}

// decodeManifestsIn decodes every document of the files dir's
// kustomization.yaml lists.
func decodeManifestsIn(t *testing.T, kubernetesDir string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, name := range manifestFilesIn(t, kubernetesDir) {
		f, err := os.Open(filepath.Join(kubernetesDir, name))
		require.NoError(t, err)
		docs := utilyaml.NewYAMLReader(bufio.NewReader(f))
		for {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, name)
			// Unmarshal turns integers into int64, as unstructured wants.
			var m map[string]any
			require.NoError(t, utilyaml.Unmarshal(doc, &m), name)
			if len(m) == 0 {
				continue // an empty document (comments only)
			}
			u := &unstructured.Unstructured{Object: m}
			require.NotEmpty(t, u.GetKind(), "%s: a document without kind", name)
			require.NotEmpty(t, u.GetName(), "%s: a %s without name", name, u.GetKind())
			objs = append(objs, u)
		}
		require.NoError(t, f.Close())
	}
	return objs
}

func findObject(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s in the manifests", kind, name)
	return nil
}

// warnings collects the API server's warnings (Pod Security Admission warns
// about workloads that break the namespace's standard).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

func TestManifestsApplyAndLeastPrivilege(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	objs := decodeManifests(t)
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()] = true
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service"} {
		require.True(t, kinds[k], "the manifests have no %s", k)
	}

	c := localcluster.StartForTest(t, localcluster.Options{})
	ctx := t.Context()
	cfg := c.RESTConfig()
	warn := &warnings{}
	cfg.WarningHandler = warn
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))

	resource := func(o *unstructured.Unstructured) dynamic.ResourceInterface {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, "%s %s", gvk, o.GetName())
		if m.Scope.Name() == "namespace" {
			require.NotEmpty(t, o.GetNamespace(), "%s %s has no namespace", o.GetKind(), o.GetName())
			return dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		return dyn.Resource(m.Resource)
	}

	// Server-side apply, in kustomization order (the Namespace first).
	for _, o := range objs {
		data, err := json.Marshal(o.Object)
		require.NoError(t, err)
		force := true
		_, err = resource(o).Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: fieldManager, Force: &force})
		require.NoError(t, err, "apply %s %s", o.GetKind(), o.GetName())
		assert.Empty(t, warn.take(), "warnings applying %s %s", o.GetKind(), o.GetName())
	}
	for _, o := range objs {
		got, err := resource(o).Get(ctx, o.GetName(), metav1.GetOptions{})
		require.NoError(t, err, "get %s %s", o.GetKind(), o.GetName())
		assert.Contains(t, fieldManagers(got), fieldManager, "%s %s", o.GetKind(), o.GetName())
	}

	// The warning check is live: the same Deployment running as root with
	// a writable root file system is flagged by the restricted standard.
	dep := findObject(t, objs, "Deployment", "otelcol-dora").DeepCopy()
	containers, _, err := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	require.NoError(t, err)
	first := containers[0].(map[string]any)
	first["securityContext"] = map[string]any{"allowPrivilegeEscalation": true}
	require.NoError(t, unstructured.SetNestedSlice(dep.Object, containers, "spec", "template", "spec", "containers"))
	unstructured.RemoveNestedField(dep.Object, "spec", "template", "spec", "securityContext")
	data, err := json.Marshal(dep.Object)
	require.NoError(t, err)
	force := true
	_, err = resource(dep).Patch(ctx, dep.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: fieldManager, Force: &force, DryRun: []string{metav1.DryRunAll}})
	require.NoError(t, err)
	assert.NotEmpty(t, warn.take(), "a privileged variant of the Deployment should draw Pod Security warnings")

	// Least privilege for the collector's service account.
	canNamed := func(verb, group, res, ns, name string) bool {
		t.Helper()
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   serviceAccountUser,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:otelcol-dora", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: group, Resource: res, Name: name,
			},
		}}
		got, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		require.NoError(t, err)
		return got.Status.Allowed
	}
	can := func(verb, group, res, ns string) bool { t.Helper(); return canNamed(verb, group, res, ns, "") }
	for _, ns := range []string{"", "shop", "kube-system", "otelcol-dora"} {
		for _, verb := range []string{"get", "list", "watch"} {
			assert.True(t, can(verb, "apps", "deployments", ns), "%s deployments in %q must be allowed", verb, ns)
		}
	}
	// The history import: list ReplicaSets, get and list Argo CD's
	// Applications; nothing more of either.
	for _, ns := range []string{"", "shop", "argocd"} {
		assert.True(t, can("list", "apps", "replicasets", ns), "list replicasets in %q must be allowed", ns)
		for _, verb := range []string{"get", "list"} {
			assert.True(t, can(verb, "argoproj.io", "applications", ns), "%s applications in %q must be allowed", verb, ns)
		}
	}
	// The progressive-delivery sources' informers: list and watch only.
	for _, ns := range []string{"", "shop"} {
		for _, gr := range [][2]string{{"argoproj.io", "rollouts"}, {"flagger.app", "canaries"}} {
			for _, verb := range []string{"list", "watch"} {
				assert.True(t, can(verb, gr[0], gr[1], ns), "%s %s/%s in %q must be allowed", verb, gr[0], gr[1], ns)
			}
		}
	}
	denied := []struct{ verb, group, res, ns string }{
		{"get", "", "secrets", "otelcol-dora"},
		{"update", "argoproj.io", "rollouts", "shop"},
		{"patch", "argoproj.io", "rollouts", "shop"},
		{"update", "flagger.app", "canaries", "shop"},
		{"list", "argoproj.io", "analysisruns", "shop"},
		{"list", "flagger.app", "metrictemplates", "shop"},
		{"get", "", "secrets", "shop"},
		{"list", "", "secrets", ""},
		{"update", "apps", "deployments", "shop"},
		{"patch", "apps", "deployments", "shop"},
		{"delete", "apps", "deployments", "shop"},
		{"create", "apps", "deployments", "shop"},
		{"list", "", "pods", "shop"},
		{"list", "", "pods", ""},
		{"get", "apps", "replicasets", "shop"},
		{"watch", "apps", "replicasets", "shop"},
		{"delete", "apps", "replicasets", "shop"},
		{"watch", "argoproj.io", "applications", "argocd"},
		{"update", "argoproj.io", "applications", "argocd"},
		{"patch", "argoproj.io", "applications", "argocd"},
		{"list", "argoproj.io", "appprojects", "argocd"},
		{"get", "", "configmaps", "otelcol-dora"},
		{"list", "", "namespaces", ""},
	}
	for _, d := range denied {
		assert.False(t, can(d.verb, d.group, d.res, d.ns), "%s %s/%s in %q must be denied", d.verb, d.group, d.res, d.ns)
	}

	// Leader election: the Lease the ConfigMap names, in the collector's
	// namespace, and nothing more.
	_, collector := collectorConfig(t)
	leaseName := nested(t, collector, "receivers", "dora", "leader_election", "lease_name").(string)
	leaseNS := nested(t, collector, "receivers", "dora", "leader_election", "lease_namespace").(string)
	require.Equal(t, "otelcol-dora", leaseNS, "the Lease is in the collector's namespace")
	const lease = "coordination.k8s.io"
	for _, verb := range []string{"get", "update"} {
		assert.True(t, canNamed(verb, lease, "leases", leaseNS, leaseName), "%s the Lease %s/%s must be allowed", verb, leaseNS, leaseName)
	}
	assert.True(t, canNamed("create", lease, "leases", leaseNS, ""), "creating the Lease must be allowed")
	leaseDenied := []struct{ verb, ns, name string }{
		{"update", leaseNS, "another-lease"},
		{"get", leaseNS, "another-lease"},
		{"delete", leaseNS, leaseName},
		{"patch", leaseNS, leaseName},
		{"list", leaseNS, ""},
		{"watch", leaseNS, ""},
		{"get", "kube-system", leaseName},
		{"update", "kube-system", "kube-controller-manager"},
		{"create", "kube-system", ""},
		{"create", "shop", ""},
		{"update", "shop", leaseName},
	}
	for _, d := range leaseDenied {
		assert.False(t, canNamed(d.verb, lease, "leases", d.ns, d.name), "%s lease %q in %q must be denied", d.verb, d.name, d.ns)
	}
}

func fieldManagers(o *unstructured.Unstructured) []string {
	var out []string
	for _, m := range o.GetManagedFields() {
		out = append(out, m.Manager)
	}
	return out
}

// ---------------------------------------------------------------------------
// The collector configuration in the ConfigMap.

func collectorConfig(t *testing.T) (string, map[string]any) {
	t.Helper()
	cm := findObject(t, decodeManifests(t), "ConfigMap", "otelcol-dora")
	text, ok, err := unstructured.NestedString(cm.Object, "data", "config.yaml")
	require.NoError(t, err)
	require.True(t, ok, "the ConfigMap has no config.yaml")
	var cfg map[string]any
	require.NoError(t, utilyaml.Unmarshal([]byte(text), &cfg))
	return text, cfg
}

func nested(t *testing.T, m map[string]any, path ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(m, path...)
	require.NoError(t, err, strings.Join(path, "::"))
	require.True(t, ok, "%s is not set", strings.Join(path, "::"))
	return v
}

// TestCollectorConfigMatchesManifests: the ConfigMap extends
// config/in-cluster.yaml, and the ports it listens on are the ones the
// Deployment probes and the Service exposes.
func TestCollectorConfigMatchesManifests(t *testing.T) {
	_, cfg := collectorConfig(t)

	raw, err := os.ReadFile(inClusterConfig)
	require.NoError(t, err)
	var base map[string]any
	require.NoError(t, utilyaml.Unmarshal(raw, &base))
	for _, path := range [][]string{
		{"receivers", "dora", "kubernetes"},
		{"receivers", "dora", "storage"},
		{"receivers", "dora", "leader_election", "lease_name"},
		{"processors"},
		{"exporters"},
		{"extensions"},
		{"service", "extensions"},
		{"service", "pipelines"},
	} {
		assert.Equal(t, nested(t, base, path...), nested(t, cfg, path...), "%s differs from %s", strings.Join(path, "::"), inClusterConfig)
	}

	assert.Equal(t, "0.0.0.0:8088", nested(t, cfg, "receivers", "dora", "webhooks", "endpoint"))
	assert.Equal(t, "${env:DORA_GITHUB_SECRET}", nested(t, cfg, "receivers", "dora", "webhooks", "github", "secret"))
	assert.Equal(t, "${env:DORA_ALERTMANAGER_TOKEN}", nested(t, cfg, "receivers", "dora", "webhooks", "alertmanager", "token"))
	assert.Equal(t, "0.0.0.0:9464", nested(t, cfg, "exporters", "prometheus", "endpoint"))
	assert.Equal(t, "0.0.0.0:13133", nested(t, cfg, "extensions", "health_check", "endpoint"))
	assert.Equal(t, true, nested(t, cfg, "exporters", "prometheus", "without_scope_info"))
	// The production environments the rules and the dashboard assume.
	assert.Equal(t, []any{"production", "prod"}, nested(t, cfg, "receivers", "dora", "production_environments"))

	objs := decodeManifests(t)
	dep := findObject(t, objs, "Deployment", "otelcol-dora")
	containers, _, err := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	require.NoError(t, err)
	require.Len(t, containers, 1)
	ctr := containers[0].(map[string]any)
	assert.Equal(t, "otelcol-dora:0.1.0", ctr["image"])
	assert.Equal(t, []any{"--config=/conf/config.yaml"}, ctr["args"])
	ports := map[string]int64{}
	for _, p := range ctr["ports"].([]any) {
		pm := p.(map[string]any)
		ports[pm["name"].(string)] = pm["containerPort"].(int64)
	}
	assert.Equal(t, map[string]int64{"metrics": 9464, "webhooks": 8088, "telemetry": 8888, "health": 13133}, ports)
	// Liveness on the receiver's health_path (every replica), readiness on
	// its ready_path (the leader only), both on the webhook port.
	webhookPort := strings.TrimPrefix(nested(t, cfg, "receivers", "dora", "webhooks", "endpoint").(string), "0.0.0.0:")
	assert.Equal(t, fmt.Sprint(ports["webhooks"]), webhookPort)
	for probe, path := range map[string]string{"livenessProbe": "/health", "readinessProbe": "/ready"} {
		port, _, _ := unstructured.NestedFieldNoCopy(ctr, probe, "httpGet", "port")
		assert.Equal(t, "webhooks", port, "%s on the receiver's server", probe)
		got, _, _ := unstructured.NestedString(ctr, probe, "httpGet", "path")
		assert.Equal(t, path, got, "%s path (the receiver's defaults)", probe)
	}
	sc, _, _ := unstructured.NestedMap(ctr, "securityContext")
	assert.Equal(t, true, sc["runAsNonRoot"])
	assert.Equal(t, true, sc["readOnlyRootFilesystem"])
	assert.Equal(t, false, sc["allowPrivilegeEscalation"])
	drop, _, _ := unstructured.NestedStringSlice(ctr, "securityContext", "capabilities", "drop")
	assert.Equal(t, []string{"ALL"}, drop)
	for _, kind := range []string{"requests", "limits"} {
		res, _, _ := unstructured.NestedStringMap(ctr, "resources", kind)
		assert.NotEmpty(t, res["cpu"], "resources.%s.cpu", kind)
		assert.NotEmpty(t, res["memory"], "resources.%s.memory", kind)
	}
	// The receiver's state is on the PersistentVolumeClaim: the storage
	// extension's directory is its mount, writable by the pod's group.
	storageID, ok := nested(t, cfg, "receivers", "dora", "storage").(string)
	require.True(t, ok, "receivers::dora::storage names the storage extension")
	dir := nested(t, cfg, "extensions", storageID, "directory")
	assert.Contains(t, nested(t, cfg, "service", "extensions"), storageID)
	mounts := map[string]string{}
	for _, m := range ctr["volumeMounts"].([]any) {
		mm := m.(map[string]any)
		mounts[mm["mountPath"].(string)] = mm["name"].(string)
	}
	require.Contains(t, mounts, dir, "the storage directory %s is a volume mount", dir)
	volumes, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "volumes")
	claim := ""
	for _, v := range volumes {
		vm := v.(map[string]any)
		if vm["name"] == mounts[dir.(string)] {
			claim, _, _ = unstructured.NestedString(vm, "persistentVolumeClaim", "claimName")
		}
	}
	require.NotEmpty(t, claim, "the storage directory is on a PersistentVolumeClaim (an emptyDir would lose the state with the pod)")
	fsGroup, _, _ := unstructured.NestedInt64(dep.Object, "spec", "template", "spec", "securityContext", "fsGroup")
	assert.Equal(t, int64(65532), fsGroup, "the state volume is writable by the nonroot user")

	// Several replicas only with leader election, on a volume they all
	// mount.
	replicas, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas")
	assert.Equal(t, int64(2), replicas)
	nested(t, cfg, "receivers", "dora", "leader_election")
	pvc := findObject(t, objs, "PersistentVolumeClaim", claim)
	modes, _, _ := unstructured.NestedStringSlice(pvc.Object, "spec", "accessModes")
	assert.Equal(t, []string{"ReadWriteMany"}, modes, "both replicas mount the state volume")
	assert.NotZero(t, nested(t, cfg, "extensions", storageID, "timeout"), "a new leader waits for the old leader's file lock")

	svc := findObject(t, objs, "Service", "otelcol-dora")
	svcPorts := map[string]int64{}
	svcList, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	for _, p := range svcList {
		pm := p.(map[string]any)
		svcPorts[pm["name"].(string)] = pm["port"].(int64)
	}
	assert.Equal(t, int64(9464), svcPorts["metrics"])
	assert.Equal(t, int64(8088), svcPorts["webhooks"])
	ann := svc.GetAnnotations()
	assert.Equal(t, "true", ann["prometheus.io/scrape"])
	assert.Equal(t, "9464", ann["prometheus.io/port"])
}

var envRefRE = regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// TestCollectorConfigValidates runs `otelcol-dora validate` on the
// ConfigMap's configuration, with the Secret's variables set, and without
// them (the collector must refuse to start, naming the keys).
func TestCollectorConfigValidates(t *testing.T) {
	bin := collectorBinary(t)
	text, _ := collectorConfig(t)
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o600))

	var names []string
	for _, m := range envRefRE.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	assert.Equal(t, []string{"DORA_ALERTMANAGER_TOKEN", "DORA_GITHUB_SECRET"}, names, "the variables the Secret provides (docs/deploy.md)")

	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	env := slices.Clone(base)
	for _, n := range names {
		env = append(env, n+"=test-"+strings.ToLower(n))
	}
	out, err := run(t, ".", env, bin, "validate", "--config="+file)
	require.NoError(t, err, "otelcol-dora validate:\n%s", out)

	out, err = run(t, ".", base, bin, "validate", "--config="+file)
	require.Error(t, err, "validate must fail without the Secret's variables:\n%s", out)
	assert.Contains(t, out, "github: secret")
	assert.Contains(t, out, "alertmanager: token")
}
