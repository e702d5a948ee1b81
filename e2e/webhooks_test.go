package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const (
	githubSecret      = "e2e-github-secret"
	alertmanagerToken = "e2e-alertmanager-token"
)

// TestWebhooksEndToEnd sends a GitHub push, then a GitHub deployment_status
// for the pushed head, then an Alertmanager firing/resolved pair, to the
// real otelcol-dora (config/local.yaml plus a services mapping), and reads
// the lead time, the deployment and the recovery from its Prometheus
// endpoint.
func TestWebhooksEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary and the control plane; run through make test")
	}
	bin := collectorBinary(t)
	cp := localcluster.StartForTest(t, localcluster.Options{})

	extra := filepath.Join(t.TempDir(), "services.yaml")
	require.NoError(t, os.WriteFile(extra, []byte(`receivers:
  dora:
    services:
      - repository: acme/api
        namespace: shop
        deployment: api
`), 0o600))
	webhookAddr := freeAddr(t)
	metricsURL := startCollectorWith(t, bin, cp.Kubeconfig, []string{extra},
		"DORA_WEBHOOK_ENDPOINT="+webhookAddr,
		"DORA_GITHUB_SECRET="+githubSecret,
		"DORA_ALERTMANAGER_TOKEN="+alertmanagerToken,
	)
	base := "http://" + webhookAddr

	now := time.Now().UTC().Truncate(time.Second)
	deployedAt := now.Add(-time.Hour)
	commits := []struct {
		sha string
		at  time.Time
	}{
		{"1111111111111111111111111111111111111111", deployedAt.Add(-3 * time.Hour)},
		{"2222222222222222222222222222222222222222", deployedAt.Add(-2 * time.Hour)},
	}

	// 0. The first deployment the receiver sees of api ships a revision
	// never pushed, with no commit time: no lead time.
	baseline := fixture(t, "../internal/github/testdata/deployment_status.json")
	baseline["deployment"].(map[string]any)["sha"] = "0000000000000000000000000000000000000001"
	baseline["deployment"].(map[string]any)["id"] = 1
	baseline["deployment"].(map[string]any)["environment"] = "production"
	bs := baseline["deployment_status"].(map[string]any)
	bs["state"], bs["environment"] = "success", "production"
	bs["created_at"] = deployedAt.Add(-4 * time.Hour).Format(time.RFC3339)
	r := sendGitHub(t, base, "deployment_status", "status-0", baseline)
	require.Equal(t, http.StatusOK, r.status, r.body)

	// 1. The push: two commits on main of acme/api.
	push := fixture(t, "../internal/github/testdata/push.json")
	push["before"] = "0000000000000000000000000000000000000001"
	push["after"] = commits[1].sha
	var list []any
	for _, c := range commits {
		entry := map[string]any{}
		for k, v := range push["commits"].([]any)[0].(map[string]any) {
			entry[k] = v
		}
		entry["id"], entry["timestamp"] = c.sha, c.at.Format(time.RFC3339)
		list = append(list, entry)
	}
	push["commits"] = list
	push["head_commit"] = list[len(list)-1]
	r = sendGitHub(t, base, "push", "push-1", push)
	require.Equal(t, http.StatusOK, r.status, r.body)

	// 2. The deployment of the head to production, reported by GitHub.
	status := fixture(t, "../internal/github/testdata/deployment_status.json")
	status["deployment"].(map[string]any)["sha"] = commits[1].sha
	status["deployment"].(map[string]any)["environment"] = "production"
	ds := status["deployment_status"].(map[string]any)
	ds["state"], ds["environment"] = "success", "production"
	ds["created_at"], ds["updated_at"] = deployedAt.Format(time.RFC3339), deployedAt.Format(time.RFC3339)
	r = sendGitHub(t, base, "deployment_status", "status-1", status)
	require.Equal(t, http.StatusOK, r.status, r.body)

	svc := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production"}
	m := scrape(t, metricsURL)
	assert.Equal(t, 2.0, m.sum("platform_deployments_total", with(svc, "status", "success")), "the 200 came after the pipeline had it")
	assert.Equal(t, 2.0, m.sum("platform_lead_time_seconds_count", svc), "one lead time per pushed commit")
	assert.Equal(t, (3+2)*3600.0, m.sum("platform_lead_time_seconds_sum", svc))

	// A redelivery (same X-GitHub-Delivery) is counted once.
	r = sendGitHub(t, base, "deployment_status", "status-1", status)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.EqualValues(t, 1, r.body["duplicates"])

	// 3. An alert on the service fires 10 minutes after the deployment and
	// resolves 30 minutes later: a change failure, recovered 40 minutes
	// after the failed deployment.
	firing := fixture(t, "../internal/alertmanager/testdata/firing.json")
	alert := firing["alerts"].([]any)[0].(map[string]any)
	alert["startsAt"] = deployedAt.Add(10 * time.Minute).Format(time.RFC3339)
	r = sendAlertmanager(t, base, firing)
	require.Equal(t, http.StatusOK, r.status, r.body)
	m = scrape(t, metricsURL)
	assert.Equal(t, 1.0, m.sum("platform_deployment_failures_total", with(svc, "reason", "incident")))

	resolved := fixture(t, "../internal/alertmanager/testdata/resolved.json")
	ralert := resolved["alerts"].([]any)[0].(map[string]any)
	ralert["startsAt"] = alert["startsAt"]
	ralert["endsAt"] = deployedAt.Add(40 * time.Minute).Format(time.RFC3339)
	ralert["fingerprint"] = alert["fingerprint"]
	ralert["labels"] = alert["labels"]
	r = sendAlertmanager(t, base, resolved)
	require.Equal(t, http.StatusOK, r.status, r.body)
	m = scrape(t, metricsURL)
	assert.Equal(t, 1.0, m.sum("platform_recovery_time_seconds_count", svc))
	assert.Equal(t, 40*60.0, m.sum("platform_recovery_time_seconds_sum", svc))
	assert.Equal(t, 2.0, m.sum("platform_deployments_total", svc), "still two deployments")
	assert.Equal(t, 1.0, m.sum("platform_incidents_total", with(svc, "attributed", "true")))

	// A wrong signature is refused and changes nothing.
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/github", bytes.NewReader([]byte(`{}`)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "forged")
	req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.SignHMACSHA256("wrong", []byte(`{}`)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func fixture(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

type answer struct {
	status int
	body   map[string]any
}

func deliver(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.Unmarshal(raw, &body), "%s", raw)
	return answer{resp.StatusCode, body}
}

func sendGitHub(t *testing.T, base, eventType, delivery string, payload map[string]any) answer {
	t.Helper()
	body, err := json.Marshal(payload)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/github", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", eventType)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.SignHMACSHA256(githubSecret, body))
	return deliver(t, req)
}

func sendAlertmanager(t *testing.T, base string, payload map[string]any) answer {
	t.Helper()
	body, err := json.Marshal(payload)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/alertmanager", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", fmt.Sprintf("Bearer %s", alertmanagerToken))
	return deliver(t, req)
}
