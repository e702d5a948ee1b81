package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/incidentio"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// The stories of the incident sources (enginetest.StoryOpsgenie,
// StoryIncidentIO, StoryGrafana) through the real otelcol-dora: the
// deployment as a signed generic delivery, the incident as the sender's
// own delivery (its published sample, with the story's times and service),
// authenticated as the sender does it; the redelivery is answered as a
// duplicate. Then the Prometheus endpoint must show the story's values
// exactly (checkScenarioMetrics).

const (
	opsgenieToken    = "e2e-opsgenie-token-0123456789"
	grafanaSecret    = "e2e-grafana-hmac-secret-0123456789"
	incidentioSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// startSourceCollector runs otelcol-dora with the generic source and the
// source configured by sourceYAML (lines under webhooks:, indented by six),
// no Kubernetes, the engine's default production environments, and the
// Prometheus exporter; it returns the webhook base URL and the metrics URL.
func startSourceCollector(t *testing.T, bin, sourceYAML string) (string, string) {
	t.Helper()
	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	production, err := json.Marshal(engine.DefaultConfig().Production)
	require.NoError(t, err)
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    production_environments: %s
    webhooks:
      endpoint: %s
      generic:
        secret: %s
%s
exporters:
  prometheus:
    endpoint: %s
    without_scope_info: true
extensions:
  health_check:
    endpoint: %s
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, production, webhookAddr, genericSecret, sourceYAML, promAddr, healthAddr), 0o600))
	runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, "http://" + promAddr + "/metrics"
}

// storyMoments is the story named and its moments, checked against what
// the test replays.
func storyMoments(t *testing.T, name string, again bool) (enginetest.Scenario, enginetest.IncidentSourceStory) {
	t.Helper()
	story := scenarioNamed(t, name)
	m, ok := enginetest.IncidentSourceMoments(story)
	require.True(t, ok, "the story changed: update this test")
	require.Equal(t, again, m.Again != nil, "the story changed: update this test")
	require.Equal(t, enginetest.API, m.Opened.Service, "the test sends the incident for shop/api")
	require.Equal(t, m.Opened.Service, m.Resolved.Service)
	return story, m
}

// post sends body to path with the headers.
func post(t *testing.T, base, path string, body []byte, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return deliver(t, req)
}

func requireAccepted(t *testing.T, what string, a answer) {
	t.Helper()
	require.Equal(t, http.StatusOK, a.status, "%s: %v", what, a.body)
	require.EqualValues(t, 1, a.body["accepted"], "%s: %v", what, a.body)
}

func requireDuplicate(t *testing.T, what string, a answer) {
	t.Helper()
	require.Equal(t, http.StatusOK, a.status, "%s: %v", what, a.body)
	require.EqualValues(t, 0, a.body["accepted"], "%s: %v", what, a.body)
	require.EqualValues(t, 1, a.body["duplicates"], "%s: %v", what, a.body)
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestOpsgenieEndToEnd replays enginetest.StoryOpsgenie: Opsgenie's Create
// and Close samples for the alert of shop/api (tag service:api), with the
// story's times, authenticated by a custom Authorization header.
func TestOpsgenieEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	story, m := storyMoments(t, enginetest.StoryOpsgenie, false)
	base, metricsURL := startSourceCollector(t, collectorBinary(t), `      opsgenie:
        token: `+opsgenieToken+`
        namespace: shop`)
	auth := map[string]string{"Authorization": "Bearer " + opsgenieToken}

	requireAccepted(t, "the deployment", sendGeneric(t, base, genericDelivery(t, m.Deployed)))

	withAlert := func(name string, set map[string]any) []byte {
		d := fixture(t, "../internal/opsgenie/testdata/"+name)
		a := d["alert"].(map[string]any)
		a["tags"] = []string{"service:api", "p1"}
		for k, v := range set {
			a[k] = v
		}
		return marshal(t, d)
	}
	create := withAlert("create.json", map[string]any{"createdAt": m.Opened.Time.UnixMilli()})
	requireAccepted(t, "Create", post(t, base, "/webhooks/opsgenie", create, auth))
	requireDuplicate(t, "Create redelivered", post(t, base, "/webhooks/opsgenie", create, auth))

	ack := post(t, base, "/webhooks/opsgenie", withAlert("acknowledge.json", nil), auth)
	require.Equal(t, http.StatusOK, ack.status, ack.body)
	assert.Equal(t, "ignored", ack.body["status"], ack.body)

	forged := post(t, base, "/webhooks/opsgenie", create, map[string]string{"Authorization": "Bearer nope"})
	assert.Equal(t, http.StatusUnauthorized, forged.status, forged.body)

	closed := withAlert("close.json", map[string]any{"updatedAt": m.Resolved.Time.UnixNano()})
	requireAccepted(t, "Close", post(t, base, "/webhooks/opsgenie", closed, auth))

	checkScenarioMetrics(t, scrape(t, metricsURL), story.Want)
}

// TestIncidentIOEndToEnd replays enginetest.StoryIncidentIO: incident.io's
// incident sample (its "Affected Team" field maps to api), created live,
// updated while live, then closed, each signed as Svix signs it (the
// Standard Webhooks test key as the endpoint's secret), with max_age on.
func TestIncidentIOEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	story, m := storyMoments(t, enginetest.StoryIncidentIO, true)
	base, metricsURL := startSourceCollector(t, collectorBinary(t), `      incidentio:
        secret: `+incidentioSecret+`
        max_age: 10m
        namespace: shop
        service_field: Affected Team
        services: {"Primary On-call": api}`)

	incident := func(name, category string, updatedAt time.Time) []byte {
		env := fixture(t, "../internal/incidentio/testdata/"+name)
		inc := env[env["event_type"].(string)].(map[string]any)
		inc["incident_status"].(map[string]any)["category"] = category
		inc["created_at"] = m.Opened.Time.Format(time.RFC3339Nano)
		inc["updated_at"] = updatedAt.Format(time.RFC3339Nano)
		return marshal(t, env)
	}
	send := func(msgID string, sent time.Time, body []byte) answer {
		sig, err := incidentio.Sign(incidentioSecret, msgID, sent.Unix(), body)
		require.NoError(t, err)
		return post(t, base, "/webhooks/incidentio", body, map[string]string{
			"webhook-id": msgID, "webhook-timestamp": strconv.FormatInt(sent.Unix(), 10), "webhook-signature": sig,
		})
	}

	requireAccepted(t, "the deployment", sendGeneric(t, base, genericDelivery(t, m.Deployed)))

	created := incident("incident_created_v2.json", "live", m.Opened.Time)
	requireAccepted(t, "created", send("msg_created", time.Now(), created))
	// Svix retries with the same webhook-id (and a new timestamp).
	requireDuplicate(t, "created redelivered", send("msg_created", time.Now(), created))

	update := send("msg_updated", time.Now(), incident("incident_updated_v2.json", "live", m.Again.Time))
	require.Equal(t, http.StatusOK, update.status, update.body)
	assert.Nil(t, update.body["duplicates"], "another delivery: %v", update.body)

	forged := post(t, base, "/webhooks/incidentio", created, map[string]string{
		"webhook-id": "msg_forged", "webhook-timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
	})
	assert.Equal(t, http.StatusUnauthorized, forged.status, "a signature of another delivery: %v", forged.body)
	old := send("msg_old", time.Now().Add(-time.Hour), created)
	assert.Equal(t, http.StatusBadRequest, old.status, old.body)
	assert.Contains(t, old.body["error"], "delivery older than max_age: webhook-timestamp")

	resolved := incident("incident_updated_v2.json", "closed", m.Resolved.Time)
	requireAccepted(t, "closed", send("msg_closed", time.Now(), resolved))

	checkScenarioMetrics(t, scrape(t, metricsURL), story.Want)
}

// TestGrafanaEndToEnd replays enginetest.StoryGrafana: Grafana's documented
// notification, its first alert labelled service=api, namespace=shop (the
// second has no service label and is not counted), firing then resolved,
// each signed as Grafana's hmacConfig signs with a timestamp header.
func TestGrafanaEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	story, m := storyMoments(t, enginetest.StoryGrafana, false)
	base, metricsURL := startSourceCollector(t, collectorBinary(t), `      grafana:
        secret: `+grafanaSecret+`
        timestamp_header: X-Grafana-Alerting-Timestamp
        max_age: 10m`)

	notification := func(status string) []byte {
		n := fixture(t, "../internal/grafana/testdata/firing.json")
		n["status"] = status
		for i, a := range n["alerts"].([]any) {
			alert := a.(map[string]any)
			alert["status"] = status
			alert["startsAt"] = m.Opened.Time.Format(time.RFC3339Nano)
			if status == "resolved" {
				alert["endsAt"] = m.Resolved.Time.Format(time.RFC3339Nano)
			}
			if i == 0 {
				labels := alert["labels"].(map[string]any)
				labels["service"], labels["namespace"] = "api", "shop"
			}
		}
		return marshal(t, n)
	}
	send := func(body []byte, sent time.Time) answer {
		ts := strconv.FormatInt(sent.Unix(), 10)
		return post(t, base, "/webhooks/grafana", body, map[string]string{
			"X-Grafana-Alerting-Timestamp": ts,
			"X-Grafana-Alerting-Signature": webhook.SignHMACSHA256(grafanaSecret, append([]byte(ts+":"), body...)),
		})
	}

	requireAccepted(t, "the deployment", sendGeneric(t, base, genericDelivery(t, m.Deployed)))

	firing := notification("firing")
	requireAccepted(t, "firing (one alert of two names a service)", send(firing, time.Now()))
	// A retry, or the repeat of the firing group: the same alert.
	requireDuplicate(t, "firing again", send(firing, time.Now()))

	unsigned := post(t, base, "/webhooks/grafana", firing, map[string]string{
		"X-Grafana-Alerting-Timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"X-Grafana-Alerting-Signature": webhook.SignHMACSHA256(grafanaSecret, firing),
	})
	assert.Equal(t, http.StatusUnauthorized, unsigned.status, "a signature without the timestamp: %v", unsigned.body)

	requireAccepted(t, "resolved", send(notification("resolved"), time.Now()))

	checkScenarioMetrics(t, scrape(t, metricsURL), story.Want)
}
