package alertmanager

import (
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

const token = "am-t0ken"

func authorized(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return &webhook.Request{Header: h, Body: body, Received: time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)}
}

func config() Config {
	cfg := DefaultConfig()
	cfg.Token = token
	return cfg
}

func provider() *Provider { return New(config()) }

var (
	apiIncident      = "alertmanager/d08f8cbc02c025e9/1793614805"
	checkoutIncident = "alertmanager/d451036b91e0c11c/1793614895"
	apiOpened        = event.Event{
		Kind:       event.IncidentOpened,
		Source:     event.SourceAlertmanager,
		ID:         apiIncident + "/firing",
		Time:       time.Date(2026, 11, 2, 10, 20, 5, 123e6, time.UTC),
		Service:    event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		IncidentID: apiIncident,
	}
	checkoutOpened = event.Event{
		Kind:       event.IncidentOpened,
		Source:     event.SourceAlertmanager,
		ID:         checkoutIncident + "/firing",
		Time:       time.Date(2026, 11, 2, 10, 21, 35, 0, time.UTC),
		Service:    event.Service{Namespace: "shop", Name: "checkout", Environment: "production"},
		IncidentID: checkoutIncident,
	}
)

func TestFiring(t *testing.T) {
	res, err := provider().Parse(authorized(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	assert.Empty(t, res.Ignored)
	// The checkout alert has no service label: app_kubernetes_io_name comes
	// before job in service_labels, and it has no environment label.
	assert.Equal(t, []event.Event{apiOpened, checkoutOpened}, res.Events)
}

func TestResolved(t *testing.T) {
	res, err := provider().Parse(authorized(webhooktest.Fixture(t, "resolved.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	assert.Equal(t, event.Event{
		Kind:       event.IncidentResolved,
		Source:     event.SourceAlertmanager,
		ID:         apiIncident + "/resolved",
		Time:       time.Date(2026, 11, 2, 10, 41, 50, 500e6, time.UTC),
		Service:    event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		IncidentID: apiIncident,
	}, res.Events[0])
	// The still-firing alert of the group is re-sent; its event is the one
	// already delivered, so the engine drops it as a duplicate.
	assert.Equal(t, checkoutOpened, res.Events[1])
}

func TestRedelivery(t *testing.T) {
	// Alertmanager re-sends a group every repeat_interval, and retries failed
	// sends: the same firing must give the same ids every time.
	p := provider()
	first, err := p.Parse(authorized(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	again, err := p.Parse(authorized(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	require.Len(t, again.Events, len(first.Events))
	for i := range first.Events {
		assert.Equal(t, first.Events[i].ID, again.Events[i].ID)
		assert.Equal(t, first.Events[i].IncidentID, again.Events[i].IncidentID)
	}
	assert.NotEqual(t, first.Events[0].ID, first.Events[1].ID)

	resolved, err := p.Parse(authorized(webhooktest.Fixture(t, "resolved.json")))
	require.NoError(t, err)
	assert.NotEqual(t, first.Events[0].ID, resolved.Events[0].ID, "opened and resolved are distinct events")
	assert.Equal(t, first.Events[0].IncidentID, resolved.Events[0].IncidentID)
}

func TestNewFiringIsNewIncident(t *testing.T) {
	// The same series firing again after it resolved: same fingerprint, new
	// startsAt, new incident.
	body := strings.Replace(string(webhooktest.Fixture(t, "firing.json")), "2026-11-02T10:20:05.123Z", "2026-11-02T14:00:00Z", 1)
	res, err := provider().Parse(authorized([]byte(body)))
	require.NoError(t, err)
	assert.Equal(t, "alertmanager/d08f8cbc02c025e9/1793628000", res.Events[0].IncidentID)
	assert.NotEqual(t, apiIncident, res.Events[0].IncidentID)
}

func TestNoService(t *testing.T) {
	res, err := provider().Parse(authorized(webhooktest.Fixture(t, "no_service.json")))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "none of the service labels [service app app_kubernetes_io_name job]")
	assert.Equal(t, 1, res.WithoutService, "counted apart")
}

func TestSkipsOnlyUnusableAlerts(t *testing.T) {
	body := `{"version":"4","status":"firing","alerts":[
		{"status":"firing","labels":{"alertname":"ErrorBudgetBurn","severity":"critical"},"startsAt":"2026-11-02T11:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"20e590857ab42846"},
		{"status":"firing","labels":{"alertname":"Down","job":"payments"},"startsAt":"2026-11-02T11:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"0123456789abcdef"}]}`
	res, err := provider().Parse(authorized([]byte(body)))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.Service{Name: "payments", Environment: "production"}, res.Events[0].Service)
	assert.Equal(t, 1, res.WithoutService, "the alert without a service is counted apart")
}

func TestSeverities(t *testing.T) {
	cfg := config()
	cfg.Severities = []string{"Critical"}
	res, err := New(cfg).Parse(authorized(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	assert.Equal(t, []event.Event{apiOpened}, res.Events)

	cfg.Severities = []string{"page"}
	res, err = New(cfg).Parse(authorized(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Contains(t, res.Ignored, "2 alert(s) have a severity outside [page]")
}

func TestLabelConfig(t *testing.T) {
	cfg := config()
	cfg.ServiceLabels = []string{"container", "service"}
	cfg.NamespaceLabel = ""
	cfg.EnvironmentLabel = "env"
	cfg.DefaultEnvironment = "prod"
	res, err := New(cfg).Parse(authorized(webhooktest.Fixture(t, "firing.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	assert.Equal(t, event.Service{Name: "api", Environment: "prod"}, res.Events[0].Service)
	assert.Equal(t, event.Service{Name: "checkout", Environment: "prod"}, res.Events[1].Service)
}

func TestFingerprintFallback(t *testing.T) {
	// Fixture fingerprints were made by Alertmanager's algorithm; without the
	// field the same one is computed from the labels.
	body := strings.Replace(string(webhooktest.Fixture(t, "firing.json")), `"fingerprint": "d08f8cbc02c025e9"`, `"fingerprint": ""`, 1)
	res, err := provider().Parse(authorized([]byte(body)))
	require.NoError(t, err)
	assert.Equal(t, apiIncident, res.Events[0].IncidentID)
	assert.Equal(t, "cbf29ce484222325", Fingerprint(nil), "the empty label set hashes to the FNV offset")
}

func TestEmptyNotification(t *testing.T) {
	res, err := provider().Parse(authorized([]byte(`{"version":"4","status":"resolved","alerts":[]}`)))
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Equal(t, "the notification carries no alerts", res.Ignored)
}

func TestAuthorization(t *testing.T) {
	body := webhooktest.Fixture(t, "firing.json")
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := map[string]struct {
		header string
		ok     bool
		want   string
	}{
		"bearer":              {"Bearer " + token, true, ""},
		"bearer lower case":   {"bearer " + token, true, ""},
		"basic password":      {basic("alertmanager", token), true, ""},
		"missing":             {"", false, "missing Authorization header"},
		"wrong bearer":        {"Bearer nope", false, "bearer token"},
		"token prefix":        {"Bearer " + token[:3], false, "bearer token"},
		"wrong basic":         {basic("alertmanager", "nope"), false, "basic auth password"},
		"token as basic user": {basic(token, ""), false, "basic auth password"},
		"basic not base64":    {"Basic ***", false, "not base64"},
		"other scheme":        {"Token " + token, false, "neither Bearer nor Basic"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			res, err := provider().Parse(&webhook.Request{Header: h, Body: body})
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
	t.Run("insecure_skip_verify accepts unauthenticated", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.InsecureSkipVerify = true
		res, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 2)
	})
	t.Run("a token is checked even with insecure_skip_verify", func(t *testing.T) {
		cfg := config()
		cfg.InsecureSkipVerify = true
		_, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
}

func TestConfigValidate(t *testing.T) {
	cfg := config()
	require.NoError(t, cfg.Validate())

	def := DefaultConfig()
	assert.ErrorContains(t, def.Validate(), "token: required")
	def.InsecureSkipVerify = true
	assert.NoError(t, def.Validate())

	tests := map[string]func(*Config){
		`path: "webhooks" must start with /`:               func(c *Config) { c.Path = "webhooks" },
		"service_labels: at least one label name":          func(c *Config) { c.ServiceLabels = nil },
		"service_labels[1]: empty label name":              func(c *Config) { c.ServiceLabels = []string{"service", " "} },
		"default_environment: must not be empty":           func(c *Config) { c.DefaultEnvironment = "" },
		"severities[0]: empty severity":                    func(c *Config) { c.Severities = []string{""} },
		"token: required to authenticate deliveries (the ": func(c *Config) { c.Token = "" },
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
	tests := map[string]string{
		`{`:               "malformed JSON",
		``:                "empty body",
		`{"version":"4"}`: `missing required field "alerts"`,
		`{"alerts":null}`: `missing required field "alerts"`,
		`{"alerts":{}}`:   `field "alerts": expected`,
		`{"alerts":[{"status":"firing","labels":{"service":"api"}}]}`:                                                                     `alerts[0]: missing required field "startsAt"`,
		`{"alerts":[{"labels":{"service":"api"},"startsAt":"2026-11-02T10:00:00Z"}]}`:                                                     `alerts[0]: missing required field "status"`,
		`{"alerts":[{"status":"pending","labels":{"service":"api"},"startsAt":"2026-11-02T10:00:00Z"}]}`:                                  `alerts[0]: field "status": "pending"`,
		`{"alerts":[{"status":"resolved","labels":{"service":"api"},"startsAt":"2026-11-02T10:00:00Z"}]}`:                                 `alerts[0]: resolved alert without "endsAt"`,
		`{"alerts":[{"status":"firing","labels":{},"startsAt":"2026-11-02T10:00:00Z"}]}`:                                                  `alerts[0]: missing required field "labels"`,
		`{"alerts":[{"status":"firing","labels":{"service":"api"},"startsAt":"2026-11-02T10:00:00Z"},{"status":"firing"}]}`:               `alerts[1]: missing required field "startsAt"`,
		`{"alerts":[{"status":"firing","labels":{"service":"api"},"startsAt":"yesterday"}]}`:                                              "malformed JSON",
		`{"alerts":[{"status":"firing","labels":{"service":5},"startsAt":"2026-11-02T10:00:00Z"}]}`:                                       `field "alerts.labels": expected string`,
		`{"alerts":[{"status":"firing","labels":{"service":"api"},"startsAt":"2026-11-02T10:00:00Z","fingerprint":["x"]}]}`:               `field "alerts.fingerprint": expected string`,
		`[{"status":"firing","labels":{"service":"api"},"startsAt":"2026-11-02T10:00:00Z"}]`:                                              "expected alertmanager.Notification",
		`{"alerts":[` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `]}`:                                                        "nested deeper",
		`{"alerts":[{"status":"resolved","labels":{"service":"api"},"startsAt":"2026-11-02T10:00:00Z","endsAt":"0001-01-01T00:00:00Z"}]}`: `resolved alert without "endsAt"`,
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

func FuzzParse(f *testing.F) {
	for _, name := range []string{"firing.json", "resolved.json", "no_service.json"} {
		f.Add(webhooktest.Fixture(f, name))
	}
	f.Add([]byte(`{"alerts":[]}`))
	f.Add([]byte(`{"alerts":[{"status":"resolved","labels":{"job":"x"},"startsAt":"2026-11-02T10:00:00Z","endsAt":"2026-11-02T10:05:00Z"}]}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]`))
	cfg := config()
	cfg.Severities = []string{"critical", "warning", "info"}
	providers := []*Provider{provider(), New(cfg)}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range providers {
			res, err := p.Parse(authorized(body))
			if err != nil {
				// Refused as the sender's fault, never a 5xx or a panic.
				status := webhook.StatusOf(err)
				require.True(t, status >= 400 && status < 500, "a parse error is refused as the sender's: %d", status)
				return
			}
			if len(res.Events) == 0 {
				require.NotEmpty(t, res.Ignored, "an empty result says why")
			}
			for _, ev := range res.Events {
				require.True(t, ev.Kind.Valid())
				require.Equal(t, event.SourceAlertmanager, ev.Source)
				require.NotEmpty(t, ev.ID)
				require.False(t, ev.Time.IsZero())
				require.NotEmpty(t, ev.IncidentID)
				require.True(t, strings.HasPrefix(ev.ID, ev.IncidentID+"/"))
				require.NotEmpty(t, ev.Service.Name)
				require.NotEmpty(t, ev.Service.Environment)
			}
		}
	})
}
