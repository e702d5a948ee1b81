package webhook

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecretWhitespaceIsNotPartOfTheKey(t *testing.T) {
	body := []byte(`{"a":1}`)
	sig := SignHMACSHA256("s3cr3t", body)
	// A secret read with ${file:...} from a file ending in a newline.
	assert.True(t, ValidHMACSHA256("s3cr3t\n", body, sig))
	assert.True(t, ValidHMACSHA256("  s3cr3t \r\n", body, sig))
	assert.False(t, ValidHMACSHA256("s3cr3", body, sig))
	assert.True(t, EqualToken("tok\n", "tok"))
	assert.False(t, EqualToken("tok\n", "tok\n"), "the presented token is compared as sent")

	c := SecretConfig{Secret: " \n"}
	assert.ErrorContains(t, c.Check(), "secret: is only whitespace")
}

// TestCheckAgeAtAnyDistance: max_age holds for times more than 292 years
// away, where a Duration saturates (a Unix time in milliseconds read as
// seconds is tens of thousands of years ahead).
func TestCheckAgeAtAnyDistance(t *testing.T) {
	received := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	for name, at := range map[string]time.Time{
		"milliseconds as seconds": time.Unix(received.UnixMilli(), 0),
		"year 9999":               time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
		"year 1":                  time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckAge("X-Dora-Timestamp", at, received, time.Hour)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "more than 290 years")
		})
	}
	require.NoError(t, CheckAge("X-Dora-Timestamp", received.Add(time.Hour), received, time.Hour), "the edge itself passes")
	require.Error(t, CheckAge("X-Dora-Timestamp", received.Add(time.Hour+time.Second), received, time.Hour))
}

// TestTokenConfig: the token sources (Argo CD, Alertmanager, CDEvents)
// share one check, one insecure rule and one comparison.
func TestTokenConfig(t *testing.T) {
	var none TokenConfig
	assert.EqualError(t, none.Check("sent as Authorization: Bearer <token>"),
		"token: required to authenticate deliveries (sent as Authorization: Bearer <token>; set insecure_skip_verify: true to accept unauthenticated deliveries)")
	assert.True(t, none.Verify())
	assert.False(t, none.Insecure())

	skip := TokenConfig{InsecureSkipVerify: true}
	require.NoError(t, skip.Check("x"))
	assert.True(t, skip.Insecure(), "no token and insecure_skip_verify: deliveries are not authenticated")

	both := TokenConfig{Token: "tok\n", InsecureSkipVerify: true}
	assert.True(t, both.Verify(), "a configured token is checked even with insecure_skip_verify")
	assert.False(t, both.Insecure())
	assert.True(t, both.Equal("tok"), "the configured token's whitespace is not part of it")
	assert.False(t, both.Equal("tok2"))
	assert.False(t, both.Equal(""))
}
