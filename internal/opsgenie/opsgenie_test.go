package opsgenie

import (
	"encoding/base64"
	"encoding/json"
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

const token = "opsgenie-t0ken"

func authorized(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return &webhook.Request{Header: h, Body: body, Received: time.Date(2015, 1, 5, 10, 5, 0, 0, time.UTC)}
}

// config names the service by the docs samples' first tag ("tag1").
func config() Config {
	cfg := DefaultConfig()
	cfg.Token = token
	cfg.ServiceFields = []string{"tag:service:", "tag:"}
	cfg.Services = map[string]string{"tag1": "api"}
	cfg.Namespace = "shop"
	return cfg
}

func provider() *Provider { return New(config()) }

const incident = "opsgenie/052652ac-5d1c-464a-812a-7dd18bbfba8c"

var svc = event.Service{Namespace: "shop", Name: "api", Environment: "production"}

func TestCreate(t *testing.T) {
	res, err := provider().Parse(authorized(webhooktest.Fixture(t, "create.json")))
	require.NoError(t, err)
	assert.Equal(t, []event.Event{{
		Kind: event.IncidentOpened, Source: Source, ID: incident + "/opened",
		// createdAt 1420452191104 (milliseconds)
		Time:    time.Date(2015, 1, 5, 10, 3, 11, 104e6, time.UTC),
		Service: svc, IncidentID: incident,
	}}, res.Events)
}

func TestClose(t *testing.T) {
	res, err := provider().Parse(authorized(webhooktest.Fixture(t, "close.json")))
	require.NoError(t, err)
	assert.Equal(t, []event.Event{{
		Kind: event.IncidentResolved, Source: Source, ID: incident + "/closed",
		// updatedAt 1420452224764002246 (nanoseconds)
		Time:    time.Date(2015, 1, 5, 10, 3, 44, 764002246, time.UTC),
		Service: svc, IncidentID: incident,
	}}, res.Events)
}

func TestIgnored(t *testing.T) {
	res, err := provider().Parse(authorized(webhooktest.Fixture(t, "acknowledge.json")))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, `alert action "Acknowledge" is not counted`)
}

// with is the fixture with the alert's fields set.
func with(t *testing.T, name string, alert map[string]any) []byte {
	var d map[string]any
	require.NoError(t, json.Unmarshal(webhooktest.Fixture(t, name), &d))
	a := d["alert"].(map[string]any)
	for k, v := range alert {
		a[k] = v
	}
	b, err := json.Marshal(d)
	require.NoError(t, err)
	return b
}

func TestServiceFields(t *testing.T) {
	tests := map[string]struct {
		fields   []string
		alert    map[string]any
		services map[string]string
		want     event.Service
	}{
		"default: a service: tag": {nil, map[string]any{"tags": []string{"p1", "service:checkout", "environment:staging"}}, nil,
			event.Service{Name: "checkout", Environment: "staging"}},
		"default: the entity without a service: tag": {nil, map[string]any{"entity": "cart"}, nil,
			event.Service{Name: "cart", Environment: "production"}},
		"the tag wins over the entity": {nil, map[string]any{"entity": "cart", "tags": []string{"service:web"}}, nil,
			event.Service{Name: "web", Environment: "production"}},
		"mapped": {nil, map[string]any{"entity": "Cart Service"}, map[string]string{"Cart Service": "cart"},
			event.Service{Name: "cart", Environment: "production"}},
		"alias":  {[]string{"alias"}, nil, nil, event.Service{Name: "aliastest", Environment: "production"}},
		"source": {[]string{"source"}, nil, nil, event.Service{Name: "fili@ifountain.com", Environment: "production"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Token = token
			if tt.fields != nil {
				cfg.ServiceFields = tt.fields
			}
			cfg.Services = tt.services
			res, err := New(cfg).Parse(authorized(with(t, "create.json", tt.alert)))
			require.NoError(t, err)
			require.Len(t, res.Events, 1, res.Ignored)
			assert.Equal(t, tt.want, res.Events[0].Service)
		})
	}
	t.Run("no service: counted apart, not guessed", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Token = token
		res, err := New(cfg).Parse(authorized(webhooktest.Fixture(t, "create.json")))
		require.NoError(t, err)
		assert.Empty(t, res.Events)
		assert.Equal(t, "the alert carries none of the service fields [tag:service: entity]", res.Ignored)
	})
}

func TestRedelivery(t *testing.T) {
	// Opsgenie retries a failed delivery with the same alert action: the
	// same event, counted once by its id.
	first, err := provider().Parse(authorized(webhooktest.Fixture(t, "create.json")))
	require.NoError(t, err)
	again, err := provider().Parse(authorized(webhooktest.Fixture(t, "create.json")))
	require.NoError(t, err)
	assert.Equal(t, first.Events, again.Events)
	closed, err := provider().Parse(authorized(webhooktest.Fixture(t, "close.json")))
	require.NoError(t, err)
	assert.Equal(t, first.Events[0].IncidentID, closed.Events[0].IncidentID)
	assert.NotEqual(t, first.Events[0].ID, closed.Events[0].ID)
}

func TestAuthentication(t *testing.T) {
	body := webhooktest.Fixture(t, "create.json")
	basic := func(user, pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	}
	tests := map[string]struct {
		header, value string
		ok            bool
		want          string
	}{
		"bearer":               {"Authorization", "Bearer " + token, true, ""},
		"basic":                {"Authorization", basic("opsgenie", token), true, ""},
		"custom header":        {"X-Dora-Token", token, true, ""},
		"wrong custom header":  {"X-Dora-Token", "nope", false, "the X-Dora-Token header is not the configured token"},
		"wrong bearer":         {"Authorization", "Bearer nope", false, "not the configured token"},
		"wrong basic":          {"Authorization", basic("opsgenie", "nope"), false, "basic auth password"},
		"missing":              {"", "", false, "missing X-Dora-Token or Authorization header"},
		"another header":       {"X-Other", token, false, "missing X-Dora-Token or Authorization header"},
		"token prefix":         {"X-Dora-Token", token[:4], false, "not the configured token"},
		"bearer without token": {"Authorization", "Bearer ", false, "no credentials"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := config()
			cfg.TokenHeader = "X-Dora-Token"
			h := http.Header{}
			if tt.header != "" {
				h.Set(tt.header, tt.value)
			}
			res, err := New(cfg).Parse(&webhook.Request{Header: h, Body: body})
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
	t.Run("ignored actions are authenticated too", func(t *testing.T) {
		_, err := provider().Parse(&webhook.Request{Header: http.Header{}, Body: webhooktest.Fixture(t, "acknowledge.json")})
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
	t.Run("insecure_skip_verify accepts unauthenticated", func(t *testing.T) {
		cfg := config()
		cfg.Token, cfg.InsecureSkipVerify = "", true
		res, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
}

func TestMalformed(t *testing.T) {
	tests := map[string]string{
		`{`:                               "malformed JSON",
		``:                                "empty body",
		`{}`:                              `missing required field "action"`,
		`{"action":"Create"}`:             `missing required field "alert"`,
		`{"action":"Close","alert":null}`: `missing required field "alert"`,
		`{"action":"Create","alert":{"tags":["tag1"],"createdAt":1420452191104}}`:              `missing required field "alert.alertId"`,
		`{"action":"Create","alert":{"alertId":"a","tags":["tag1"]}}`:                          `missing required field "alert.createdAt"`,
		`{"action":"Close","alert":{"alertId":"a","tags":["tag1"],"createdAt":1420452191104}}`: `missing required field "alert.updatedAt"`,
		`{"action":"Create","alert":{"alertId":"a","createdAt":"yesterday"}}`:                  `field "alert.createdAt": expected int64`,
		`{"action":"Create","alert":{"alertId":7}}`:                                            `field "alert.alertId": expected string`,
		`{"action":"Create","alert":{"alertId":"a","tags":"tag1"}}`:                            `field "alert.tags": expected`,
		`{"action":7}`: `field "action": expected string`,
		`{"action":"Create","alert":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`: "nested deeper",
	}
	for body, want := range tests {
		t.Run(want, func(t *testing.T) {
			_, err := provider().Parse(authorized([]byte(body)))
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusBadRequest, herr.Status)
			assert.Contains(t, herr.Message, want)
		})
	}
}

func TestUnixTime(t *testing.T) {
	want := time.Date(2015, 1, 5, 10, 3, 11, 0, time.UTC)
	for _, v := range []int64{want.Unix(), want.UnixMilli(), want.UnixMicro(), want.UnixNano()} {
		got, err := unixTime("f", v)
		require.NoError(t, err)
		assert.Equal(t, want, got, "%d", v)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := config()
	require.NoError(t, cfg.Validate())
	def := DefaultConfig()
	assert.ErrorContains(t, def.Validate(), "token: required")
	def.InsecureSkipVerify = true
	assert.NoError(t, def.Validate())

	tests := map[string]func(*Config){
		`path: "opsgenie" must start with /`:   func(c *Config) { c.Path = "opsgenie" },
		"service_fields: at least one field":   func(c *Config) { c.ServiceFields = nil },
		`service_fields[0]: "details.service"`: func(c *Config) { c.ServiceFields = []string{"details.service"} },
		"services[tag1]: empty service name":   func(c *Config) { c.Services = map[string]string{"tag1": " "} },
		"services: empty field value":          func(c *Config) { c.Services = map[string]string{"": "api"} },
		"default_environment: must not be":     func(c *Config) { c.DefaultEnvironment = "" },
	}
	for want, mutate := range tests {
		t.Run(want, func(t *testing.T) {
			c := config()
			mutate(&c)
			assert.ErrorContains(t, c.Validate(), want)
		})
	}
}

// TestEventsOwnTheirData: the events of a delivery do not point into its
// body, which the server reuses for the next delivery.
func TestEventsOwnTheirData(t *testing.T) {
	webhooktest.CheckEventsOwnTheirData(t, provider(),
		authorized(webhooktest.Fixture(t, "create.json")), authorized(webhooktest.Fixture(t, "close.json")))
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"create.json", "close.json", "acknowledge.json"} {
		f.Add(webhooktest.Fixture(f, name))
	}
	f.Add([]byte(`{"action":"Close","alert":{"alertId":"a","tags":["service:api","environment:prod"],"updatedAt":1}}`))
	def := DefaultConfig()
	def.Token = token
	providers := []*Provider{provider(), New(def)}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range providers {
			res, err := p.Parse(authorized(body))
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
				require.Equal(t, Source, ev.Source)
				require.True(t, strings.HasPrefix(ev.IncidentID, "opsgenie/") && strings.HasPrefix(ev.ID, ev.IncidentID+"/"))
				require.False(t, ev.Time.IsZero())
				require.NotEmpty(t, ev.Service.Name)
				require.NotEmpty(t, ev.Service.Environment)
			}
		}
	})
}
