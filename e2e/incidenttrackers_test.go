package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitlab"
	"github.com/otelcol-dora/dorareceiver/internal/jira"
	"github.com/otelcol-dora/dorareceiver/internal/servicenow"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const (
	serviceNowSecret = "e2e-servicenow-secret"
	jiraSecret       = "e2e-jira-secret"
	gitlabToken      = "e2e-gitlab-token"
	// The CI of the ServiceNow Table API documentation's incident, mapped
	// to the stories' service.
	serviceNowCI = "a9c0c8d2c6112276018f7705562f9cb0"
)

// TestIncidentSourcesEndToEnd replays the incident source stories
// (enginetest.IncidentTrackerStories) through the real otelcol-dora: the
// deployments as signed generic deliveries, the incident's opening and
// resolution as deliveries of its own source built from that source's
// fixtures, with real signatures (ServiceNow's base64 HMAC as a business
// rule computes it, Jira's X-Hub-Signature, GitLab's token). Every
// incident delivery is sent twice, as a sender retrying it: the second is
// answered as a duplicate. The Prometheus endpoint must then show exactly
// the story's values.
func TestIncidentSourcesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	builders := map[string]func(t *testing.T, base string, ev, opened event.Event) *http.Request{
		event.SourceServiceNow: serviceNowDelivery,
		event.SourceJira:       jiraDelivery,
		event.SourceGitLab:     gitlabIncidentDelivery,
	}
	for _, story := range enginetest.IncidentTrackerStories() {
		t.Run(story.Name, func(t *testing.T) {
			t.Parallel()
			sc := scenarioNamed(t, story.Name)
			webhookURL, metricsURL := startIncidentCollector(t, bin)
			var opened event.Event
			for i, ev := range sc.Events {
				if ev.Source == enginetest.Source {
					a := sendGeneric(t, webhookURL, genericDelivery(t, ev))
					require.Equal(t, http.StatusOK, a.status, "event %d (%s): %v", i, ev.ID, a.body)
					require.EqualValues(t, 1, a.body["accepted"], "event %d (%s): %v", i, ev.ID, a.body)
					continue
				}
				build, ok := builders[ev.Source]
				require.True(t, ok, "event %d: no delivery of source %q: add one", i, ev.Source)
				require.Equal(t, enginetest.API, ev.Service, "the deliveries name the stories' service, api")
				if ev.Kind == event.IncidentOpened {
					opened = ev
				}
				require.Equal(t, opened.IncidentID, ev.IncidentID, "event %d: one incident per story", i)
				for try, want := range []string{"accepted", "duplicates"} {
					a := deliver(t, build(t, webhookURL, ev, opened))
					require.Equal(t, http.StatusOK, a.status, "event %d (%s), try %d: %v", i, ev.ID, try, a.body)
					require.EqualValues(t, 1, a.body[want], "event %d (%s), try %d: %v", i, ev.ID, try, a.body)
				}
			}
			checkScenarioMetrics(t, scrape(t, metricsURL), sc.Want)
		})
	}
}

// serviceNowDelivery is the business rule's delivery of ev: the
// documentation's incident, opened when the story's incident opens and
// resolved when it is resolved, signed as GlideCertificateEncryption does.
func serviceNowDelivery(t *testing.T, base string, ev, opened event.Event) *http.Request {
	const layout = "2006-01-02 15:04:05"
	set := func(m map[string]any, k, v string) { m[k] = map[string]any{"value": v, "display_value": v} }
	var m map[string]any
	if ev.Kind == event.IncidentOpened {
		m = fixture(t, "../internal/servicenow/testdata/business_rule_opened.json")
		set(m, "sys_updated_on", ev.Time.Format(layout))
	} else {
		m = fixture(t, "../internal/servicenow/testdata/business_rule_resolved.json")
		set(m, "resolved_at", ev.Time.Format(layout))
		set(m, "sys_updated_on", ev.Time.Format(layout))
	}
	set(m, "opened_at", opened.Time.Format(layout))
	body, err := json.Marshal(m)
	require.NoError(t, err)
	mac := hmac.New(sha256.New, []byte(serviceNowSecret))
	mac.Write(body)
	req := newJSONRequest(t, base+servicenow.DefaultPath, body)
	req.Header.Set(servicenow.SignatureHeader, "sha256="+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return req
}

// jiraDelivery is Jira Cloud's delivery of ev: the fixtures' incident
// JRA-20002 created when the story's incident opens, resolved when it is.
func jiraDelivery(t *testing.T, base string, ev, opened event.Event) *http.Request {
	const layout = "2006-01-02T15:04:05.000-0700"
	name := "incident_created.json"
	if ev.Kind == event.IncidentResolved {
		name = "incident_resolved.json"
	}
	m := fixture(t, "../internal/jira/testdata/"+name)
	m["timestamp"] = ev.Time.UnixMilli()
	fields := m["issue"].(map[string]any)["fields"].(map[string]any)
	fields["created"] = opened.Time.In(time.FixedZone("", -6*3600)).Format(layout)
	if ev.Kind == event.IncidentResolved {
		fields["resolutiondate"] = ev.Time.In(time.FixedZone("", -6*3600)).Format(layout)
	}
	body, err := json.Marshal(m)
	require.NoError(t, err)
	req := newJSONRequest(t, base+jira.DefaultPath, body)
	req.Header.Set(jira.SignatureHeader, "sha256="+webhook.SignHMACSHA256(jiraSecret, body))
	req.Header.Set("X-Atlassian-Webhook-Identifier", fmt.Sprintf("%d", ev.Time.UnixMilli()))
	return req
}

// gitlabIncidentDelivery is GitLab's Issue Hook of ev: the documentation's
// issue as an incident of gitlabhq/gitlab-test labelled service::api,
// opened, then closed.
func gitlabIncidentDelivery(t *testing.T, base string, ev, opened event.Event) *http.Request {
	m := fixture(t, "../internal/gitlab/testdata/docs_issue_hook.json")
	m["object_kind"], m["event_type"] = "work_item", "work_item"
	delete(m, "changes")
	oa := m["object_attributes"].(map[string]any)
	oa["type"] = "Incident"
	oa["labels"] = []any{map[string]any{"title": "service::" + ev.Service.Name}}
	oa["created_at"], oa["updated_at"] = opened.Time.Format(time.RFC3339), ev.Time.Format(time.RFC3339)
	if ev.Kind == event.IncidentResolved {
		oa["action"], oa["state"], oa["closed_at"] = "close", "closed", ev.Time.Format(time.RFC3339)
	}
	body, err := json.Marshal(m)
	require.NoError(t, err)
	req := newJSONRequest(t, base+gitlab.DefaultPath, body)
	req.Header.Set(gitlab.EventHeader, "Issue Hook")
	req.Header.Set(gitlab.TokenHeader, gitlabToken)
	return req
}

func newJSONRequest(t *testing.T, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// startIncidentCollector runs otelcol-dora with the generic source and the
// incident sources, each naming the stories' service shop/api: ServiceNow
// by the CI's sys_id, Jira by its component, GitLab by the label (its
// namespace from the services entry of the project).
func startIncidentCollector(t *testing.T, bin string) (string, string) {
	t.Helper()
	webhookAddr, promAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	production, err := json.Marshal(engine.DefaultConfig().Production)
	require.NoError(t, err)
	api := enginetest.API
	config := filepath.Join(t.TempDir(), "otelcol-dora.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `receivers:
  dora:
    production_environments: %[1]s
    services:
      - {repository: gitlabhq/gitlab-test, namespace: %[2]s, deployment: %[3]s}
    webhooks:
      endpoint: %[4]s
      generic: {secret: %[5]s}
      servicenow:
        secret: %[6]s
        namespace: %[2]s
        services: {%[7]s: %[3]s}
      jira:
        secret: %[8]s
        namespace: %[2]s
        services: {"Issue Navigator": %[3]s}
      gitlab: {secret: %[9]s}
exporters:
  prometheus:
    endpoint: %[10]s
    without_scope_info: true
extensions:
  health_check:
    endpoint: %[11]s
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [dora]
      exporters: [prometheus]
`, production, api.Namespace, api.Name, webhookAddr, genericSecret, serviceNowSecret, serviceNowCI,
		jiraSecret, gitlabToken, promAddr, healthAddr), 0o600))
	runCollector(t, bin, []string{"--config", config}, nil, healthAddr)
	return "http://" + webhookAddr, "http://" + promAddr + "/metrics"
}
