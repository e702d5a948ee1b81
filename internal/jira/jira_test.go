package jira

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

const secret = "jira-s3cr3t"

var (
	created  = time.Date(2009, 12, 17, 5, 46, 10, 612e6, time.UTC) // 2009-12-16T23:46:10.612-0600
	resolved = time.Date(2009, 12, 17, 7, 2, 44, 120e6, time.UTC)
)

// patched is fixture name with edit applied to the delivery and its issue
// fields.
func patched(t testing.TB, name string, edit func(d, fields map[string]any)) []byte {
	t.Helper()
	return webhooktest.Patched(t, name, func(m map[string]any) {
		edit(m, m["issue"].(map[string]any)["fields"].(map[string]any))
	})
}

func signed(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, body))
	return &webhook.Request{Header: h, Body: body}
}

func config() Config {
	cfg := DefaultConfig()
	cfg.Secret = secret
	return cfg
}

func provider() *Provider { return New(config()) }

func parse(t *testing.T, p *Provider, body []byte) webhook.Result {
	t.Helper()
	res, err := p.Parse(signed(body))
	require.NoError(t, err)
	return res
}

func TestCreated(t *testing.T) {
	res := parse(t, provider(), webhooktest.Fixture(t, "incident_created.json"))
	assert.Equal(t, []event.Event{{
		Kind:       event.IncidentOpened,
		Source:     event.SourceJira,
		ID:         "jira/99291/opened",
		Time:       created,
		Service:    event.Service{Name: "Issue Navigator", Environment: "production"},
		IncidentID: "jira/99291",
	}}, res.Events)
}

func TestResolved(t *testing.T) {
	cfg := config()
	cfg.Services = map[string]string{"Issue Navigator": "issue-nav"}
	cfg.Namespace, cfg.Environment = "jira", "prod"
	res := parse(t, New(cfg), webhooktest.Fixture(t, "incident_resolved.json"))
	assert.Equal(t, []event.Event{{
		Kind:       event.IncidentResolved,
		Source:     event.SourceJira,
		ID:         "jira/99291/resolved/1261033364",
		Time:       resolved,
		Service:    event.Service{Namespace: "jira", Name: "issue-nav", Environment: "prod"},
		IncidentID: "jira/99291",
	}}, res.Events)
}

// Atlassian's published example: an update of an issue that is no
// incident (a New Feature, with labels UI, dialogue, move).
func TestAtlassianExampleIsNoIncident(t *testing.T) {
	res := parse(t, provider(), webhooktest.Fixture(t, "atlassian_example.json"))
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "issue JRA-20002 is not an incident")
	t.Run("with the incident label it is one, opened when created", func(t *testing.T) {
		body := patched(t, "atlassian_example.json", func(_, f map[string]any) {
			f["labels"] = []any{"UI", "Incident", "service:issue-nav"}
		})
		res := parse(t, provider(), body)
		require.Len(t, res.Events, 1, res.Ignored)
		assert.Equal(t, event.IncidentOpened, res.Events[0].Kind)
		assert.Equal(t, created, res.Events[0].Time)
		assert.Equal(t, "issue-nav", res.Events[0].Service.Name)
		assert.Equal(t, "jira/99291/opened", res.Events[0].ID)
	})
}

func TestResolution(t *testing.T) {
	tests := map[string]struct {
		edit func(d, f map[string]any)
		want string // the event's kind, or "ignored: ..."
	}{
		"status category done, no resolution": {func(d, f map[string]any) { f["resolution"] = nil }, "incident_resolved"},
		"resolution set, status not done": {func(d, f map[string]any) {
			f["status"] = map[string]any{"name": "Closed", "statusCategory": map[string]any{"key": "indeterminate"}}
		}, "incident_resolved"},
		"no resolutiondate: the delivery's timestamp": {func(d, f map[string]any) { f["resolutiondate"] = nil }, "incident_resolved"},
		"a comment on a resolved incident": {func(d, f map[string]any) {
			d["changelog"] = map[string]any{"items": []any{map[string]any{"field": "labels"}}}
		}, "ignored: update of resolved incident JRA-20002"},
		"created resolved": {func(d, f map[string]any) { d["webhookEvent"], d["changelog"] = EventCreated, nil }, "incident_resolved"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res := parse(t, provider(), patched(t, "incident_resolved.json", tt.edit))
			if ignored, ok := strings.CutPrefix(tt.want, "ignored: "); ok {
				assert.Empty(t, res.Events)
				assert.Contains(t, res.Ignored, ignored)
				return
			}
			require.Len(t, res.Events, 1, res.Ignored)
			assert.Equal(t, tt.want, res.Events[0].Kind.String())
			assert.Equal(t, resolved, res.Events[0].Time)
		})
	}
}

func TestReopened(t *testing.T) {
	body := patched(t, "incident_created.json", func(d, f map[string]any) {
		d["webhookEvent"], d["timestamp"] = EventUpdated, 1261040000000
		d["changelog"] = map[string]any{"items": []any{
			map[string]any{"field": "resolution", "from": "10000", "fromString": "Done", "to": nil, "toString": nil},
			map[string]any{"field": "status", "from": "10001", "to": "4", "toString": "Reopened"},
		}}
	})
	res := parse(t, provider(), body)
	require.Len(t, res.Events, 1)
	ev := res.Events[0]
	assert.Equal(t, event.IncidentOpened, ev.Kind)
	assert.Equal(t, "jira/99291", ev.IncidentID)
	assert.Equal(t, "jira/99291/reopened/1261040000000", ev.ID)
	assert.Equal(t, time.UnixMilli(1261040000000).UTC(), ev.Time)
}

// Every update of an open incident (an assignee, a comment, the incident
// label added) opens it at its creation, under one id: counted once.
func TestUpdatesOfAnOpenIncidentCountOnce(t *testing.T) {
	first := parse(t, provider(), webhooktest.Fixture(t, "incident_created.json"))
	update := parse(t, provider(), patched(t, "incident_created.json", func(d, f map[string]any) {
		d["webhookEvent"], d["timestamp"] = EventUpdated, 1261030000000
		d["changelog"] = map[string]any{"items": []any{map[string]any{"field": "assignee"}}}
	}))
	assert.Equal(t, first.Events, update.Events)
}

func TestIncidentByTypeOrLabel(t *testing.T) {
	tests := map[string]struct {
		cfg  func(*Config)
		edit func(d, f map[string]any)
		want bool
	}{
		"type Incident":               {nil, nil, true},
		"type compared ignoring case": {nil, func(_, f map[string]any) { f["issuetype"] = map[string]any{"name": "incident"} }, true},
		"another type":                {nil, func(_, f map[string]any) { f["issuetype"] = map[string]any{"name": "Bug"} }, false},
		"another type, incident label": {nil, func(_, f map[string]any) {
			f["issuetype"], f["labels"] = map[string]any{"name": "Bug"}, []any{"INCIDENT"}
		}, true},
		"Jira Service Management's type": {nil, func(_, f map[string]any) {
			f["issuetype"] = map[string]any{"name": "[System] Incident"}
		}, true},
		"configured type": {func(c *Config) { c.IssueTypes = []string{"Outage"} }, func(_, f map[string]any) {
			f["issuetype"] = map[string]any{"name": "Outage"}
		}, true},
		"type no longer counted": {func(c *Config) { c.IssueTypes = nil }, nil, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := config()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			body := webhooktest.Fixture(t, "incident_created.json")
			if tt.edit != nil {
				body = patched(t, "incident_created.json", tt.edit)
			}
			res := parse(t, New(cfg), body)
			assert.Equal(t, tt.want, len(res.Events) == 1, res.Ignored)
		})
	}
}

func TestServiceFields(t *testing.T) {
	tests := map[string]struct {
		fields   []string
		services map[string]string
		edit     func(f map[string]any)
		want     string
	}{
		"component":                              {nil, nil, nil, "Issue Navigator"},
		"component mapped":                       {nil, map[string]string{"Issue Navigator": "search"}, nil, "search"},
		"a service label wins":                   {nil, nil, func(f map[string]any) { f["labels"] = []any{"service:checkout"} }, "checkout"},
		"project key":                            {[]string{"project"}, map[string]string{"JRA": "jira"}, nil, "jira"},
		"custom select field":                    {[]string{"customfield_10050"}, nil, func(f map[string]any) { f["customfield_10050"] = map[string]any{"value": "payments", "id": "10100"} }, "payments"},
		"custom text field":                      {[]string{"customfield_10051"}, nil, func(f map[string]any) { f["customfield_10051"] = " cart " }, "cart"},
		"custom multi-select field":              {[]string{"customfield_10052"}, nil, func(f map[string]any) { f["customfield_10052"] = []any{map[string]any{"value": "web"}} }, "web"},
		"an empty custom field, then components": {[]string{"customfield_10050", "components"}, nil, func(f map[string]any) { f["customfield_10050"] = nil }, "Issue Navigator"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := config()
			cfg.Services = tt.services
			if tt.fields != nil {
				cfg.ServiceFields = tt.fields
			}
			body := webhooktest.Fixture(t, "incident_created.json")
			if tt.edit != nil {
				body = patched(t, "incident_created.json", func(_, f map[string]any) { tt.edit(f) })
			}
			res := parse(t, New(cfg), body)
			require.Len(t, res.Events, 1, res.Ignored)
			assert.Equal(t, tt.want, res.Events[0].Service.Name)
		})
	}
}

// An incident naming no service is not guessed: answered ignored.
func TestNoService(t *testing.T) {
	res := parse(t, provider(), patched(t, "incident_created.json", func(_, f map[string]any) { f["components"] = []any{} }))
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "incident JRA-20002 names no service (service_fields [labels components])")
}

func TestIgnoredEvents(t *testing.T) {
	for _, ev := range []string{"jira:issue_deleted", "comment_created", "sprint_started"} {
		res := parse(t, provider(), patched(t, "incident_created.json", func(d, _ map[string]any) { d["webhookEvent"] = ev }))
		assert.Empty(t, res.Events)
		assert.Contains(t, res.Ignored, `webhook event "`+ev+`" is not counted`)
	}
}

func TestRedelivery(t *testing.T) {
	for _, name := range []string{"incident_created.json", "incident_resolved.json"} {
		first := parse(t, provider(), webhooktest.Fixture(t, name))
		again := parse(t, provider(), webhooktest.Fixture(t, name))
		require.Len(t, first.Events, 1)
		assert.Equal(t, first.Events, again.Events, name)
	}
}

func TestEventsOwnTheirData(t *testing.T) {
	cfg := config()
	cfg.ServiceFields = []string{"customfield_10050"}
	body := patched(t, "incident_created.json", func(_, f map[string]any) { f["customfield_10050"] = map[string]any{"value": "payments"} })
	webhooktest.CheckEventsOwnTheirData(t, New(cfg), signed(body))
	webhooktest.CheckEventsOwnTheirData(t, provider(),
		signed(webhooktest.Fixture(t, "incident_created.json")), signed(webhooktest.Fixture(t, "incident_resolved.json")))
}

func TestSignature(t *testing.T) {
	body := webhooktest.Fixture(t, "incident_created.json")
	good := "sha256=" + webhook.SignHMACSHA256(secret, body)
	tests := map[string]struct {
		header string
		ok     bool
		want   string
	}{
		"signed":    {good, true, ""},
		"missing":   {"", false, "missing X-Hub-Signature"},
		"sha1":      {"sha1=abc", false, "must be sha256="},
		"wrong key": {"sha256=" + webhook.SignHMACSHA256("other", body), false, "does not match"},
		"truncated": {good[:30], false, "does not match"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set(SignatureHeader, tt.header)
			}
			res, err := provider().Parse(&webhook.Request{Header: h, Body: body})
			if tt.ok {
				require.NoError(t, err)
				assert.Len(t, res.Events, 1)
				return
			}
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusUnauthorized, herr.Status)
			assert.Contains(t, herr.Message, tt.want)
		})
	}
	t.Run("ignored events are verified too", func(t *testing.T) {
		_, err := provider().Parse(&webhook.Request{Header: http.Header{}, Body: webhooktest.Fixture(t, "atlassian_example.json")})
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
}

func TestConfigValidate(t *testing.T) {
	cfg := config()
	require.NoError(t, cfg.Validate())
	def := DefaultConfig()
	assert.ErrorContains(t, def.Validate(), "secret: required")
	tests := map[string]func(*Config){
		`path: "jira" must start with /`:           func(c *Config) { c.Path = "jira" },
		"issue_types, labels: at least one":        func(c *Config) { c.IssueTypes, c.Labels = nil, nil },
		"labels[0]: empty label":                   func(c *Config) { c.Labels = []string{""} },
		"issue_types[0]: empty issue type":         func(c *Config) { c.IssueTypes = []string{" "} },
		"service_fields: at least one":             func(c *Config) { c.ServiceFields = nil },
		`service_fields[0]: "summary" is not`:      func(c *Config) { c.ServiceFields = []string{"summary"} },
		"service_label_prefix: required":           func(c *Config) { c.ServiceLabelPrefix = "" },
		"environment: must not be empty":           func(c *Config) { c.Environment = " " },
		"services[x]: empty service name":          func(c *Config) { c.Services = map[string]string{"x": ""} },
		`service_fields[0]: "customfield_" is not`: func(c *Config) { c.ServiceFields = []string{"customfield_"} },
	}
	for want, mutate := range tests {
		t.Run(want, func(t *testing.T) {
			c := config()
			mutate(&c)
			assert.ErrorContains(t, c.Validate(), want)
		})
	}
}

func TestMalformed(t *testing.T) {
	const issue = `"issue":{"id":"1","key":"OPS-1","fields":{"issuetype":{"name":"Incident"},"components":[{"name":"api"}]`
	tests := map[string]string{
		`{`:                                     "malformed JSON",
		``:                                      "empty body",
		`{}`:                                    `missing required field "webhookEvent"`,
		`{"webhookEvent":7}`:                    `field "webhookEvent": expected string`,
		`{"webhookEvent":"jira:issue_created"}`: `missing required field "issue"`,
		`{"webhookEvent":"jira:issue_created","issue":{}}`:                                                                              `missing required field "issue.id"`,
		`{"webhookEvent":"jira:issue_created","issue":{"id":"1"}}`:                                                                      `missing required field "issue.fields"`,
		`{"webhookEvent":"jira:issue_created","issue":{"id":"1","fields":[]}}`:                                                          `missing required field "issue.fields"`,
		`{"webhookEvent":"jira:issue_created",` + issue + `}}}`:                                                                         `missing required field "issue.fields.created"`,
		`{"webhookEvent":"jira:issue_created",` + issue + `,"created":"monday"}}}`:                                                      `field "issue.fields.created": "monday" is not a time`,
		`{"webhookEvent":"jira:issue_created",` + issue + `,"labels":"x"}}}`:                                                            `issue.fields: field "labels": expected`,
		`{"webhookEvent":"jira:issue_created","timestamp":"x",` + issue + `}}}`:                                                         `field "timestamp": "x" is not a time`,
		`{"webhookEvent":"jira:issue_created","timestamp":-5,` + issue + `}}}`:                                                          `field "timestamp": -5 is not a time`,
		`{"webhookEvent":"jira:issue_updated",` + issue + `,"resolution":{"name":"Done"}}},"changelog":{"items":[{"field":"status"}]}}`: `missing required field "issue.fields.resolutiondate" (or "timestamp")`,
		`{"webhookEvent":"jira:issue_updated",` + issue + `}},"changelog":{"items":[{"field":"resolution","from":"1","to":null}]}}`:     `missing required field "timestamp"`,
		`{"webhookEvent":"jira:issue_created",` + issue + `,"resolutiondate":"x","resolution":{}}}}`:                                    `field "issue.fields.resolutiondate"`,
		`{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`:                                                               "nested deeper",
	}
	for body, want := range tests {
		t.Run(want, func(t *testing.T) {
			_, err := provider().Parse(signed([]byte(body)))
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr, body)
			assert.Equal(t, http.StatusBadRequest, herr.Status)
			assert.Contains(t, herr.Message, want)
		})
	}
	t.Run("custom field of the wrong shape", func(t *testing.T) {
		cfg := config()
		cfg.ServiceFields = []string{"customfield_1"}
		body := `{"webhookEvent":"jira:issue_created",` + issue + `,"created":"2009-12-16T23:46:10.612-0600","customfield_1":7}}}`
		_, err := New(cfg).Parse(signed([]byte(body)))
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Contains(t, herr.Message, `field "issue.fields.customfield_1": expected a text`)
	})
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"incident_created.json", "incident_resolved.json", "atlassian_example.json"} {
		f.Add(webhooktest.Fixture(f, name))
	}
	f.Add([]byte(`{"webhookEvent":"jira:issue_updated","timestamp":1261040000000,"issue":{"id":"1","key":"K-1","fields":{"labels":["incident","service:x"],"created":"2009-12-16T23:46:10.612-0600","customfield_1":[[{"value":"a"}]]}},"changelog":{"items":[{"field":"resolution","from":"1","to":""}]}}`))
	cfg := config()
	cfg.ServiceFields = []string{"customfield_1", "project", "labels", "components"}
	providers := []*Provider{provider(), New(cfg)}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range providers {
			res, err := p.Parse(signed(body))
			if err != nil {
				var herr *webhook.Error
				require.ErrorAs(t, err, &herr, "every parse error carries an HTTP status")
				return
			}
			if len(res.Events) == 0 {
				require.NotEmpty(t, res.Ignored)
			}
			require.LessOrEqual(t, len(res.Events), 1)
			for _, ev := range res.Events {
				require.True(t, ev.Kind == event.IncidentOpened || ev.Kind == event.IncidentResolved)
				require.Equal(t, event.SourceJira, ev.Source)
				require.True(t, strings.HasPrefix(ev.ID, ev.IncidentID+"/"))
				require.False(t, ev.Time.IsZero())
				require.NotEmpty(t, strings.TrimSpace(ev.Service.Name))
			}
		}
	})
}
