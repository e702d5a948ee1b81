package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCloudEventsSDKSendsCDEvents sends CDEvents with the CloudEvents Go SDK
// (what Tekton's and Keptn's CDEvents producers and the CDEvents Go SDK
// are built on), in binary mode (ce-* headers, the CDEvent as the body) and
// in structured mode (application/cloudevents+json), to the cdevents path
// of the real otelcol-dora. The first delivery of each mode loses its
// answer (503): the SDK's own retry sends it again and it is counted once.
func TestCloudEventsSDKSendsCDEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	base, metricsURL := sendersCollector(t)
	proxy := startLostAnswerProxy(t, base, 1)

	newClient := func() cloudevents.Client {
		c, err := cloudevents.NewClientHTTP(
			cehttp.WithTarget(proxy.URL+"/webhooks/cdevents"),
			cehttp.WithHeader("Authorization", "Bearer "+cdeventsToken),
		)
		require.NoError(t, err)
		return c
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	deployedAt := now.Add(-30 * time.Minute)
	detectedAt := now.Add(-20 * time.Minute)
	resolvedAt := now.Add(-5 * time.Minute)

	// The CDEvents spec's examples (internal/cdevents/testdata), at
	// today's times: the SDK builds the CloudEvent around the CDEvent.
	cdevent := func(path, id string, at time.Time) cloudevents.Event {
		ce := fixture(t, path)
		data := ce["data"].(map[string]any)
		c := data["context"].(map[string]any)
		c["id"], c["timestamp"] = id, at.Format(time.RFC3339Nano)
		e := cloudevents.NewEvent()
		e.SetID(id)
		e.SetSource(ce["source"].(string))
		e.SetType(ce["type"].(string))
		e.SetSubject(ce["subject"].(string))
		e.SetTime(at)
		require.NoError(t, e.SetData(cloudevents.ApplicationJSON, data))
		return e
	}
	send := func(ctx context.Context, e cloudevents.Event) {
		t.Helper()
		// The SDK's retry: 503 is one of the statuses it retries.
		ctx = cloudevents.ContextWithRetriesConstantBackoff(ctx, 200*time.Millisecond, 5)
		result := newClient().Send(ctx, e)
		require.True(t, cloudevents.IsACK(result), "%v\n%s", result, proxy)
	}
	svc := map[string]string{"namespace": "shop", "deployment": "api", "environment": "production"}

	// Binary mode: a service.deployed.
	send(cloudevents.WithEncodingBinary(context.Background()),
		cdevent("../internal/cdevents/testdata/service-deployed-structured.json", "deploy-8841", deployedAt))
	ex := proxy.exchanges()
	require.Len(t, ex, 2, "the lost answer and the SDK's retry:\n%s", proxy)
	for _, e := range ex {
		assert.Equal(t, "1.0", e.Header.Get("Ce-Specversion"), "binary mode")
		assert.Equal(t, "deploy-8841", e.Header.Get("Ce-Id"))
		assert.Equal(t, "application/json", e.Header.Get("Content-Type"))
		assert.Equal(t, http.StatusOK, e.Upstream, "%s", e.UpstreamBody)
	}
	assert.Equal(t, http.StatusServiceUnavailable, ex[0].Answered)
	assertAnswer(t, ex[0].UpstreamBody, 1, 0)
	assertAnswer(t, ex[1].UpstreamBody, 0, 1)
	m := scrape(t, metricsURL)
	assert.Equal(t, 1.0, m.sum("platform_deployments_total", with(svc, "status", "success")), "counted once")

	// Structured mode: the incident it caused, detected and resolved; the
	// detection's answer is lost.
	proxy.loseNext(1)
	ctx := cloudevents.WithEncodingStructured(context.Background())
	send(ctx, cdevent("../internal/cdevents/testdata/incident-detected.json", "incident-2031-detected", detectedAt))
	send(ctx, cdevent("../internal/cdevents/testdata/incident-resolved.json", "incident-2031-resolved", resolvedAt))
	ex = proxy.exchanges()[2:]
	require.Len(t, ex, 3, "the lost answer, the SDK's retry and the resolution:\n%s", proxy)
	for _, e := range ex {
		assert.Equal(t, "application/cloudevents+json", e.Header.Get("Content-Type"), "structured mode")
		assert.Empty(t, e.Header.Get("Ce-Id"))
		var body map[string]any
		require.NoError(t, json.Unmarshal(e.Body, &body))
		assert.Equal(t, "1.0", body["specversion"])
	}
	assertAnswer(t, ex[0].UpstreamBody, 1, 0)
	assertAnswer(t, ex[1].UpstreamBody, 0, 1)
	assertAnswer(t, ex[2].UpstreamBody, 1, 0)

	m = scrape(t, metricsURL)
	assert.Equal(t, 1.0, m.sum("platform_deployments_total", svc), "one deployment")
	assert.Equal(t, 1.0, m.sum("platform_incidents_total", with(svc, "attributed", "true")), "one incident, on the deployment")
	assert.Equal(t, 1.0, m.sum("platform_deployment_failures_total", with(svc, "reason", "incident")))
	assert.Equal(t, 1.0, m.sum("platform_recovery_time_seconds_count", svc))
	assert.InDelta(t, resolvedAt.Sub(deployedAt).Seconds(), m.sum("platform_recovery_time_seconds_sum", svc), 0.001,
		"from the deployment to the resolution, at the times the events carry")
}

// assertAnswer checks a webhook answer's accepted and duplicates counts.
func assertAnswer(t *testing.T, body []byte, accepted, duplicates float64) {
	t.Helper()
	var a map[string]any
	require.NoError(t, json.Unmarshal(body, &a), "%s", body)
	assert.Equal(t, accepted, a["accepted"], "accepted in %s", body)
	d, _ := a["duplicates"].(float64)
	assert.Equal(t, duplicates, d, "duplicates in %s", body)
}
