package pagerduty

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const secret = "pd-s3cr3t"

// received is shortly after the fixtures' events.
var received = time.Date(2026, 11, 2, 10, 45, 0, 0, time.UTC)

func fixture(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func signed(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set(SignatureHeader, "v1="+webhook.SignHMACSHA256(secret, body))
	return &webhook.Request{Header: h, Body: body, Received: received}
}

func config() Config {
	cfg := DefaultConfig()
	cfg.Secret = secret
	return cfg
}

func provider() *Provider { return New(config()) }

func TestTriggered(t *testing.T) {
	res, err := provider().Parse(signed(fixture(t, "triggered.json")))
	require.NoError(t, err)
	assert.Equal(t, []event.Event{{
		Kind:       event.IncidentOpened,
		Source:     event.SourcePagerDuty,
		ID:         "01FKXBQ4C9Z3JQ1X6W4S0T8N2M",
		Time:       time.Date(2026, 11, 2, 10, 20, 7, 321e6, time.UTC),
		Service:    event.Service{Name: "API Service", Environment: "production"},
		IncidentID: "pagerduty/Q2NVEA1TZ3WQ8B",
	}}, res.Events)
}

func TestResolved(t *testing.T) {
	cfg := config()
	cfg.Services = map[string]string{"PF9KMXH": "api"}
	cfg.Namespace = "shop"
	cfg.Environment = "prod-eu"
	res, err := New(cfg).Parse(signed(fixture(t, "resolved.json")))
	require.NoError(t, err)
	assert.Equal(t, []event.Event{{
		Kind:       event.IncidentResolved,
		Source:     event.SourcePagerDuty,
		ID:         "01FKXC9R5S1T7U3V9W2X4Y6Z8B",
		Time:       time.Date(2026, 11, 2, 10, 42, 15, 900e6, time.UTC),
		Service:    event.Service{Namespace: "shop", Name: "api", Environment: "prod-eu"},
		IncidentID: "pagerduty/Q2NVEA1TZ3WQ8B",
	}}, res.Events)
}

func TestIncidentIDStable(t *testing.T) {
	p := provider()
	opened, err := p.Parse(signed(fixture(t, "triggered.json")))
	require.NoError(t, err)
	resolved, err := p.Parse(signed(fixture(t, "resolved.json")))
	require.NoError(t, err)
	assert.Equal(t, opened.Events[0].IncidentID, resolved.Events[0].IncidentID)
	assert.NotEqual(t, opened.Events[0].ID, resolved.Events[0].ID)
}

func TestServiceMapping(t *testing.T) {
	tests := map[string]struct {
		services map[string]string
		want     string
	}{
		"no map: the PagerDuty name": {nil, "API Service"},
		"by id":                      {map[string]string{"PF9KMXH": "api"}, "api"},
		"by name":                    {map[string]string{"API Service": "api-gateway"}, "api-gateway"},
		"id wins over name":          {map[string]string{"API Service": "by-name", "PF9KMXH": "by-id"}, "by-id"},
		"other services unmapped":    {map[string]string{"PXXXXXX": "billing"}, "API Service"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := config()
			cfg.Services = tt.services
			res, err := New(cfg).Parse(signed(fixture(t, "triggered.json")))
			require.NoError(t, err)
			assert.Equal(t, tt.want, res.Events[0].Service.Name)
		})
	}
}

func TestIgnored(t *testing.T) {
	tests := map[string]string{
		"acknowledged.json": `event type "incident.acknowledged" is not counted`,
		"annotated.json":    `event type "incident.annotated" is not counted`,
		"ping.json":         `event type "pagey.ping" is not counted`,
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := provider().Parse(signed(fixture(t, name)))
			require.NoError(t, err)
			assert.Empty(t, res.Events)
			assert.Contains(t, res.Ignored, want)
		})
	}
	t.Run("other event types whatever their data", func(t *testing.T) {
		body := []byte(`{"event":{"id":"E1","event_type":"service.updated","resource_type":"service","occurred_at":"2026-11-02T10:00:00Z","data":{"id":5,"teams":"x"}}}`)
		res, err := provider().Parse(signed(body))
		require.NoError(t, err)
		assert.Contains(t, res.Ignored, `"service.updated"`)
	})
}

func TestRedelivery(t *testing.T) {
	// PagerDuty retries a failed delivery with the same event.
	p := provider()
	first, err := p.Parse(signed(fixture(t, "triggered.json")))
	require.NoError(t, err)
	again, err := p.Parse(signed(fixture(t, "triggered.json")))
	require.NoError(t, err)
	assert.Equal(t, first.Events, again.Events)
}

func TestSignature(t *testing.T) {
	body := fixture(t, "triggered.json")
	good := "v1=" + webhook.SignHMACSHA256(secret, body)
	other := "v1=" + webhook.SignHMACSHA256("old-secret", body)
	tests := map[string]struct {
		header string
		ok     bool
		want   string
	}{
		"one signature":                  {good, true, ""},
		"rotation, new first":            {good + "," + other, true, ""},
		"rotation, new second":           {other + "," + good, true, ""},
		"rotation with spaces":           {other + ", " + good, true, ""},
		"unknown version next to v1":     {"v2=abcdef," + good, true, ""},
		"missing":                        {"", false, "missing X-PagerDuty-Signature"},
		"no prefix":                      {webhook.SignHMACSHA256(secret, body), false, "no v1 signature"},
		"only unknown versions":          {"v2=" + webhook.SignHMACSHA256(secret, body), false, "no v1 signature"},
		"wrong key":                      {other, false, "no signature in X-PagerDuty-Signature matches"},
		"not hex":                        {"v1=zz", false, "matches"},
		"empty v1":                       {"v1=", false, "matches"},
		"signature prefix only":          {good[:20], false, "matches"},
		"both wrong during rotation":     {other + "," + other, false, "matches"},
		"comma-joined into one checksum": {good + other[3:], false, "matches"},
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
		req.Body = []byte(strings.Replace(string(body), "PF9KMXH", "PF9KMXI", 1))
		_, err := provider().Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
	t.Run("ignored types are verified too", func(t *testing.T) {
		_, err := provider().Parse(&webhook.Request{Header: http.Header{}, Body: fixture(t, "ping.json")})
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
	t.Run("insecure_skip_verify accepts unsigned", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.InsecureSkipVerify = true
		res, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
}

func TestMaxAge(t *testing.T) {
	body := fixture(t, "triggered.json") // occurred 10:20:07.321
	cfg := config()
	cfg.MaxAge = time.Hour

	req := signed(body)
	req.Received = time.Date(2026, 11, 2, 11, 20, 7, 0, time.UTC) // 59m59s later
	res, err := New(cfg).Parse(req)
	require.NoError(t, err)
	assert.Len(t, res.Events, 1)

	req.Received = time.Date(2026, 11, 2, 11, 30, 0, 0, time.UTC)
	_, err = New(cfg).Parse(req)
	var herr *webhook.Error
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, http.StatusBadRequest, herr.Status)
	assert.Contains(t, herr.Message, "delivery older than max_age")
	assert.Contains(t, herr.Message, "1h9m53s before it was received (max_age 1h0m0s)")

	t.Run("off by default", func(t *testing.T) {
		req := signed(body)
		req.Received = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		res, err := provider().Parse(req)
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
	t.Run("clock skew: events from the future are taken", func(t *testing.T) {
		req := signed(body)
		req.Received = time.Date(2026, 11, 2, 10, 20, 0, 0, time.UTC)
		res, err := New(cfg).Parse(req)
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
	t.Run("events further in the future than max_age are refused", func(t *testing.T) {
		req := signed(body)
		req.Received = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
		_, err := New(cfg).Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusBadRequest, herr.Status)
		assert.Contains(t, herr.Message, "delivery from the future: event.occurred_at")
	})
}

func TestConfigValidate(t *testing.T) {
	cfg := config()
	require.NoError(t, cfg.Validate())

	def := DefaultConfig()
	assert.ErrorContains(t, def.Validate(), "secret: required")
	def.InsecureSkipVerify = true
	assert.NoError(t, def.Validate())

	tests := map[string]func(*Config){
		`path: "pagerduty" must start with /`:  func(c *Config) { c.Path = "pagerduty" },
		"environment: must not be empty":       func(c *Config) { c.Environment = " " },
		"max_age: -1m0s is negative":           func(c *Config) { c.MaxAge = -time.Minute },
		"services[PF9KMXH]: empty service":     func(c *Config) { c.Services = map[string]string{"PF9KMXH": ""} },
		"services: empty PagerDuty service id": func(c *Config) { c.Services = map[string]string{"": "api"} },
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
	const ok = `"id":"E1","event_type":"incident.triggered","resource_type":"incident","occurred_at":"2026-11-02T10:20:00Z"`
	tests := map[string]string{
		`{`:              "malformed JSON",
		``:               "empty body",
		`{}`:             `missing required field "event"`,
		`{"event":null}`: `missing required field "event"`,
		`{"event":[]}`:   `field "event": expected`,
		`{"event":{}}`:   `missing required field "event.event_type"`,
		`{"event":{"event_type":"incident.triggered"}}`:                                                          `missing required field "event.id"`,
		`{"event":{"id":"E1","event_type":"incident.triggered"}}`:                                                `missing required field "event.data"`,
		`{"event":{"id":"E1","event_type":"incident.triggered","data":null}}`:                                    `missing required field "event.data"`,
		`{"event":{"id":"E1","event_type":"incident.triggered","data":{"service":{"summary":"api"}}}}`:           `missing required field "event.data.id"`,
		`{"event":{"id":"E1","event_type":"incident.triggered","data":{"id":"Q1","service":{"summary":"api"}}}}`: `missing required field "event.occurred_at"`,
		`{"event":{` + ok + `,"data":{"id":"Q1"}}}`:                                                              `missing required field "event.data.service.summary"`,
		`{"event":{` + ok + `,"data":{"id":"Q1","service":{"id":"P1","summary":"  "}}}}`:                         `missing required field "event.data.service.summary"`,
		`{"event":{` + ok + `,"data":{"id":7,"service":{"summary":"api"}}}}`:                                     `event.data: field "id": expected string`,
		`{"event":{` + ok + `,"data":{"id":"Q1","service":"api"}}}`:                                              `event.data: field "service": expected`,
		`{"event":{` + ok + `,"data":"Q1"}}`:                                                                     `field "event.data": expected an incident object`,
		`{"event":{` + ok + `,"data":{"id":"Q1","type":"incident_note","service":{"summary":"api"}}}}`:           `field "event.data.type": "incident_note"`,
		`{"event":{"id":"E1","event_type":"incident.resolved","resource_type":"service","occurred_at":"2026-11-02T10:20:00Z","data":{"id":"Q1","service":{"summary":"api"}}}}`: `field "event.resource_type": "service"`,
		`{"event":{"id":"E1","event_type":"incident.resolved","occurred_at":"yesterday"}}`:                                                                                     "malformed JSON",
		`{"event":{"id":1,"event_type":"incident.resolved"}}`:                                                                                                                  `field "event.id": expected string`,
		`{"event":{"event_type":"incident.resolved","data":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`:                                                        "nested deeper",
	}
	for body, want := range tests {
		t.Run(want, func(t *testing.T) {
			_, err := provider().Parse(signed([]byte(body)))
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusBadRequest, herr.Status)
			assert.Contains(t, herr.Message, want)
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"triggered.json", "resolved.json", "acknowledged.json", "annotated.json", "ping.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"event":{"id":"E1","event_type":"incident.resolved","occurred_at":"2026-11-02T10:20:00Z","data":{"id":"Q1","service":{"id":"PF9KMXH"}}}}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]`))
	cfg := config()
	cfg.Services = map[string]string{"PF9KMXH": "api"}
	cfg.MaxAge = time.Hour
	providers := []*Provider{provider(), New(cfg)}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range providers {
			res, err := p.Parse(signed(body))
			if err != nil {
				// Refused as the sender's fault, never a 5xx or a panic.
				status := webhook.StatusOf(err)
				require.True(t, status >= 400 && status < 500, "a parse error is refused as the sender's: %d", status)
				return
			}
			if len(res.Events) == 0 {
				require.NotEmpty(t, res.Ignored)
			}
			require.LessOrEqual(t, len(res.Events), 1)
			for _, ev := range res.Events {
				require.True(t, ev.Kind == event.IncidentOpened || ev.Kind == event.IncidentResolved)
				require.Equal(t, event.SourcePagerDuty, ev.Source)
				require.NotEmpty(t, ev.ID)
				require.False(t, ev.Time.IsZero())
				require.True(t, strings.HasPrefix(ev.IncidentID, "pagerduty/") && len(ev.IncidentID) > len("pagerduty/"))
				require.NotEmpty(t, ev.Service.Name)
				require.Equal(t, "production", ev.Service.Environment)
			}
		}
	})
}
