package e2e

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// TestTwoSourcesEndToEnd replays the story "the same story told by
// Kubernetes and CI" (enginetest.StoryTwoSources) through the real
// otelcol-dora on config/local.yaml, each of its moments told by the source
// that tells it in a real delivery: the push of r1 is a GitHub push, the CI
// job's start and its report of success are a GitHub deployment and
// deployment_status for r1, and Kubernetes' start and success are a real
// rollout of a Deployment whose image tag is r1 (the default
// image_tag_fallback reads it), by kube-controller-manager and a fake
// kubelet. The Prometheus endpoint must show the story's counters exactly
// (one deployment) and its histograms' series and counts exactly (one lead
// time for r1, one deploy stage); their sums are the story's, with the
// rollout's real start and end, so they are checked against the bounds the
// story's times and the rollout's wall-clock times give.
//
// The generic source alone cannot tell this story (TestScenarios leaves it
// out): all its events would be of one source, and one source's reports of
// a revision under two ids are two deployments.
func TestTwoSourcesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and the control plane; run through make test")
	}
	story := scenarioNamed(t, enginetest.StoryTwoSources)

	// The story's moments, in the order they are told.
	moments := []struct {
		source string
		kind   event.Kind
	}{
		{enginetest.Source, event.ChangeCommitted},
		{"ci", event.DeploymentStarted},
		{event.SourceKubernetes, event.DeploymentStarted},
		{event.SourceKubernetes, event.DeploymentSucceeded},
		{"ci", event.DeploymentSucceeded},
	}
	require.Len(t, story.Events, len(moments), "the story changed: update this test")
	for i, m := range moments {
		require.Equal(t, m.source, story.Events[i].Source, "event %d: the story changed: update this test", i)
		require.Equal(t, m.kind, story.Events[i].Kind, "event %d: the story changed: update this test", i)
	}
	pushed, ciStarted, k8sStarted, k8sDone, ciDone := story.Events[0], story.Events[1], story.Events[2], story.Events[3], story.Events[4]
	svc := k8sStarted.Service
	for _, ev := range story.Events[1:] {
		require.Equal(t, svc, ev.Service, "%s: one service", ev.ID)
		require.Equal(t, pushed.Revision, ev.Revision, "%s: one revision", ev.ID)
	}
	require.Equal(t, "production", svc.Environment, "config/local.yaml puts every namespace but *-staging in production")
	require.True(t, pushed.Time.Before(ciStarted.Time) && ciStarted.Time.Before(k8sStarted.Time) && k8sDone.Time.Before(ciDone.Time),
		"the story's order (push, CI start, rollout, CI report) is what this test replays")

	// Revision names become commit SHAs, as every real source reports them.
	sha := func(name string) string {
		s := sha1.Sum([]byte("twosources/" + name))
		return hex.EncodeToString(s[:])
	}
	image := func(rev string) string { return "registry.local/" + svc.Name + ":" + sha(rev) }

	bin := collectorBinary(t)
	cp := localcluster.StartForTest(t, localcluster.Options{FakeKubelet: true})
	client := cp.Client()
	ctx := context.Background()
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: svc.Namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// r0, the parent of r1, runs before the receiver starts: not a
	// deployment it counts.
	createDeployment(t, client, svc.Namespace, svc.Name, image(pushed.ParentRevision))
	waitRolledOut(t, client, svc.Namespace, svc.Name)

	// The GitHub fixtures are of acme/api: its pushes and deployments are
	// the story's service.
	extra := filepath.Join(t.TempDir(), "services.yaml")
	require.NoError(t, os.WriteFile(extra, []byte(`receivers:
  dora:
    services:
      - repository: acme/api
        namespace: `+svc.Namespace+`
        deployment: `+svc.Name+`
`), 0o600))
	webhookAddr := freeAddr(t)
	metricsURL := startCollectorWith(t, bin, cp.Kubeconfig, []string{extra},
		"DORA_WEBHOOK_ENDPOINT="+webhookAddr, "DORA_GITHUB_SECRET="+githubSecret)
	base := "http://" + webhookAddr

	// The story's times are offsets from Kubernetes' start of the rollout,
	// which happens now: wall is the wall-clock time of a story time.
	anchor := time.Now().UTC().Truncate(time.Second)
	wall := func(at time.Time) time.Time { return anchor.Add(at.Sub(k8sStarted.Time)) }
	accepted := func(what string, a answer) {
		t.Helper()
		require.Equal(t, http.StatusOK, a.status, "%s: %v", what, a.body)
		require.EqualValues(t, 1, a.body["accepted"], "%s: %v", what, a.body)
	}

	// 1. The push of r1 (on r0) to main.
	push := fixture(t, "../internal/github/testdata/push.json")
	commit := maps.Clone(push["commits"].([]any)[0].(map[string]any))
	commit["id"], commit["timestamp"] = sha(pushed.Revision), wall(pushed.Time).Format(time.RFC3339)
	push["before"], push["after"] = sha(pushed.ParentRevision), sha(pushed.Revision)
	push["commits"], push["head_commit"] = []any{commit}, commit
	accepted("push", sendGitHub(t, base, "push", "twosources-push", push))

	// 2. The CI job starts deploying r1 to production: GitHub's
	// deployment, created.
	created := fixture(t, "../internal/github/testdata/deployment.json")
	dep := created["deployment"].(map[string]any)
	dep["sha"], dep["environment"] = sha(ciStarted.Revision), svc.Environment
	dep["created_at"], dep["updated_at"] = wall(ciStarted.Time).Format(time.RFC3339), wall(ciStarted.Time).Format(time.RFC3339)
	accepted("deployment created", sendGitHub(t, base, "deployment", "twosources-deployment", created))

	// 3. The rollout of r1, for real: Kubernetes' start and success.
	rolloutStart := time.Now()
	require.False(t, rolloutStart.Before(anchor))
	updateDeployment(t, client, svc.Namespace, svc.Name, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = image(k8sStarted.Revision)
	})
	series := map[string]string{"namespace": svc.Namespace, "deployment": svc.Name, "environment": svc.Environment}
	waitMetric(t, metricsURL, "platform_deployments_total", with(series, "status", "success"), 1)
	rolloutSeen := time.Now()

	// 4. The CI job reports r1 deployed, after Kubernetes did: GitHub's
	// deployment_status success of the same deployment. Its time is the
	// wall clock's: a delivery from the future is refused.
	status := fixture(t, "../internal/github/testdata/deployment_status.json")
	require.Equal(t, dep["id"], status["deployment"].(map[string]any)["id"], "the fixtures' status is of the fixtures' deployment")
	status["deployment"] = dep
	ds := status["deployment_status"].(map[string]any)
	ds["state"], ds["environment"] = "success", svc.Environment
	reported := time.Now().UTC().Format(time.RFC3339)
	ds["created_at"], ds["updated_at"] = reported, reported
	accepted("deployment_status success", sendGitHub(t, base, "deployment_status", "twosources-status", status))

	// The last 200 came after the pipeline had it: no waiting.
	m := scrape(t, metricsURL)
	counters := scenarioCounters(t, m)
	for _, name := range enginetest.CounterMetrics {
		want := story.Want.Counters[name]
		if want == nil {
			want = enginetest.Counter{}
		}
		assert.Equal(t, want, counters[name], "%s: the story's counts, exactly", promCounters[name].name)
	}

	// Kubernetes' success is at the Progressing condition's time, clamped
	// to no earlier than the start it observed: between the update and the
	// moment the metric showed it.
	from := func(at time.Time) [2]float64 {
		return [2]float64{rolloutStart.Sub(wall(at)).Seconds(), rolloutSeen.Sub(wall(at)).Seconds()}
	}
	bounds := map[string]map[enginetest.Series][2]float64{
		// r1's lead time: from its commit to Kubernetes' success.
		enginetest.LeadTime: {{Service: svc}: from(pushed.Time)},
		// The deploy stage: from the first start reported (the CI job's)
		// to Kubernetes' success.
		enginetest.LeadTimeStage: {{Service: svc, Label: "deploy"}: from(ciStarted.Time)},
	}
	// The bounds above are the story's own arithmetic: checked against the
	// values it expects at its own times.
	storyValue := map[string]map[enginetest.Series]float64{
		enginetest.LeadTime:      {{Service: svc}: k8sDone.Time.Sub(pushed.Time).Seconds()},
		enginetest.LeadTimeStage: {{Service: svc, Label: "deploy"}: k8sDone.Time.Sub(ciStarted.Time).Seconds()},
	}
	histograms := scenarioHistograms(t, m)
	for _, name := range enginetest.HistogramMetrics {
		want := story.Want.Histograms[name]
		wantCounts, gotCounts := map[enginetest.Series]uint64{}, map[enginetest.Series]uint64{}
		for k, o := range want {
			wantCounts[k] = o.Count
			require.Contains(t, storyValue[name], k, "%s %s: the story expects a value this test has no bounds for", name, k)
			require.Equal(t, storyValue[name][k], o.Sum, "%s %s: the story's own value", name, k)
		}
		for k, o := range histograms[name] {
			gotCounts[k] = o.Count
		}
		f := promHistograms[name].name
		assert.Equal(t, wantCounts, gotCounts, "%s: the story's series and counts, exactly", f)
		for k, b := range bounds[name] {
			got, ok := histograms[name][k]
			if !ok {
				continue // reported above
			}
			t.Logf("%s_sum %s = %.3fs, within [%.3fs, %.3fs]", f, k, got.Sum, b[0], b[1])
			assert.GreaterOrEqual(t, got.Sum, b[0], "%s_sum %s: no less than from the story's time to the rollout's start", f, k)
			assert.LessOrEqual(t, got.Sum, b[1], "%s_sum %s: no more than from the story's time to the rollout seen done", f, k)
		}
	}
}

// scenarioNamed is the scenario of package enginetest named name.
func scenarioNamed(t *testing.T, name string) enginetest.Scenario {
	t.Helper()
	for _, sc := range enginetest.Scenarios() {
		if sc.Name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %q", name)
	return enginetest.Scenario{}
}
