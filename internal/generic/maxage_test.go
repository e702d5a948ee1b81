package generic

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

// stamped signs "<timestamp>.<body>" and sets X-Dora-Timestamp.
func stamped(body []byte, signedAt, received time.Time) *webhook.Request {
	ts := strconv.FormatInt(signedAt.Unix(), 10)
	h := http.Header{}
	h.Set(TimestampHeader, ts)
	h.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, SignedContent(ts, body)))
	return &webhook.Request{Header: h, Body: body, Received: received}
}

func providerWithMaxAge(maxAge time.Duration) *Provider {
	cfg := DefaultConfig()
	cfg.Secret = secret
	cfg.MaxAge = maxAge
	return New(cfg)
}

func statusOf(t *testing.T, err error) (int, string) {
	t.Helper()
	var herr *webhook.Error
	require.ErrorAs(t, err, &herr)
	return herr.Status, herr.Message
}

func TestMaxAge(t *testing.T) {
	body := webhooktest.Fixture(t, "deployment.json")
	now := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	p := providerWithMaxAge(5 * time.Minute)

	t.Run("a fresh signed timestamp is accepted", func(t *testing.T) {
		res, err := p.Parse(stamped(body, now.Add(-4*time.Minute), now))
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})

	t.Run("a replayed delivery older than max_age is refused", func(t *testing.T) {
		_, err := p.Parse(stamped(body, now.Add(-6*time.Minute), now))
		status, msg := statusOf(t, err)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Contains(t, msg, "delivery older than max_age: X-Dora-Timestamp 2026-11-02T11:54:00Z is 6m0s before it was received (max_age 5m0s)")
	})

	t.Run("a timestamp further ahead than max_age is refused", func(t *testing.T) {
		_, err := p.Parse(stamped(body, now.Add(10*time.Minute), now))
		status, msg := statusOf(t, err)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Contains(t, msg, "delivery from the future")
	})

	t.Run("a timestamp moved forward breaks the signature", func(t *testing.T) {
		req := stamped(body, now.Add(-time.Hour), now)
		req.Header.Set(TimestampHeader, strconv.FormatInt(now.Unix(), 10))
		_, err := p.Parse(req)
		status, msg := statusOf(t, err)
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.Contains(t, msg, `X-Signature-256 does not match "<X-Dora-Timestamp>.<body>"`)
	})

	t.Run("a body-only signature is refused while max_age is set", func(t *testing.T) {
		_, err := p.Parse(signed(body))
		status, msg := statusOf(t, err)
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.Contains(t, msg, "missing X-Dora-Timestamp header: max_age is set")
	})

	t.Run("a timestamp that is not Unix seconds", func(t *testing.T) {
		ts := now.Format(time.RFC3339)
		req := signed(body)
		req.Header.Set(TimestampHeader, ts)
		req.Header.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, SignedContent(ts, body)))
		_, err := p.Parse(req)
		status, msg := statusOf(t, err)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Contains(t, msg, "is not a Unix time in seconds")
	})

	t.Run("max_age off: body-only and timestamped signatures both pass, whatever the age", func(t *testing.T) {
		off := providerWithMaxAge(0)
		_, err := off.Parse(signed(body))
		require.NoError(t, err)
		_, err = off.Parse(stamped(body, now.Add(-30*24*time.Hour), now))
		require.NoError(t, err)
		// With a timestamp, the signature still covers it.
		req := stamped(body, now, now)
		req.Header.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, body))
		_, err = off.Parse(req)
		status, _ := statusOf(t, err)
		assert.Equal(t, http.StatusUnauthorized, status)
	})
}

func TestMaxAgeConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Secret = secret
	cfg.MaxAge = -time.Second
	assert.ErrorContains(t, cfg.Validate(), "max_age: -1s is negative")

	cfg = DefaultConfig()
	cfg.InsecureSkipVerify = true
	cfg.MaxAge = time.Minute
	assert.ErrorContains(t, cfg.Validate(), "max_age: needs a secret")
}
