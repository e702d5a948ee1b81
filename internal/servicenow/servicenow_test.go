package servicenow

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

const (
	secret = "snow-s3cr3t"
	// The sys_ids of the documentation's incident and of its CI.
	sysID = "a9e30c7dc61122760116894de7bcc7bd"
	ciID  = "a9c0c8d2c6112276018f7705562f9cb0"
)

// received is shortly after the fixtures' resolution.
var received = time.Date(2015, 11, 3, 1, 20, 0, 0, time.UTC)

// signBase64 signs as the business rule does (GlideCertificateEncryption
// returns base64).
func signBase64(body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func signed(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set(SignatureHeader, "sha256="+signBase64(body))
	return &webhook.Request{Header: h, Body: body, Received: received}
}

func config() Config {
	cfg := DefaultConfig()
	cfg.Secret = secret
	cfg.Services = map[string]string{ciID: "sfa"}
	return cfg
}

func provider() *Provider { return New(config()) }

func parse(t *testing.T, p *Provider, body []byte) webhook.Result {
	t.Helper()
	res, err := p.Parse(signed(body))
	require.NoError(t, err)
	return res
}

func TestOpened(t *testing.T) {
	res := parse(t, provider(), webhooktest.Fixture(t, "business_rule_opened.json"))
	assert.Equal(t, []event.Event{{
		Kind:       event.IncidentOpened,
		Source:     event.SourceServiceNow,
		ID:         "servicenow/" + sysID + "/opened",
		Time:       time.Date(2015, 11, 2, 22, 4, 15, 0, time.UTC),
		Service:    event.Service{Name: "sfa", Environment: "production"},
		IncidentID: "servicenow/" + sysID,
	}}, res.Events)
}

func TestResolved(t *testing.T) {
	cfg := config()
	cfg.Namespace, cfg.Environment = "sales", "prod-eu"
	res := parse(t, New(cfg), webhooktest.Fixture(t, "business_rule_resolved.json"))
	at := time.Date(2015, 11, 3, 1, 19, 42, 0, time.UTC)
	assert.Equal(t, []event.Event{{
		Kind:       event.IncidentResolved,
		Source:     event.SourceServiceNow,
		ID:         "servicenow/" + sysID + "/resolved/" + "1446513582",
		Time:       at,
		Service:    event.Service{Namespace: "sales", Name: "sfa", Environment: "prod-eu"},
		IncidentID: "servicenow/" + sysID,
	}}, res.Events)
	assert.EqualValues(t, at.Unix(), 1446513582)
}

// The Table API's own response (GET /now/table/incident/{sys_id}, from
// ServiceNow's documentation) is taken as it is: {"result": record}, with
// reference fields as {"link", "value"}.
func TestTableAPIRecord(t *testing.T) {
	res := parse(t, provider(), webhooktest.Fixture(t, "table_api_incident.json"))
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.IncidentOpened, res.Events[0].Kind)
	assert.Equal(t, "sfa", res.Events[0].Service.Name)
	assert.Equal(t, "servicenow/"+sysID+"/opened", res.Events[0].ID)
}

// Every update of an open incident sends the record again: one event id.
func TestUpdatesOfAnOpenIncidentCountOnce(t *testing.T) {
	first := parse(t, provider(), webhooktest.Fixture(t, "business_rule_opened.json"))
	later := parse(t, provider(), webhooktest.Patched(t, "business_rule_opened.json", func(m map[string]any) {
		m["state"] = map[string]any{"value": "2", "display_value": "In Progress"}
		m["sys_updated_on"] = map[string]any{"value": "2015-11-02 23:00:00"}
	}))
	assert.Equal(t, first.Events, later.Events)
}

func TestStates(t *testing.T) {
	tests := map[string]struct {
		state any
		want  event.Kind
	}{
		"new":                  {"1", event.IncidentOpened},
		"in progress":          {map[string]any{"value": "2"}, event.IncidentOpened},
		"on hold":              {"3", event.IncidentOpened},
		"a custom state":       {"101", event.IncidentOpened},
		"resolved":             {"6", event.IncidentResolved},
		"closed":               {"7", event.IncidentResolved},
		"canceled":             {"8", event.IncidentResolved},
		"a number":             {6, event.IncidentResolved},
		"display value only":   {map[string]any{"display_value": "Closed"}, event.IncidentResolved},
		"display value, open":  {map[string]any{"display_value": "In Progress"}, event.IncidentOpened},
		"value wins over name": {map[string]any{"value": "2", "display_value": "Resolved"}, event.IncidentOpened},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res := parse(t, provider(), webhooktest.Patched(t, "business_rule_resolved.json", func(m map[string]any) { m["state"] = tt.state }))
			require.Len(t, res.Events, 1)
			assert.Equal(t, tt.want, res.Events[0].Kind)
		})
	}
	t.Run("closed without resolved_at: closed_at", func(t *testing.T) {
		res := parse(t, provider(), webhooktest.Patched(t, "business_rule_resolved.json", func(m map[string]any) {
			m["state"], m["resolved_at"], m["closed_at"] = "7", "", "2015-11-03 02:00:00"
		}))
		assert.Equal(t, time.Date(2015, 11, 3, 2, 0, 0, 0, time.UTC), res.Events[0].Time)
	})
}

func TestReopened(t *testing.T) {
	p := provider()
	opened := parse(t, p, webhooktest.Fixture(t, "business_rule_opened.json"))
	reopen := func(updated string) webhook.Result {
		return parse(t, p, webhooktest.Patched(t, "business_rule_opened.json", func(m map[string]any) {
			m["state"], m["reopen_count"], m["sys_updated_on"] = "2", "1", updated
		}))
	}
	first, later := reopen("2015-11-03 04:00:00"), reopen("2015-11-03 05:00:00")
	require.Len(t, first.Events, 1)
	ev := first.Events[0]
	assert.Equal(t, event.IncidentOpened, ev.Kind)
	assert.Equal(t, opened.Events[0].IncidentID, ev.IncidentID, "the same incident, opened again")
	assert.Equal(t, "servicenow/"+sysID+"/reopened/1", ev.ID)
	assert.Equal(t, time.Date(2015, 11, 3, 4, 0, 0, 0, time.UTC), ev.Time)
	assert.Equal(t, ev.ID, later.Events[0].ID, "updates after the reopening: one event id")
}

func TestServiceFields(t *testing.T) {
	ref := func(value, display string) map[string]any {
		return map[string]any{"value": value, "display_value": display}
	}
	tests := map[string]struct {
		fields   []string
		services map[string]string
		edit     func(map[string]any)
		want     string
	}{
		"business_service display value first": {nil, nil, func(m map[string]any) {
			m["business_service"], m["cmdb_ci"] = ref("27d32778c0a8000b00db970eeaa60f16", "Sales Force Automation"), ref(ciID, "sfa-app01")
		}, "Sales Force Automation"},
		"a display value mapped": {nil, map[string]string{"Sales Force Automation": "sfa"}, func(m map[string]any) {
			m["business_service"] = ref("27d32778c0a8000b00db970eeaa60f16", "Sales Force Automation")
		}, "sfa"},
		"a sys_id mapped": {nil, map[string]string{ciID: "sfa-api"}, nil, "sfa-api"},
		"an unmapped sys_id is no name, the next field is used": {[]string{"cmdb_ci", "u_service"}, nil, func(m map[string]any) {
			m["u_service"] = "checkout"
		}, "checkout"},
		"assignment group": {[]string{"assignment_group"}, nil, func(m map[string]any) {
			m["assignment_group"] = ref("8a4dde73c6112278017a6a4baf547aa7", "Software")
		}, "Software"},
		"plain string field": {[]string{"u_service"}, nil, func(m map[string]any) { m["u_service"] = " api " }, "api"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := config()
			cfg.Services = tt.services
			if tt.fields != nil {
				cfg.ServiceFields = tt.fields
			}
			body := webhooktest.Fixture(t, "business_rule_opened.json")
			if tt.edit != nil {
				body = webhooktest.Patched(t, "business_rule_opened.json", tt.edit)
			}
			res := parse(t, New(cfg), body)
			require.Len(t, res.Events, 1, res.Ignored)
			assert.Equal(t, tt.want, res.Events[0].Service.Name)
		})
	}
}

// An incident naming no service is not guessed: it is answered ignored,
// with the fields looked at.
func TestNoService(t *testing.T) {
	cfg := config()
	cfg.Services = nil // the CI's sys_id is not mapped, and it has no display value
	res := parse(t, New(cfg), webhooktest.Fixture(t, "business_rule_opened.json"))
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "incident "+sysID+" names no service")
	assert.Contains(t, res.Ignored, "[business_service cmdb_ci]")
}

func TestOtherTables(t *testing.T) {
	res := parse(t, provider(), webhooktest.Patched(t, "business_rule_opened.json", func(m map[string]any) { m["sys_class_name"] = "problem" }))
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, `record of table "problem"`)
}

func TestRedelivery(t *testing.T) {
	p := provider()
	for _, name := range []string{"business_rule_opened.json", "business_rule_resolved.json"} {
		first := parse(t, p, webhooktest.Fixture(t, name))
		again := parse(t, p, webhooktest.Fixture(t, name))
		assert.Equal(t, first.Events, again.Events, name)
	}
}

func TestEventsOwnTheirData(t *testing.T) {
	webhooktest.CheckEventsOwnTheirData(t, provider(),
		signed(webhooktest.Fixture(t, "business_rule_opened.json")),
		signed(webhooktest.Fixture(t, "business_rule_resolved.json")),
		signed(webhooktest.Fixture(t, "table_api_incident.json")))
}

func TestSignature(t *testing.T) {
	body := webhooktest.Fixture(t, "business_rule_opened.json")
	hexSig := webhook.SignHMACSHA256(secret, body)
	tests := map[string]struct {
		header string
		ok     bool
		want   string
	}{
		"base64, as GlideCertificateEncryption": {"sha256=" + signBase64(body), true, ""},
		"hex":                                   {"sha256=" + hexSig, true, ""},
		"missing":                               {"", false, "missing X-Signature-256"},
		"no prefix":                             {signBase64(body), false, "must start with sha256="},
		"wrong key":                             {"sha256=" + webhook.SignHMACSHA256("other", body), false, "does not match"},
		"truncated":                             {"sha256=" + hexSig[:40], false, "does not match"},
		"garbage":                               {"sha256=%%%", false, "does not match"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set(SignatureHeader, tt.header)
			}
			res, err := provider().Parse(&webhook.Request{Header: h, Body: body, Received: received})
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
	t.Run("tampered body", func(t *testing.T) {
		req := signed(body)
		req.Body = []byte(strings.Replace(string(body), `"1"`, `"6"`, 1))
		_, err := provider().Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
	t.Run("insecure_skip_verify accepts unsigned", func(t *testing.T) {
		cfg := config()
		cfg.Secret, cfg.InsecureSkipVerify = "", true
		res, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
}

func TestMaxAge(t *testing.T) {
	cfg := config()
	cfg.MaxAge = time.Hour
	body := webhooktest.Fixture(t, "business_rule_resolved.json") // updated 01:19:42
	req := signed(body)
	_, err := New(cfg).Parse(req)
	require.NoError(t, err)

	req.Received = time.Date(2015, 11, 3, 3, 0, 0, 0, time.UTC)
	_, err = New(cfg).Parse(req)
	var herr *webhook.Error
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, http.StatusBadRequest, herr.Status)
	assert.Contains(t, herr.Message, "delivery older than max_age: sys_updated_on")

	noTime := webhooktest.Patched(t, "business_rule_resolved.json", func(m map[string]any) { delete(m, "sys_updated_on") })
	_, err = New(cfg).Parse(signed(noTime))
	require.ErrorAs(t, err, &herr)
	assert.Contains(t, herr.Message, `missing required field "sys_updated_on" (max_age is set)`)
}

func TestConfigValidate(t *testing.T) {
	cfg := config()
	require.NoError(t, cfg.Validate())
	def := DefaultConfig()
	assert.ErrorContains(t, def.Validate(), "secret: required")
	tests := map[string]func(*Config){
		`path: "snow" must start with /`:     func(c *Config) { c.Path = "snow" },
		"service_fields: at least one":       func(c *Config) { c.ServiceFields = nil },
		"service_fields[1]: empty":           func(c *Config) { c.ServiceFields = []string{"cmdb_ci", " "} },
		"environment: must not be empty":     func(c *Config) { c.Environment = "" },
		"max_age: -1s is negative":           func(c *Config) { c.MaxAge = -time.Second },
		"services[x]: empty service name":    func(c *Config) { c.Services = map[string]string{"x": ""} },
		"services: empty ServiceNow display": func(c *Config) { c.Services = map[string]string{"": "api"} },
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
	const ok = `"sys_id":"a9e3","opened_at":"2015-11-02 22:04:15","cmdb_ci":"api"`
	tests := map[string]string{
		`{`:                              "malformed JSON",
		``:                               "empty body",
		`[]`:                             "expected",
		`null`:                           "expected a JSON object",
		`{"result":[]}`:                  `field "result": expected the incident record`,
		`{"state":"1"}`:                  `missing required field "sys_id"`,
		`{"sys_id":"a9e3"}`:              `missing required field "state"`,
		`{"sys_id":"a9e3","state":null}`: `missing required field "state"`,
		`{` + ok + `,"state":[]}`:        `field "state": expected a string`,
		`{"sys_id":"a9e3","state":"1","cmdb_ci":"api"}`:                   `missing required field "opened_at"`,
		`{` + ok + `,"state":"1","opened_at":"yesterday"}`:                `field "opened_at": "yesterday" is not a time`,
		`{` + ok + `,"state":"6"}`:                                        `missing required field "resolved_at" (the incident's state is "6")`,
		`{` + ok + `,"state":"6","resolved_at":"2015-13-01"}`:             `field "resolved_at"`,
		`{` + ok + `,"state":"2","reopen_count":"x"}`:                     `field "reopen_count": "x" is not a count`,
		`{` + ok + `,"state":"2","reopen_count":"1"}`:                     `missing required field "sys_updated_on"`,
		`{` + ok + `,"state":{"value":5}}`:                                `field "state": expected a string`,
		`{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`: "nested deeper",
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
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"business_rule_opened.json", "business_rule_resolved.json", "table_api_incident.json"} {
		f.Add(webhooktest.Fixture(f, name))
	}
	f.Add([]byte(`{"sys_id":"a","state":"2","reopen_count":"3","sys_updated_on":"2015-11-02 22:04:15","opened_at":"2015-11-02 22:04:15","cmdb_ci":{"value":"x"}}`))
	f.Add([]byte(`{"result":{"sys_id":"a","state":{"display_value":"Closed"},"closed_at":"2015-11-02T22:04:15Z","business_service":"api"}}`))
	cfg := config()
	cfg.MaxAge = time.Hour
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
				require.Equal(t, event.SourceServiceNow, ev.Source)
				require.True(t, strings.HasPrefix(ev.ID, ev.IncidentID+"/"))
				require.False(t, ev.Time.IsZero())
				require.NotEmpty(t, strings.TrimSpace(ev.Service.Name))
				require.Equal(t, "production", ev.Service.Environment)
			}
		}
	})
}
