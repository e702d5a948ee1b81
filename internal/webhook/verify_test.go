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
