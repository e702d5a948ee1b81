package gitpush

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sameAsTimeParse fails unless ParseRFC3339 agrees with time.Parse.
func sameAsTimeParse(t *testing.T, s string) {
	t.Helper()
	want, err := time.Parse(time.RFC3339, s)
	got, ok := ParseRFC3339([]byte(s))
	require.Equal(t, err == nil, ok, "%q: time.Parse error %v", s, err)
	if ok {
		require.True(t, want.Equal(got), "%q: %v, time.Parse %v", s, got, want)
	}
}

func TestParseRFC3339MatchesTimeParse(t *testing.T) {
	for _, s := range []string{
		"2026-11-02T09:12:44+01:00", "2026-11-02T08:55:31Z", "2026-11-02T08:55:31-07:30", "2026-11-02T08:55:31+00:00",
		"2026-11-02T08:55:31-00:00", "2026-11-02T08:55:31.123Z", "2026-11-02T08:55:31z", "2026-11-02t08:55:31Z",
		"2024-02-29T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
		"2026-01-00T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T23:60:00Z", "2026-01-01T23:59:60Z", "2026-01-01T23:59:59+24:00",
		"2026-01-01T23:59:59+23:60", "2026-01-01T23:59:59+2300", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
		"2026-1-01T00:00:00Z", "2026-01-01 00:00:00Z", "+026-01-01T00:00:00Z", "2026-01-01T00:00:00", "", "yesterday",
	} {
		sameAsTimeParse(t, s)
	}
	// Every day of a leap year and of a common year, at a few offsets.
	for _, year := range []int{2024, 2026} {
		for d := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() == year; d = d.AddDate(0, 0, 1) {
			sameAsTimeParse(t, d.Format(time.RFC3339))
			sameAsTimeParse(t, d.In(time.FixedZone("", 5*3600+30*60)).Format(time.RFC3339))
			sameAsTimeParse(t, d.In(time.FixedZone("", -8*3600)).Format(time.RFC3339))
		}
	}
}

func FuzzParseRFC3339(f *testing.F) {
	f.Add("2026-11-02T09:12:44+01:00")
	f.Add("2026-11-02T08:55:31Z")
	f.Fuzz(func(t *testing.T, s string) { sameAsTimeParse(t, s) })
}
