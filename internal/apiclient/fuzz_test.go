package apiclient_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/apiclient"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzRateLimitHeaders answers with arbitrary status and rate-limit
// headers: the transport never panics, never waits longer than MaxWait at
// once, and sends a bounded number of times.
func FuzzRateLimitHeaders(f *testing.F) {
	f.Add(403, "", "0", "1793610000", "", "", "Mon, 02 Nov 2026 09:00:00 GMT", `{"message":"API rate limit exceeded"}`)
	f.Add(403, "60", "", "", "", "", "", `{"documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`)
	f.Add(429, "Mon, 02 Nov 2026 09:02:00 GMT", "", "", "0", "1793610060", "", "Retry later")
	f.Add(429, "-5", "", "", "", "", "", "")
	f.Add(200, "", "0", "99999999999999999999", "", "", "garbage", "")
	f.Add(503, "9999999999999999999", "", "", "", "", "", "")
	f.Add(403, "", "", "", "", "", "", "secondary rate limit")
	f.Fuzz(func(t *testing.T, status int, retryAfter, ghRemaining, ghReset, glRemaining, glReset, date, body string) {
		if status < 100 || status > 999 {
			return
		}
		clock := newClock()
		var longest atomic.Int64
		sleep := func(ctx context.Context, d time.Duration) error {
			if int64(d) > longest.Load() {
				longest.Store(int64(d))
			}
			return clock.Sleep(ctx, d)
		}
		var sends atomic.Int64
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			n := sends.Add(1)
			h := http.Header{}
			if n == 1 || n%2 == 0 {
				for k, v := range map[string]string{"Retry-After": retryAfter, "X-RateLimit-Remaining": ghRemaining,
					"X-RateLimit-Reset": ghReset, "RateLimit-Remaining": glRemaining, "RateLimit-Reset": glReset, "Date": date} {
					if v != "" {
						h.Set(k, v)
					}
				}
				return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
			}
			return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
		})
		o := apiclient.Options{Base: base, Now: clock.Now, Sleep: sleep, MaxWait: time.Hour, CacheEntries: -1}
		hc := apiclient.New(o)
		for range 2 {
			resp, err := hc.Get("http://api.example/x")
			if err == nil {
				resp.Body.Close()
			}
		}
		if time.Duration(longest.Load()) > time.Hour {
			t.Fatalf("waited %s at once, more than MaxWait", time.Duration(longest.Load()))
		}
		limit := int64(2 * (apiclient.DefaultMaxAttempts + apiclient.DefaultMaxRateLimitRetries + 1))
		if sends.Load() > limit {
			t.Fatalf("%d sends for 2 requests", sends.Load())
		}
	})
}
