package apiclient_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v93/github"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/apiclient"
	"github.com/otelcol-dora/dorareceiver/internal/apiclient/providertest"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

func get(t *testing.T, hc *http.Client, url string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b, nil
}

func okRoute(srv *providertest.Server, pattern, body string) {
	srv.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
}

// 5xx answers are resent with a doubling backoff, at most MaxAttempts
// times; the last answer goes to the caller.
func TestServerErrorsBackoffBounded(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	okRoute(srv, "GET /x", `{}`)
	for range 5 {
		srv.Script("/x", providertest.ServerError(http.StatusServiceUnavailable))
	}
	o := options(clock, nil)
	o.MaxAttempts = 4
	o.Jitter = func() float64 { return 0 }
	resp, _, err := get(t, apiclient.New(o), srv.URL+"/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, 4, srv.Requests())
	// Steps of 4s, 8s, 16s; jitter 0 takes the lower half's end.
	assert.Equal(t, []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}, clock.Waits())

	// With the full jitter the waits stay within their step.
	clock2 := newClock()
	srv2 := providertest.New(t, providertest.WithClock(clock2.Now))
	okRoute(srv2, "GET /x", `{}`)
	srv2.Script("/x", providertest.ServerError(502), providertest.ServerError(504))
	o2 := options(clock2, nil)
	o2.Jitter = func() float64 { return 0.999 }
	resp, body, err := get(t, apiclient.New(o2), srv2.URL+"/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "{}", string(body))
	w := clock2.Waits()
	require.Len(t, w, 2)
	assert.InDelta(t, float64(4*time.Second), float64(w[0]), float64(10*time.Millisecond))
	assert.InDelta(t, float64(8*time.Second), float64(w[1]), float64(10*time.Millisecond))
}

// A 503 with Retry-After waits that long when it is longer than the
// backoff step.
func TestServerErrorRetryAfter(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	okRoute(srv, "GET /x", `{}`)
	a := providertest.ServerError(http.StatusServiceUnavailable)
	a.Header.Set("Retry-After", "42")
	srv.Script("/x", a)
	resp, _, err := get(t, apiclient.New(options(clock, nil)), srv.URL+"/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []time.Duration{42 * time.Second}, clock.Waits())
}

// A dropped connection is retried like a 5xx.
func TestConnectionErrorRetried(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	okRoute(srv, "GET /x", `{"ok":true}`)
	srv.Script("/x", providertest.Hangup())
	resp, body, err := get(t, apiclient.New(options(clock, nil)), srv.URL+"/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `{"ok":true}`, string(body))
	assert.Equal(t, 2, srv.Requests())
	assert.Len(t, clock.Waits(), 1)
}

// Requests with bodies: replayed from GetBody when they can be, never
// resent when they cannot; a POST is resent after a 5xx only when allowed,
// after a rate-limit refusal always.
func TestBodiesReplayedOnlyWhenReplayable(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	srv.Handle("/x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	}))
	hc := apiclient.New(options(clock, nil))
	send := func(method string, body io.Reader, replayable bool) int {
		req, err := http.NewRequest(method, srv.URL+"/x", body)
		require.NoError(t, err)
		if !replayable {
			req.GetBody = nil
		}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}

	srv.Script("/x", providertest.ServerError(502))
	assert.Equal(t, 200, send(http.MethodPut, strings.NewReader(`{"a":1}`), true))
	assert.Equal(t, 2, srv.Requests(), "replayable PUT resent")
	assert.Equal(t, []string{`{"a":1}`}, bodies, "the resent body is whole")

	srv.Script("/x", providertest.ServerError(502))
	assert.Equal(t, 502, send(http.MethodPut, strings.NewReader(`{"b":2}`), false))
	assert.Equal(t, 3, srv.Requests(), "a body without GetBody is not resent")

	srv.Script("/x", providertest.ServerError(502))
	assert.Equal(t, 502, send(http.MethodPost, bytes.NewReader([]byte(`{"c":3}`)), true))
	assert.Equal(t, 4, srv.Requests(), "a POST is not resent after a 5xx")

	srv.Script("/x", providertest.TooManyRequests("1"))
	assert.Equal(t, 200, send(http.MethodPost, bytes.NewReader([]byte(`{"d":4}`)), true))
	assert.Equal(t, 6, srv.Requests(), "a POST refused by a rate limit is resent")
	assert.Equal(t, `{"d":4}`, bodies[len(bodies)-1])
}

// A 403 that is not a rate limit is a final answer: not retried, and
// Refused names it; 401 and 404 too. A 403 with remaining 0 is not.
func TestRefusedStatuses(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	okRoute(srv, "GET /x", `{}`)
	hc := apiclient.New(options(clock, nil))
	for _, code := range []int{401, 403, 404} {
		srv.Script("/x", providertest.Status(code))
		before := srv.Requests()
		resp, _, err := get(t, hc, srv.URL+"/x?private_token=TESTSECRET&page=2")
		require.NoError(t, err)
		assert.Equal(t, code, resp.StatusCode)
		assert.Equal(t, before+1, srv.Requests(), "%d is not retried", code)
		se := apiclient.Refused(resp)
		require.NotNil(t, se, "%d", code)
		assert.Equal(t, code, se.Code)
		assert.Equal(t, srv.URL+"/x", se.URL, "no query string")
		assert.NotContains(t, se.Error(), "TESTSECRET")
		assert.Equal(t, code != 404, se.Unauthorized())
		assert.Equal(t, code == 404, se.NotFound())
	}
	limited := &http.Response{StatusCode: 403, Header: http.Header{"X-Ratelimit-Remaining": {"0"}}}
	assert.Nil(t, apiclient.Refused(limited))
	assert.Nil(t, apiclient.Refused(&http.Response{StatusCode: 500}))
	assert.Empty(t, clock.Waits())
}

// An importer turns a go-github error into the SettingError that names
// its setting.
func TestAsSettingErrorWithGoGitHub(t *testing.T) {
	srv := providertest.New(t)
	srv.Handle("GET "+ghPath, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/deployments/deployments#list-deployments","status":"404"}`)
	}))
	gh := newGitHub(t, srv, apiclient.New(apiclient.Options{}))
	_, resp, err := gh.Repositories.ListDeployments(context.Background(), "octocat", "example", nil)
	require.Error(t, err)
	var ghErr *github.ErrorResponse
	require.ErrorAs(t, err, &ghErr)
	serr := apiclient.AsSettingError("webhooks::github::history::repositories", resp.Response, err)
	var se *history.SettingError
	require.ErrorAs(t, serr, &se)
	assert.Equal(t, "webhooks::github::history::repositories", se.Setting)
	var st *apiclient.StatusError
	require.ErrorAs(t, serr, &st)
	assert.Equal(t, 404, st.Code)
	assert.Contains(t, serr.Error(), "fix webhooks::github::history::repositories")
	assert.Nil(t, apiclient.AsSettingError("x", nil, nil))
	assert.Nil(t, apiclient.AsSettingError("x", &http.Response{StatusCode: 500}, errors.New("boom")))
}

// GitHub's secondary limit without Retry-After: a minute, then two.
func TestSecondaryLimitWithoutRetryAfter(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	okRoute(srv, "GET /x", `{}`)
	srv.Script("/x", providertest.GitHubSecondaryLimit(0), providertest.GitHubSecondaryLimit(0))
	resp, _, err := get(t, apiclient.New(options(clock, nil)), srv.URL+"/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []time.Duration{time.Minute, 2 * time.Minute}, clock.Waits())
}

// Rate-limit refusals are resent a bounded number of times.
func TestRateLimitRetriesBounded(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	okRoute(srv, "GET /x", `{}`)
	for range 10 {
		srv.Script("/x", providertest.TooManyRequests("1"))
	}
	o := options(clock, nil)
	o.MaxRateLimitRetries = 3
	_, _, err := get(t, apiclient.New(o), srv.URL+"/x")
	var rle *apiclient.RateLimitError
	require.ErrorAs(t, err, &rle)
	assert.Equal(t, "too_many_requests", rle.Reason)
	assert.Equal(t, 4, srv.Requests())
}

// The cache answers a 304 with the stored body and the 304's own
// rate-limit headers, keyed by credential, bounded in entries and bytes.
func TestConditionalCache(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now), providertest.WithRateLimit(providertest.GitHub, 100, time.Hour))
	for _, p := range []string{"/a", "/b", "/c"} {
		okRoute(srv, "GET "+p, `{"path":"`+p+`"}`)
	}
	big := strings.Repeat("x", 3000)
	okRoute(srv, "GET /big", `"`+big+`"`)
	o := options(clock, nil)
	o.CacheEntries = 2
	o.CacheBytes = 8000 // a body over 2000 bytes is not kept
	tr := apiclient.NewTransport(o)
	hc := &http.Client{Transport: tr}
	tok := []string{"Authorization", "Bearer TESTSECRET"}

	_, _, err := get(t, hc, srv.URL+"/a", tok...)
	require.NoError(t, err)
	require.NoError(t, clock.Sleep(context.Background(), 10*time.Second))
	resp, body, err := get(t, hc, srv.URL+"/a", tok...)
	require.NoError(t, err)
	last := srv.Log()[len(srv.Log())-1]
	assert.True(t, last.Conditional)
	assert.Equal(t, 304, last.Status)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, `{"path":"/a"}`, string(body))
	assert.Equal(t, "1", resp.Header.Get("X-From-Cache"))
	assert.Equal(t, clock.Now().Format(http.TimeFormat), resp.Header.Get("Date"), "the 304's headers over the stored ones")
	assert.Equal(t, "99", resp.Header.Get("X-RateLimit-Remaining"), "GitHub does not count the 304")
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	// Another credential never gets this one's answer.
	_, _, err = get(t, hc, srv.URL+"/a", "Authorization", "Bearer OTHER")
	require.NoError(t, err)
	assert.False(t, srv.Log()[len(srv.Log())-1].Conditional)

	// Entries: /a (other token) and /b are the two kept; /a (first token) went.
	_, _, err = get(t, hc, srv.URL+"/b", tok...)
	require.NoError(t, err)
	_, _, err = get(t, hc, srv.URL+"/a", tok...)
	require.NoError(t, err)
	assert.False(t, srv.Log()[len(srv.Log())-1].Conditional, "evicted past CacheEntries")
	_, _, err = get(t, hc, srv.URL+"/a", tok...)
	require.NoError(t, err)
	assert.True(t, srv.Log()[len(srv.Log())-1].Conditional)

	// Bytes: a body over a quarter of CacheBytes is served but not kept.
	_, body, err = get(t, hc, srv.URL+"/big", tok...)
	require.NoError(t, err)
	assert.Len(t, body, len(big)+2)
	_, body, err = get(t, hc, srv.URL+"/big", tok...)
	require.NoError(t, err)
	assert.Len(t, body, len(big)+2)
	assert.False(t, srv.Log()[len(srv.Log())-1].Conditional)
	assert.Equal(t, int64(2), tr.Stats().NotModified)
}

// Last-Modified alone makes conditional requests too.
func TestConditionalLastModified(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now), providertest.WithoutETags(),
		providertest.WithLastModified(clock.Now().Add(-time.Hour)))
	okRoute(srv, "GET /a", `{"a":1}`)
	hc := apiclient.New(options(clock, nil))
	_, _, err := get(t, hc, srv.URL+"/a")
	require.NoError(t, err)
	resp, body, err := get(t, hc, srv.URL+"/a")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, `{"a":1}`, string(body))
	last := srv.Log()[1]
	assert.True(t, last.Conditional)
	assert.Equal(t, 304, last.Status)
}

// No token or query string reaches an error or an event, whatever fails.
func TestNoSecretInErrorsOrEvents(t *testing.T) {
	const secret = "TESTSECRET"
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	okRoute(srv, "GET /x", `{}`)
	ev := &events{}
	o := options(clock, ev)
	o.RequestBudget = 6
	o.MaxAttempts = 2
	hc := apiclient.New(o)
	url := srv.URL + "/x?private_token=" + secret
	hdr := []string{"Authorization", "Bearer " + secret}

	var errs []error
	srv.Script("/x", providertest.GitHubPrimaryLimit(24*time.Hour)) // beyond MaxWait
	_, _, err := get(t, hc, url, hdr...)
	errs = append(errs, err)
	// A new transport for the rest (the first holds the host for a day).
	hc = apiclient.New(o)
	srv.Script("/x", providertest.Hangup(), providertest.Hangup())
	_, _, err = get(t, hc, url, hdr...)
	errs = append(errs, err)
	for err == nil || !errors.Is(err, history.ErrBudgetSpent) {
		_, _, err = get(t, hc, url, hdr...)
		errs = append(errs, err)
	}
	srv.Close()
	_, _, err = get(t, apiclient.New(o), url, hdr...)
	errs = append(errs, err)

	for _, err := range errs {
		if err == nil {
			continue
		}
		var ue interface{ Unwrap() error }
		inner := err
		if errors.As(err, &ue) {
			inner = ue.Unwrap() // net/http's url.Error prints the URL it was given; ours must not
		}
		assert.NotContains(t, inner.Error(), secret)
	}
	for _, e := range ev.all {
		assert.NotContains(t, e.Path+e.Host+e.Reason, secret)
	}
	assert.GreaterOrEqual(t, len(errs), 4)
}

// A reset absurdly far away (an epoch near the end of time) still holds
// the next request instead of overflowing into the past.
func TestFarResetDoesNotOverflow(t *testing.T) {
	clock := newClock()
	var sends int
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sends++
		h := http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"9000000000000000000"},
			"Date": {clock.Now().Format(http.TimeFormat)}}
		return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
	})
	o := options(clock, nil)
	o.Base = base
	hc := apiclient.New(o)
	resp, _, err := get(t, hc, "http://api.example/x")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	_, _, err = get(t, hc, "http://api.example/x")
	var rle *apiclient.RateLimitError
	require.ErrorAs(t, err, &rle)
	assert.Equal(t, 1, sends)
}
