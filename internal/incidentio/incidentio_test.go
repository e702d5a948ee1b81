package incidentio

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

// secret is a signing secret as incident.io shows it: whsec_ and base64
// (the Standard Webhooks test key).
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// received is a little after the fixtures' created_at and updated_at.
var received = time.Date(2021, 8, 17, 13, 30, 0, 0, time.UTC)

// withStatus is the fixture with the incident's status category set (the
// sample's is triage) and, if given, its updated_at.
func withStatus(t testing.TB, name, category string, updatedAt time.Time) []byte {
	var env map[string]any
	require.NoError(t, json.Unmarshal(webhooktest.Fixture(t, name), &env))
	inc := env[env["event_type"].(string)].(map[string]any)
	inc["incident_status"].(map[string]any)["category"] = category
	if !updatedAt.IsZero() {
		inc["updated_at"] = updatedAt.Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(env)
	require.NoError(t, err)
	return b
}

func signed(t testing.TB, msgID string, ts time.Time, body []byte) *webhook.Request {
	sig, err := Sign(secret, msgID, ts.Unix(), body)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("webhook-id", msgID)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", sig)
	return &webhook.Request{Header: h, Body: body, Received: received}
}

// config reads the service from the sample's "Affected Team" field.
func config() Config {
	cfg := DefaultConfig()
	cfg.Secret = secret
	cfg.ServiceField = "Affected Team"
	cfg.Services = map[string]string{"Primary On-call": "api"}
	cfg.Namespace = "shop"
	return cfg
}

func provider() *Provider { return New(config()) }

const incident = "incidentio/01FDAG4SAP5TYPT98WGR2N7W91"

var (
	svc       = event.Service{Namespace: "shop", Name: "api", Environment: "production"}
	createdAt = time.Date(2021, 8, 17, 13, 28, 57, 801578000, time.UTC)
)

// TestStandardWebhooksVector checks the signature against the Standard
// Webhooks test vector (standard-webhooks libraries' test_sign_function).
func TestStandardWebhooksVector(t *testing.T) {
	sig, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	assert.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)

	// And the provider accepts that delivery as signed (an ignored one:
	// it is not an incident event).
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	_, err = provider().Parse(&webhook.Request{Header: h, Body: []byte(`{"test": 2432232314}`)})
	requireStatus(t, err, http.StatusBadRequest, `missing required field "event_type"`)
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=")
	_, err = provider().Parse(&webhook.Request{Header: h, Body: []byte(`{"test": 2432232314}`)})
	requireStatus(t, err, http.StatusUnauthorized, "no signature in webhook-signature matches")
}

func TestCreatedLive(t *testing.T) {
	res, err := provider().Parse(signed(t, "msg_1", received, withStatus(t, "incident_created_v2.json", "live", time.Time{})))
	require.NoError(t, err)
	assert.Equal(t, []event.Event{{
		Kind: event.IncidentOpened, Source: Source, ID: "incidentio/msg_1/api/opened",
		Time: createdAt, Service: svc, IncidentID: incident,
	}}, res.Events)
}

func TestUpdatedClosed(t *testing.T) {
	closedAt := time.Date(2021, 8, 17, 14, 10, 0, 0, time.UTC)
	for _, category := range []string{"learning", "closed"} {
		t.Run(category, func(t *testing.T) {
			res, err := provider().Parse(signed(t, "msg_2", received, withStatus(t, "incident_updated_v2.json", category, closedAt)))
			require.NoError(t, err)
			assert.Equal(t, []event.Event{{
				Kind: event.IncidentResolved, Source: Source, ID: "incidentio/msg_2/api/resolved",
				Time: closedAt, Service: svc, IncidentID: incident,
			}}, res.Events)
		})
	}
}

func TestRetrospective(t *testing.T) {
	// Created already closed: opened and resolved at once.
	closedAt := time.Date(2021, 8, 17, 15, 0, 0, 0, time.UTC)
	res, err := provider().Parse(signed(t, "msg_3", received, withStatus(t, "incident_created_v2.json", "closed", closedAt)))
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	assert.Equal(t, event.IncidentOpened, res.Events[0].Kind)
	assert.Equal(t, createdAt, res.Events[0].Time)
	assert.Equal(t, event.IncidentResolved, res.Events[1].Kind)
	assert.Equal(t, closedAt, res.Events[1].Time)
}

func TestIgnored(t *testing.T) {
	tests := map[string]struct {
		body []byte
		want string
	}{
		"the sample as published: triage": {webhooktest.Fixture(t, "incident_created_v2.json"), "in triage is not counted"},
		"declined":                        {withStatus(t, "incident_updated_v2.json", "declined", time.Time{}), "a declined incident"},
		"merged":                          {withStatus(t, "incident_updated_v2.json", "merged", time.Time{}), "a merged incident"},
		"follow-up event":                 {webhooktest.Fixture(t, "follow_up_updated_v2.json"), `event type "public_incident.follow_up_updated_v2" is not counted`},
		"test incident": {[]byte(strings.Replace(string(withStatus(t, "incident_created_v2.json", "live", time.Time{})), `"mode":"standard"`, `"mode":"test"`, 1)),
			"a test incident is not counted"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := provider().Parse(signed(t, "msg_i", received, tt.body))
			require.NoError(t, err)
			assert.Empty(t, res.Events)
			assert.Contains(t, res.Ignored, tt.want)
		})
	}
}

func TestServiceField(t *testing.T) {
	live := withStatus(t, "incident_created_v2.json", "live", time.Time{})
	t.Run("unmapped value is the name", func(t *testing.T) {
		cfg := config()
		cfg.Services = nil
		res, err := New(cfg).Parse(signed(t, "m", received, live))
		require.NoError(t, err)
		assert.Equal(t, "Primary On-call", res.Events[0].Service.Name)
	})
	t.Run("field name is case-insensitive", func(t *testing.T) {
		cfg := config()
		cfg.ServiceField = "affected team"
		res, err := New(cfg).Parse(signed(t, "m", received, live))
		require.NoError(t, err)
		assert.Equal(t, "api", res.Events[0].Service.Name)
	})
	t.Run("environment from a field", func(t *testing.T) {
		cfg := config()
		cfg.EnvironmentField = "Affected Team"
		res, err := New(cfg).Parse(signed(t, "m", received, live))
		require.NoError(t, err)
		assert.Equal(t, "Primary On-call", res.Events[0].Service.Environment)
	})
	t.Run("no such field: counted apart, not guessed", func(t *testing.T) {
		res, err := New(DefaultConfigWith(secret)).Parse(signed(t, "m", received, live))
		require.NoError(t, err)
		assert.Empty(t, res.Events)
		assert.Equal(t, `the incident has no value in its custom field "Affected services"`, res.Ignored)
	})
	t.Run("several services: an incident on each", func(t *testing.T) {
		body := strings.Replace(string(live), `"values":[{`, `"values":[{"value_text":"cart"},{`, 1)
		res, err := provider().Parse(signed(t, "m", received, []byte(body)))
		require.NoError(t, err)
		require.Len(t, res.Events, 2)
		assert.Equal(t, "cart", res.Events[0].Service.Name)
		assert.Equal(t, "api", res.Events[1].Service.Name)
		assert.NotEqual(t, res.Events[0].ID, res.Events[1].ID)
	})
}

// DefaultConfigWith is the default configuration with secret.
func DefaultConfigWith(secret string) Config {
	cfg := DefaultConfig()
	cfg.Secret = configopaque.String(secret)
	return cfg
}

func TestRedelivery(t *testing.T) {
	// Svix redelivers with the same webhook-id: the same events, counted
	// once. Another delivery about the incident has another id, but the
	// same incident.
	body := withStatus(t, "incident_created_v2.json", "live", time.Time{})
	first, err := provider().Parse(signed(t, "msg_1", received, body))
	require.NoError(t, err)
	again, err := provider().Parse(signed(t, "msg_1", received.Add(time.Minute), body))
	require.NoError(t, err)
	assert.Equal(t, first.Events, again.Events)
	update, err := provider().Parse(signed(t, "msg_9", received, withStatus(t, "incident_updated_v2.json", "live", time.Time{})))
	require.NoError(t, err)
	assert.Equal(t, first.Events[0].IncidentID, update.Events[0].IncidentID)
	assert.NotEqual(t, first.Events[0].ID, update.Events[0].ID)
}

func TestSignature(t *testing.T) {
	body := withStatus(t, "incident_created_v2.json", "live", time.Time{})
	good := signed(t, "msg_1", received, body)
	other, err := Sign("whsec_"+"b3RoZXIgc2VjcmV0", "msg_1", received.Unix(), body)
	require.NoError(t, err)
	tests := map[string]struct {
		mutate func(h http.Header)
		want   string
	}{
		"missing id":             {func(h http.Header) { h.Del("webhook-id") }, "missing webhook-id"},
		"missing timestamp":      {func(h http.Header) { h.Del("webhook-timestamp") }, "missing webhook-timestamp"},
		"missing signature":      {func(h http.Header) { h.Del("webhook-signature") }, "missing webhook-signature"},
		"timestamp not a number": {func(h http.Header) { h.Set("webhook-timestamp", "now") }, "not Unix seconds"},
		"other id":               {func(h http.Header) { h.Set("webhook-id", "msg_2") }, "matches"},
		"other timestamp":        {func(h http.Header) { h.Set("webhook-timestamp", strconv.FormatInt(received.Unix()+1, 10)) }, "matches"},
		"wrong key":              {func(h http.Header) { h.Set("webhook-signature", other) }, "matches"},
		"no v1": {func(h http.Header) {
			h.Set("webhook-signature", "v2,"+strings.TrimPrefix(h.Get("webhook-signature"), "v1,"))
		}, "no v1 signature"},
		"not base64":              {func(h http.Header) { h.Set("webhook-signature", "v1,%%%") }, "matches"},
		"empty v1":                {func(h http.Header) { h.Set("webhook-signature", "v1,") }, "matches"},
		"prefix of the signature": {func(h http.Header) { h.Set("webhook-signature", h.Get("webhook-signature")[:20]) }, "matches"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			req := signed(t, "msg_1", received, body)
			tt.mutate(req.Header)
			_, err := provider().Parse(req)
			requireStatus(t, err, http.StatusUnauthorized, tt.want)
		})
	}
	t.Run("several signatures (rotation), one good", func(t *testing.T) {
		req := signed(t, "msg_1", received, body)
		req.Header.Set("webhook-signature", other+" v1a,abc "+good.Header.Get("webhook-signature"))
		_, err := provider().Parse(req)
		require.NoError(t, err)
	})
	t.Run("svix-* headers", func(t *testing.T) {
		req := &webhook.Request{Header: http.Header{}, Body: body, Received: received}
		for _, k := range []string{"id", "timestamp", "signature"} {
			req.Header.Set("svix-"+k, good.Header.Get("webhook-"+k))
		}
		res, err := provider().Parse(req)
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
	t.Run("tampered body", func(t *testing.T) {
		req := signed(t, "msg_1", received, body)
		req.Body = []byte(strings.Replace(string(body), "Primary On-call", "Primary On-calm", 1))
		_, err := provider().Parse(req)
		requireStatus(t, err, http.StatusUnauthorized, "matches")
	})
	t.Run("secret without whsec_ prefix", func(t *testing.T) {
		cfg := config()
		cfg.Secret = configopaque.String(strings.TrimPrefix(secret, "whsec_"))
		_, err := New(cfg).Parse(signed(t, "msg_1", received, body))
		require.NoError(t, err)
	})
	t.Run("insecure_skip_verify accepts unsigned, still needs webhook-id", func(t *testing.T) {
		cfg := config()
		cfg.Secret, cfg.InsecureSkipVerify = "", true
		_, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		requireStatus(t, err, http.StatusBadRequest, "missing webhook-id header")
		h := http.Header{}
		h.Set("webhook-id", "msg_1")
		res, err := New(cfg).Parse(&webhook.Request{Header: h, Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
}

func TestMaxAge(t *testing.T) {
	body := withStatus(t, "incident_created_v2.json", "live", time.Time{})
	cfg := config()
	cfg.MaxAge = 5 * time.Minute
	_, err := New(cfg).Parse(signed(t, "m", received.Add(-4*time.Minute), body))
	require.NoError(t, err)
	_, err = New(cfg).Parse(signed(t, "m", received.Add(-6*time.Minute), body))
	requireStatus(t, err, http.StatusBadRequest, "delivery older than max_age: webhook-timestamp")
	_, err = New(cfg).Parse(signed(t, "m", received.Add(6*time.Minute), body))
	requireStatus(t, err, http.StatusBadRequest, "delivery from the future: webhook-timestamp")
	t.Run("off by default", func(t *testing.T) {
		_, err := provider().Parse(signed(t, "m", received.Add(-24*time.Hour), body))
		require.NoError(t, err)
	})
}

func TestMalformed(t *testing.T) {
	const created = `{"event_type":"public_incident.incident_created_v2","public_incident.incident_created_v2":`
	tests := map[string]string{
		`{`:                     "malformed JSON",
		``:                      "empty body",
		`[]`:                    "expected",
		`{}`:                    `missing required field "event_type"`,
		`{"event_type":7}`:      `field "event_type": expected a string`,
		created + `null}`:       `missing required field "public_incident.incident_created_v2"`,
		created + `"x"}`:        `expected an incident object`,
		created + `{}}`:         `missing required field "public_incident.incident_created_v2.id"`,
		created + `{"id":"i"}}`: `missing required field "public_incident.incident_created_v2.incident_status"`,
		created + `{"id":"i","incident_status":{}}}`:                                     `incident_status.category"`,
		created + `{"id":"i","incident_status":{"category":"open"}}}`:                    `"open" is not one of`,
		created + `{"id":"i","incident_status":{"category":"live"}}}`:                    `missing required field "public_incident.incident_created_v2.created_at"`,
		created + `{"id":"i","incident_status":{"category":"live"},"created_at":"now"}}`: "public_incident.incident_created_v2: malformed JSON",
		created + `{"id":7}}`: `public_incident.incident_created_v2: field "id": expected string`,
		`{"event_type":"public_incident.incident_updated_v2","public_incident.incident_updated_v2":{"id":"i","incident_status":{"category":"closed"}}}`: `updated_at"`,
		created + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`:                                                                               "nested deeper",
	}
	for body, want := range tests {
		t.Run(want, func(t *testing.T) {
			_, err := provider().Parse(signed(t, "m", received, []byte(body)))
			requireStatus(t, err, http.StatusBadRequest, want)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := config()
	require.NoError(t, cfg.Validate())
	def := DefaultConfig()
	assert.ErrorContains(t, def.Validate(), "secret: required")
	def.InsecureSkipVerify = true
	assert.NoError(t, def.Validate())
	tests := map[string]func(*Config){
		`path: "x" must start with /`:               func(c *Config) { c.Path = "x" },
		"secret: not a signing secret":              func(c *Config) { c.Secret = "whsec_%%%" },
		"secret: the signing secret's key is empty": func(c *Config) { c.Secret = "whsec_" },
		"max_age: -1s is negative":                  func(c *Config) { c.MaxAge = -time.Second },
		"service_field: the custom field":           func(c *Config) { c.ServiceField = " " },
		"services[x]: empty service name":           func(c *Config) { c.Services = map[string]string{"x": ""} },
		"services: empty field value":               func(c *Config) { c.Services = map[string]string{"": "api"} },
		"default_environment: must not be empty":    func(c *Config) { c.DefaultEnvironment = "" },
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
		signed(t, "msg_1", received, withStatus(t, "incident_created_v2.json", "live", time.Time{})),
		signed(t, "msg_2", received, withStatus(t, "incident_updated_v2.json", "closed", received)))
}

func requireStatus(t *testing.T, err error, status int, want string) {
	t.Helper()
	var herr *webhook.Error
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, status, herr.Status)
	assert.Contains(t, herr.Message, want)
}

func FuzzParse(f *testing.F) {
	f.Add(webhooktest.Fixture(f, "incident_created_v2.json"))
	f.Add(withStatus(f, "incident_created_v2.json", "live", time.Time{}))
	f.Add(withStatus(f, "incident_updated_v2.json", "closed", received))
	f.Add(withStatus(f, "incident_created_v2.json", "learning", received))
	f.Add(webhooktest.Fixture(f, "follow_up_updated_v2.json"))
	providers := []*Provider{provider(), New(DefaultConfigWith(secret))}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range providers {
			res, err := p.Parse(signed(t, "msg_f", received, body))
			if err != nil {
				var herr *webhook.Error
				require.ErrorAs(t, err, &herr, "every parse error carries an HTTP status")
				return
			}
			if len(res.Events) == 0 {
				require.NotEmpty(t, res.Ignored)
			}
			for _, ev := range res.Events {
				require.True(t, ev.Kind == event.IncidentOpened || ev.Kind == event.IncidentResolved)
				require.Equal(t, Source, ev.Source)
				require.True(t, strings.HasPrefix(ev.ID, "incidentio/msg_f/"))
				require.True(t, strings.HasPrefix(ev.IncidentID, "incidentio/") && len(ev.IncidentID) > len("incidentio/"))
				require.False(t, ev.Time.IsZero())
				require.NotEmpty(t, ev.Service.Name)
				require.NotEmpty(t, ev.Service.Environment)
			}
		}
	})
}

func TestSigningKey(t *testing.T) {
	for secret, want := range map[string]string{
		"whsec_c2VjcmV0": "secret", // whsec_ and base64
		"c2VjcmV0":       "secret", // base64 without the prefix, as Svix's libraries take it
		"not-base64!":    "not-base64!",
	} {
		key, err := signingKey(secret)
		require.NoError(t, err, secret)
		assert.Equal(t, want, string(key), secret)
	}
	_, err := signingKey("whsec_not-base64!")
	assert.ErrorContains(t, err, "not a signing secret")
}
