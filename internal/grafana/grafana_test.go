package grafana

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
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
	token  = "grafana-t0ken"
	secret = "grafana-hmac-s3cret"
)

// received is shortly after the docs sample's second alert fired.
var received = time.Date(2021, 10, 12, 8, 0, 0, 0, time.UTC)

// resolvedOf is the notification Grafana sends when the alerts of body
// resolve at endsAt: the same alerts with status "resolved" and endsAt set
// (Grafana publishes a firing sample only; see testdata/README.md).
func resolvedOf(t testing.TB, body []byte, endsAt time.Time) []byte {
	var n map[string]any
	require.NoError(t, json.Unmarshal(body, &n))
	n["status"], n["state"] = "resolved", "ok"
	for _, a := range n["alerts"].([]any) {
		alert := a.(map[string]any)
		alert["status"] = "resolved"
		alert["endsAt"] = endsAt.Format(time.RFC3339Nano)
	}
	out, err := json.Marshal(n)
	require.NoError(t, err)
	return out
}

func withToken(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return &webhook.Request{Header: h, Body: body, Received: received}
}

// config reads the service from the docs sample's team label.
func config() Config {
	cfg := DefaultConfig()
	cfg.Token = token
	cfg.ServiceLabels = []string{"service", "team"}
	return cfg
}

func provider() *Provider { return New(config()) }

// The docs sample's alerts, as events of the team label's service.
func opened(fp string, startsAt time.Time) event.Event {
	id := "grafana/" + fp + "/" + strconv.FormatInt(startsAt.Unix(), 10)
	return event.Event{
		Kind: event.IncidentOpened, Source: Source, ID: id + "/firing", Time: startsAt,
		Service:    event.Service{Name: "blue", Environment: "production"},
		IncidentID: id,
	}
}

var (
	memoryStart = time.Date(2021, 10, 12, 7, 51, 3, 157076000, time.UTC)
	cpuStart    = time.Date(2021, 10, 12, 7, 56, 3, 157076000, time.UTC)
)

func TestFiring(t *testing.T) {
	res, err := provider().Parse(withToken(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	assert.Empty(t, res.Ignored)
	assert.Equal(t, []event.Event{opened("c6eadffa33fcdf37", memoryStart), opened("bc97ff14869b13e3", cpuStart)}, res.Events)
}

func TestResolved(t *testing.T) {
	endsAt := time.Date(2021, 10, 12, 8, 10, 0, 0, time.UTC)
	p := provider()
	fired, err := p.Parse(withToken(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	res, err := p.Parse(withToken(resolvedOf(t, webhooktest.Fixture(t, "firing.json"), endsAt)))
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	for i, ev := range res.Events {
		assert.Equal(t, event.IncidentResolved, ev.Kind)
		assert.Equal(t, endsAt, ev.Time)
		assert.Equal(t, fired.Events[i].IncidentID, ev.IncidentID, "one incident, opened and resolved")
		assert.Equal(t, fired.Events[i].Service, ev.Service)
		assert.NotEqual(t, fired.Events[i].ID, ev.ID)
	}
	t.Run("without endsAt", func(t *testing.T) {
		body := strings.Replace(string(webhooktest.Fixture(t, "firing.json")), `"status": "firing",
      "labels": {
        "alertname": "High memory usage"`, `"status": "resolved",
      "labels": {
        "alertname": "High memory usage"`, 1)
		_, err := provider().Parse(withToken([]byte(body)))
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusBadRequest, herr.Status)
		assert.Contains(t, herr.Message, `alerts[0]: resolved alert without "endsAt"`)
	})
}

func TestServiceLabels(t *testing.T) {
	tests := map[string]struct {
		mutate  func(*Config)
		want    event.Service
		ignored string
	}{
		"label value is the name": {func(*Config) {}, event.Service{Name: "blue", Environment: "production"}, ""},
		"services maps it": {func(c *Config) { c.Services = map[string]string{"blue": "api"} },
			event.Service{Name: "api", Environment: "production"}, ""},
		"environment and namespace labels": {func(c *Config) { c.EnvironmentLabel, c.NamespaceLabel = "zone", "alertname" },
			event.Service{Namespace: "High memory usage", Name: "blue", Environment: "us-1"}, ""},
		"first label wins": {func(c *Config) { c.ServiceLabels = []string{"zone", "team"} },
			event.Service{Name: "us-1", Environment: "production"}, ""},
		"no service label: counted apart, not guessed": {func(c *Config) { c.ServiceLabels = []string{"service"} },
			event.Service{}, `2 alert(s) carry none of the service labels [service]`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := config()
			tt.mutate(&cfg)
			res, err := New(cfg).Parse(withToken(webhooktest.Fixture(t, "firing.json")))
			require.NoError(t, err)
			if tt.ignored != "" {
				assert.Empty(t, res.Events)
				assert.Contains(t, res.Ignored, tt.ignored)
				return
			}
			require.NotEmpty(t, res.Events)
			assert.Equal(t, tt.want, res.Events[0].Service)
		})
	}
}

func TestRedelivery(t *testing.T) {
	// Grafana retries a failed notification, and repeats a firing group
	// every repeat_interval, with the same alerts: the same ids.
	first, err := provider().Parse(withToken(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	again, err := provider().Parse(withToken(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	assert.Equal(t, first.Events, again.Events)
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestToken(t *testing.T) {
	body := webhooktest.Fixture(t, "firing.json")
	tests := map[string]struct {
		header string
		ok     bool
		want   string
	}{
		"bearer": {"Bearer " + token, true, ""},
		"another scheme (Grafana's Authentication Header Scheme)": {"Token " + token, true, ""},
		"basic auth, any user": {basic("grafana", token), true, ""},
		"missing":              {"", false, "missing Authorization header"},
		"wrong bearer":         {"Bearer nope", false, "not the configured token"},
		"wrong basic password": {basic("grafana", "nope"), false, "basic auth password"},
		"basic not base64":     {"Basic %%%", false, "not base64"},
		"scheme only":          {"Bearer", false, "no credentials"},
		"token prefix only":    {"Bearer " + token[:5], false, "not the configured token"},
		"token as basic user":  {basic(token, ""), false, "basic auth password"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			res, err := provider().Parse(&webhook.Request{Header: h, Body: body, Received: received})
			if tt.ok {
				require.NoError(t, err)
				assert.Len(t, res.Events, 2)
				return
			}
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusUnauthorized, herr.Status)
			assert.Contains(t, herr.Message, tt.want)
		})
	}
}

// signed signs body as Grafana's hmacConfig does (grafana/alerting
// http/hmac.go): hex HMAC-SHA256 of the body, or of "<ts>:<body>".
func signed(body []byte, ts string) *webhook.Request {
	h := http.Header{}
	msg := body
	if ts != "" {
		h.Set("X-Grafana-Alerting-Timestamp", ts)
		msg = append([]byte(ts+":"), body...)
	}
	h.Set(DefaultSignatureHeader, webhook.SignHMACSHA256(secret, msg))
	return &webhook.Request{Header: h, Body: body, Received: received}
}

func hmacConfig(timestampHeader string) Config {
	cfg := config()
	cfg.Token, cfg.Secret, cfg.TimestampHeader = "", secret, timestampHeader
	return cfg
}

func TestSignature(t *testing.T) {
	body := webhooktest.Fixture(t, "firing.json")
	ts := strconv.FormatInt(received.Unix(), 10)
	t.Run("body only", func(t *testing.T) {
		p := New(hmacConfig(""))
		res, err := p.Parse(signed(body, ""))
		require.NoError(t, err)
		assert.Len(t, res.Events, 2)

		req := signed(body, "")
		req.Body = []byte(strings.Replace(string(body), `"team": "blue"`, `"team": "red"`, 1))
		_, err = p.Parse(req)
		requireStatus(t, err, http.StatusUnauthorized, "does not match the body")

		_, err = p.Parse(&webhook.Request{Header: http.Header{}, Body: body, Received: received})
		requireStatus(t, err, http.StatusUnauthorized, "missing X-Grafana-Alerting-Signature")
	})
	t.Run("timestamp and body", func(t *testing.T) {
		p := New(hmacConfig("X-Grafana-Alerting-Timestamp"))
		res, err := p.Parse(signed(body, ts))
		require.NoError(t, err)
		assert.Len(t, res.Events, 2)

		req := signed(body, ts)
		req.Header.Set("X-Grafana-Alerting-Timestamp", strconv.FormatInt(received.Unix()+1, 10))
		_, err = p.Parse(req)
		requireStatus(t, err, http.StatusUnauthorized, "does not match the timestamp and body")

		req = signed(body, ts)
		req.Header.Del("X-Grafana-Alerting-Timestamp")
		_, err = p.Parse(req)
		requireStatus(t, err, http.StatusUnauthorized, "missing X-Grafana-Alerting-Timestamp")

		_, err = p.Parse(signed(body, "yesterday"))
		requireStatus(t, err, http.StatusUnauthorized, "is not Unix seconds")

		// A body-only signature is not one over the timestamp.
		req = signed(body, "")
		req.Header.Set("X-Grafana-Alerting-Timestamp", ts)
		_, err = p.Parse(req)
		requireStatus(t, err, http.StatusUnauthorized, "does not match")
	})
	t.Run("custom header", func(t *testing.T) {
		cfg := hmacConfig("")
		cfg.SignatureHeader = "X-Signature"
		req := signed(body, "")
		req.Header.Set("X-Signature", req.Header.Get(DefaultSignatureHeader))
		req.Header.Del(DefaultSignatureHeader)
		_, err := New(cfg).Parse(req)
		require.NoError(t, err)
	})
	t.Run("token and secret: both checked", func(t *testing.T) {
		cfg := hmacConfig("")
		cfg.Token = token
		req := signed(body, "")
		_, err := New(cfg).Parse(req)
		requireStatus(t, err, http.StatusUnauthorized, "missing Authorization header")
		req.Header.Set("Authorization", "Bearer "+token)
		_, err = New(cfg).Parse(req)
		require.NoError(t, err)
	})
	t.Run("insecure_skip_verify accepts unauthenticated", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.InsecureSkipVerify = true
		cfg.ServiceLabels = []string{"team"}
		res, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 2)
	})
}

func TestMaxAge(t *testing.T) {
	body := webhooktest.Fixture(t, "firing.json")
	cfg := hmacConfig("X-Grafana-Alerting-Timestamp")
	cfg.MaxAge = 5 * time.Minute
	sent := received.Add(-4 * time.Minute)
	req := signed(body, strconv.FormatInt(sent.Unix(), 10))
	_, err := New(cfg).Parse(req)
	require.NoError(t, err)

	req = signed(body, strconv.FormatInt(received.Add(-6*time.Minute).Unix(), 10))
	_, err = New(cfg).Parse(req)
	requireStatus(t, err, http.StatusBadRequest, "delivery older than max_age: X-Grafana-Alerting-Timestamp")

	req = signed(body, strconv.FormatInt(received.Add(6*time.Minute).Unix(), 10))
	_, err = New(cfg).Parse(req)
	requireStatus(t, err, http.StatusBadRequest, "delivery from the future")
}

func TestMalformed(t *testing.T) {
	tests := map[string]string{
		`{`:            "malformed JSON",
		``:             "empty body",
		`{}`:           `missing required field "alerts"`,
		`{"alerts":7}`: `field "alerts": expected`,
		`{"alerts":[{"status":"firing","labels":{"team":"a"},"fingerprint":"f"}]}`:                                    `alerts[0]: missing required field "startsAt"`,
		`{"alerts":[{"labels":{"team":"a"},"startsAt":"2021-10-12T09:51:03Z","fingerprint":"f"}]}`:                    `alerts[0]: missing required field "status"`,
		`{"alerts":[{"status":"pending","labels":{"team":"a"},"startsAt":"2021-10-12T09:51:03Z","fingerprint":"f"}]}`: `field "status": "pending"`,
		`{"alerts":[{"status":"firing","labels":{"team":"a"},"startsAt":"2021-10-12T09:51:03Z"}]}`:                    `alerts[0]: missing required field "fingerprint"`,
		`{"alerts":[{"status":"firing","labels":{"team":"a"},"startsAt":"yesterday","fingerprint":"f"}]}`:             "malformed JSON",
		`{"alerts":[{"status":"firing","labels":{"team":7},"startsAt":"2021-10-12T09:51:03Z","fingerprint":"f"}]}`:    `expected string`,
		`{"alerts":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`:                                        "nested deeper",
	}
	for body, want := range tests {
		t.Run(want, func(t *testing.T) {
			_, err := provider().Parse(withToken([]byte(body)))
			requireStatus(t, err, http.StatusBadRequest, want)
		})
	}
	t.Run("no alerts is ignored", func(t *testing.T) {
		res, err := provider().Parse(withToken([]byte(`{"alerts":[]}`)))
		require.NoError(t, err)
		assert.Equal(t, "the notification carries no alerts", res.Ignored)
	})
}

func TestConfigValidate(t *testing.T) {
	cfg := config()
	require.NoError(t, cfg.Validate())
	hc := hmacConfig("X-Grafana-Alerting-Timestamp")
	hc.MaxAge = time.Hour
	require.NoError(t, hc.Validate())

	def := DefaultConfig()
	assert.ErrorContains(t, def.Validate(), "token or secret: required")
	def.InsecureSkipVerify = true
	assert.NoError(t, def.Validate())
	assert.True(t, def.Insecure())

	tests := map[string]func(*Config){
		`path: "grafana" must start with /`:          func(c *Config) { c.Path = "grafana" },
		"secret: is only whitespace":                 func(c *Config) { c.Secret = " \n" },
		"signature_header: must not be empty":        func(c *Config) { c.Secret, c.SignatureHeader = secret, "" },
		"max_age: -1m0s is negative":                 func(c *Config) { c.MaxAge = -time.Minute },
		"max_age: needs secret and timestamp_header": func(c *Config) { c.MaxAge = time.Minute },
		"service_labels: at least one":               func(c *Config) { c.ServiceLabels = nil },
		"service_labels[0]: empty label name":        func(c *Config) { c.ServiceLabels = []string{" "} },
		"services[blue]: empty service name":         func(c *Config) { c.Services = map[string]string{"blue": ""} },
		"services: empty label value":                func(c *Config) { c.Services = map[string]string{"": "api"} },
		"default_environment: must not be empty":     func(c *Config) { c.DefaultEnvironment = "" },
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
	endsAt := time.Date(2021, 10, 12, 8, 10, 0, 0, time.UTC)
	webhooktest.CheckEventsOwnTheirData(t, provider(),
		withToken(webhooktest.Fixture(t, "firing.json")),
		withToken(resolvedOf(t, webhooktest.Fixture(t, "firing.json"), endsAt)))
}

func requireStatus(t *testing.T, err error, status int, want string) {
	t.Helper()
	var herr *webhook.Error
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, status, herr.Status)
	assert.Contains(t, herr.Message, want)
}

func FuzzParse(f *testing.F) {
	f.Add(webhooktest.Fixture(f, "firing.json"))
	f.Add(resolvedOf(f, webhooktest.Fixture(f, "firing.json"), time.Date(2021, 10, 12, 8, 10, 0, 0, time.UTC)))
	f.Add([]byte(`{"alerts":[{"status":"resolved","labels":{"team":"a"},"startsAt":"2021-10-12T09:51:03Z","fingerprint":"f"}]}`))
	f.Add([]byte(`{"alerts":[]}`))
	cfg := config()
	cfg.Services = map[string]string{"blue": "api"}
	providers := []*Provider{provider(), New(cfg)}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range providers {
			res, err := p.Parse(withToken(body))
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
				require.True(t, strings.HasPrefix(ev.IncidentID, "grafana/") && strings.HasPrefix(ev.ID, ev.IncidentID+"/"))
				require.False(t, ev.Time.IsZero())
				require.NotEmpty(t, strings.TrimSpace(ev.Service.Name))
				require.NotEmpty(t, ev.Service.Environment)
			}
		}
	})
}

// TestTestNotification: the contact point's Test button sends an alert with
// the labels alertname=TestAlert, instance=Grafana (grafana/alerting
// notify/receivers.go, newTestAlert): no service label, so it is answered
// ignored, once authenticated.
func TestTestNotification(t *testing.T) {
	var n map[string]any
	require.NoError(t, json.Unmarshal(webhooktest.Fixture(t, "firing.json"), &n))
	alert := n["alerts"].([]any)[0].(map[string]any)
	alert["labels"] = map[string]string{"alertname": "TestAlert", "instance": "Grafana"}
	n["alerts"] = []any{alert}
	body, err := json.Marshal(n)
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Token = token
	res, err := New(cfg).Parse(withToken(body))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Equal(t, "no usable alert: 1 alert(s) carry none of the service labels [service app app_kubernetes_io_name job]", res.Ignored)
}
