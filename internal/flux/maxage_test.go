package flux

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

func TestMaxAge(t *testing.T) {
	body := webhooktest.Fixture(t, "kustomization-succeeded.json") // timestamp 2026-11-02T10:15:00Z
	p := newProvider(func(c *Config) { c.MaxAge = time.Hour })

	req := signed(body)
	req.Received = time.Date(2026, 11, 2, 11, 14, 0, 0, time.UTC) // 59m later
	res, err := p.Parse(req)
	require.NoError(t, err)
	assert.Len(t, res.Events, 1)

	req.Received = time.Date(2026, 11, 2, 11, 20, 0, 0, time.UTC)
	_, err = p.Parse(req)
	var herr *webhook.Error
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, http.StatusBadRequest, herr.Status)
	assert.Contains(t, herr.Message, "delivery older than max_age: timestamp 2026-11-02T10:15:00Z is 1h5m0s before it was received (max_age 1h0m0s)")

	// The timestamp is signed: moving it forward breaks the signature.
	forged := signed(body)
	forged.Body = []byte(strings.Replace(string(body), "2026-11-02T10:15:00Z", "2026-11-02T11:19:00Z", 1))
	forged.Received = req.Received
	_, err = p.Parse(forged)
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, http.StatusUnauthorized, herr.Status)

	t.Run("off by default", func(t *testing.T) {
		req := signed(body)
		req.Received = time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
		res, err := newProvider(nil).Parse(req)
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})

	t.Run("config", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Secret = secret
		cfg.MaxAge = -time.Minute
		assert.ErrorContains(t, cfg.Validate(), "max_age: -1m0s is negative")
		cfg = DefaultConfig()
		cfg.InsecureSkipVerify = true
		cfg.MaxAge = time.Minute
		assert.ErrorContains(t, cfg.Validate(), "max_age: needs a secret")
	})
}
