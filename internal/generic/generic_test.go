package generic

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

const secret = "s3cr3t"

func signed(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, body))
	return &webhook.Request{Header: h, Body: body, Received: time.Now()}
}

func provider() *Provider {
	cfg := DefaultConfig()
	cfg.Secret = secret
	return New(cfg)
}

func TestDeployment(t *testing.T) {
	res, err := provider().Parse(signed(webhooktest.Fixture(t, "deployment.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	ev := res.Events[0]
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGeneric,
		ID:           "platform-api/deploy/8841/success",
		Time:         time.Date(2026, 11, 2, 10, 15, 0, 0, time.UTC),
		Service:      event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		Repository:   "acme/api",
		DeploymentID: "8841",
		Revision:     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
		CommitTime:   time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC),
	}, ev)
}

func TestBatch(t *testing.T) {
	res, err := provider().Parse(signed(webhooktest.Fixture(t, "batch.json")))
	require.NoError(t, err)
	require.Len(t, res.Events, 3)
	assert.Equal(t, event.ChangeCommitted, res.Events[0].Kind)
	assert.Equal(t, "0000000000000000000000000000000000000000", res.Events[0].ParentRevision)
	assert.Equal(t, event.IncidentOpened, res.Events[1].Kind)
	assert.Equal(t, event.IncidentResolved, res.Events[2].Kind)
	assert.Equal(t, "inc-42", res.Events[2].IncidentID)
}

func TestSignature(t *testing.T) {
	body := webhooktest.Fixture(t, "deployment.json")
	tests := map[string]http.Header{
		"missing":   {},
		"no prefix": {SignatureHeader: []string{webhook.SignHMACSHA256(secret, body)}},
		"wrong key": {SignatureHeader: []string{"sha256=" + webhook.SignHMACSHA256("other", body)}},
		"not hex":   {SignatureHeader: []string{"sha256=zz"}},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := provider().Parse(&webhook.Request{Header: h, Body: body})
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusUnauthorized, herr.Status)
		})
	}
	t.Run("tampered body", func(t *testing.T) {
		req := signed(body)
		req.Body = append([]byte(nil), body...)
		req.Body[len(req.Body)-3] = ' '
		_, err := provider().Parse(req)
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

func TestMalformed(t *testing.T) {
	tests := map[string]string{
		`{`:                              "malformed JSON",
		``:                               "empty body",
		`{"type":"deployment"}`:          `missing required field "id"`,
		`{"type":"deployment","id":"x"}`: `missing required field "time"`,
		`{"type":"deployment","id":"x","time":"2026-11-02T10:00:00Z","environment":"production","status":"success","revision":"abc"}`:     `one of "service" or "repository"`,
		`{"type":"deployment","id":"x","time":"2026-11-02T10:00:00Z","service":"api","status":"success","revision":"abc"}`:                `missing required field "environment"`,
		`{"type":"deployment","id":"x","time":"2026-11-02T10:00:00Z","service":"api","environment":"p","status":"done","revision":"abc"}`: `field "status": "done"`,
		`{"type":"deployment","id":"x","time":"2026-11-02T10:00:00Z","service":"api","environment":"p","status":"success"}`:               `one of "deployment_id" or "revision"`,
		`{"type":"change","id":"x","time":"2026-11-02T10:00:00Z"}`:                                                                        `missing required field "revision"`,
		`{"type":"incident","id":"x","time":"2026-11-02T10:00:00Z","service":"api","incident_id":"i","state":"open"}`:                     `field "state": "open"`,
		`{"type":"release","id":"x","time":"2026-11-02T10:00:00Z"}`:                                                                       `field "type": "release"`,
		`{"type":"change","id":"x","time":"yesterday","revision":"abc"}`:                                                                  "malformed JSON",
		`{"type":5}`: `field "type": expected string`,
		`[{"type":"change","id":"x","time":"2026-11-02T10:00:00Z","revision":"a"},{"type":"change"}]`: `event 1: missing required field "id"`,
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
	for _, name := range []string{"deployment.json", "batch.json"} {
		f.Add(webhooktest.Fixture(f, name))
	}
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]`))
	p := provider()
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := p.Parse(signed(body))
		if err != nil {
			// Refused as the sender's fault, never a 5xx or a panic.
			status := webhook.StatusOf(err)
			require.True(t, status >= 400 && status < 500, "a parse error is refused as the sender's: %d", status)
			return
		}
		for _, ev := range res.Events {
			require.True(t, ev.Kind.Valid())
			require.NotEmpty(t, ev.ID)
			require.False(t, ev.Time.IsZero())
		}
	})
}

// TestEventsOwnTheirData: the events of a delivery do not point into its
// body.
func TestEventsOwnTheirData(t *testing.T) {
	var reqs []*webhook.Request
	for _, name := range []string{"batch.json", "deployment.json", "review.json", "batch.json"} {
		reqs = append(reqs, signed(webhooktest.Fixture(t, name)))
	}
	webhooktest.CheckEventsOwnTheirData(t, provider(), reqs...)
}
