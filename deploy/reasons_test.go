package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDashboardShowsFailuresByProgressiveReasons runs the dashboard's
// "Change failures by reason" panels, as shipped, through promtool's
// PromQL evaluation over series carrying the failure reasons of the Argo
// Rollouts and Flagger sources (and a rollback and an incident): each
// reason is a series of its own in the panel, with its count.
func TestDashboardShowsFailuresByProgressiveReasons(t *testing.T) {
	bin := promtool(t)
	d, _ := loadDashboard(t)
	queries := map[string]string{}
	for _, e := range dashboardExprs(d) {
		for _, title := range []string{"Change failures by reason", "Change failures per interval, by reason"} {
			if strings.Contains(e.where, "("+title+") A") {
				queries[title] = substitute(e.expr)
			}
		}
	}
	require.Len(t, queries, 2, "the dashboard's failures-by-reason panels")

	// Reason and count; every series born an hour into the test, as the
	// receiver's series are born at their first event.
	reasons := []struct {
		reason, deployment string
		count              int
	}{
		{"AnalysisRunFailed", "checkout", 2},        // Argo Rollouts: a failed AnalysisRun aborted the canary
		{"RolloutAborted", "checkout", 1},           // Argo Rollouts: aborted by hand
		{"ProgressDeadlineExceeded", "checkout", 1}, // Argo Rollouts (and Deployments): no progress in time
		{"CanaryAnalysisFailed", "podinfo", 3},      // Flagger: the checks reached the threshold
		{"CanaryFailed", "podinfo", 1},              // Flagger: failed for another cause
		{"rollback", "podinfo", 1},                  // the engine's own reasons still show
	}
	var b strings.Builder
	b.WriteString("evaluation_interval: 5m\ntests:\n  - interval: 5m\n    input_series:\n")
	for _, r := range reasons {
		fmt.Fprintf(&b, "      - series: 'platform_deployment_failures_total{namespace=\"shop\",deployment=%q,environment=\"production\",reason=%q}'\n        values: '_x12 %dx24'\n",
			r.deployment, r.reason, r.count)
	}
	b.WriteString("    promql_expr_test:\n")
	// The range panel an hour after the failures; the per-interval panel
	// in the interval they happened in.
	for _, p := range []struct{ title, at string }{{"Change failures by reason", "2h"}, {"Change failures per interval, by reason", "1h"}} {
		q, err := json.Marshal(queries[p.title])
		require.NoError(t, err)
		fmt.Fprintf(&b, "      # %s\n      - expr: %s\n        eval_time: %s\n        exp_samples:\n", p.title, q, p.at)
		for _, r := range reasons {
			fmt.Fprintf(&b, "          - labels: '{reason=%q}'\n            value: %d\n", r.reason, r.count)
		}
	}
	file := filepath.Join(t.TempDir(), "reasons.test.yaml")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o644))
	t.Log(mustRun(t, ".", bin, "test", "rules", file))
}
