// Package apiclient is the HTTP client the history importers read the
// providers' APIs with (GitHub, GitLab, PagerDuty): one policy of
// politeness under every client library.
//
// Its Transport obeys the providers' rate limits (GitHub's X-RateLimit-*
// and secondary limits, GitLab's RateLimit-*, 429 with Retry-After
// anywhere), retries 5xx answers and connection errors with exponential
// backoff and jitter, stops at a request budget with
// history.ErrBudgetSpent, and makes conditional requests (ETag,
// Last-Modified), serving a 304 from its bounded cache as if the server
// had answered 200. Every wait ends at once when the request's context is
// canceled, and no wait is longer than Options.MaxWait: a limit that lasts
// longer fails the request with a *RateLimitError saying until when.
//
// The client libraries keep their own retry and rate-limit logic off, so
// that one policy applies and is counted once: go-github with
// github.WithDisableRateLimitCheck() (its check would refuse a request
// itself after a response announcing 0 remaining, before this transport
// could wait for the reset), GitLab's client-go with gitlab.WithoutRetries()
// and a limiter that never waits (it otherwise retries 429 and 5xx again
// and paces requests on the wall clock).
//
// Errors and telemetry name hosts and paths only: never a query string,
// never a header value, so no token reaches a log.
package apiclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// Defaults of Options' zero fields.
const (
	DefaultMaxAttempts         = 5
	DefaultMinBackoff          = time.Second
	DefaultMaxBackoff          = time.Minute
	DefaultMaxWait             = 15 * time.Minute
	DefaultMaxRateLimitRetries = 10
	DefaultCacheEntries        = 1024
	DefaultCacheBytes          = 32 << 20
	// DefaultSecondaryWait is GitHub's advice for a secondary limit that
	// says neither Retry-After nor a reset: wait at least a minute, then
	// longer at each repeat.
	DefaultSecondaryWait = time.Minute
)

// Options configure a Transport. The zero value is usable.
type Options struct {
	// Name labels errors (the source: "github", "gitlab", "pagerduty").
	Name string
	// Base sends the requests; nil is a clone of http.DefaultTransport
	// with a response header timeout.
	Base http.RoundTripper
	// RequestBudget is the most requests this transport sends in its life,
	// retries and conditional requests included (each costs the provider
	// one); 0 is unlimited. Once spent, requests fail with an error
	// wrapping history.ErrBudgetSpent and nothing more is sent.
	RequestBudget int
	// MaxAttempts bounds the sends of one request answered 5xx or failing
	// to connect (default 5).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// those attempts (defaults 1s and 1m); jitter spreads each wait over
	// its upper half.
	MinBackoff, MaxBackoff time.Duration
	// MaxRateLimitRetries bounds the resends of one request refused by a
	// rate limit (default 10).
	MaxRateLimitRetries int
	// MaxWait is the longest single wait for a rate limit (default 15m).
	// A limit lasting longer fails the request at once with a
	// *RateLimitError instead of holding it.
	MaxWait time.Duration
	// RetryNonIdempotent lets a POST or PATCH whose body can be replayed
	// be resent after a 5xx or a connection error (the server may have
	// applied it). Rate-limit refusals are resent whatever the method:
	// the server did not act on them.
	RetryNonIdempotent bool
	// CacheEntries and CacheBytes bound the conditional-request cache
	// (defaults 1024 entries, 32 MiB); a negative CacheEntries turns it
	// off. A body larger than a quarter of CacheBytes is not kept.
	CacheEntries int
	CacheBytes   int64
	// Observe, when set, is called for each Event (from the goroutine
	// making the request): the runner turns them into the import's
	// telemetry.
	Observe func(Event)
	// Now and Sleep replace the clock in tests. Sleep must return
	// ctx.Err() as soon as ctx is done.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0, 1) (default math/rand/v2).
	Jitter func() float64
}

// EventKind says what an Event reports.
type EventKind int

const (
	// EventRequest is one request sent (Status is the answer, 0 when the
	// connection failed).
	EventRequest EventKind = iota
	// EventRetry is a request about to be sent again (Reason says why,
	// Wait how long it waits first).
	EventRetry
	// EventRateLimitWait is a wait for a rate limit, before a first send
	// or a resend (Wait is its length).
	EventRateLimitWait
	// EventNotModified is a 304 answered from the cache.
	EventNotModified
	// EventBudgetSpent is a request refused because the budget is spent.
	EventBudgetSpent
	// EventGaveUp is a request that failed for good: attempts exhausted or
	// a rate limit longer than MaxWait (Reason says which).
	EventGaveUp
)

func (k EventKind) String() string {
	switch k {
	case EventRequest:
		return "request"
	case EventRetry:
		return "retry"
	case EventRateLimitWait:
		return "rate_limit_wait"
	case EventNotModified:
		return "not_modified"
	case EventBudgetSpent:
		return "budget_spent"
	case EventGaveUp:
		return "gave_up"
	}
	return "unknown"
}

// Event is one thing the transport did, for telemetry. It carries no
// query string and no header.
type Event struct {
	Kind   EventKind
	Method string
	Host   string
	Path   string
	Status int
	Wait   time.Duration
	// Reason is why a retry, wait or give-up happened: "server_error",
	// "connection", "primary_limit", "secondary_limit", "too_many_requests",
	// "attempts", "max_wait".
	Reason string
}

// Stats are the transport's counters since it was made.
type Stats struct {
	Requests       int64 // sent, retries and conditional requests included
	Retries        int64
	RateLimitWaits int64
	Waited         time.Duration // total time spent in rate-limit waits and backoff
	NotModified    int64         // 304s served from the cache
	BudgetRefused  int64
}

// RateLimitError fails a request whose rate limit lasts longer than
// Options.MaxWait (or for good after MaxRateLimitRetries refusals): the
// import resumes after Until.
type RateLimitError struct {
	Name    string
	Host    string
	Until   time.Time
	Wait    time.Duration // how long it would have had to wait
	MaxWait time.Duration
	Reason  string
}

func (e *RateLimitError) Error() string {
	who := e.Host
	if e.Name != "" {
		who = e.Name + " (" + e.Host + ")"
	}
	if e.Wait > e.MaxWait {
		return fmt.Sprintf("%s rate limit (%s): next request allowed at %s, in %s, longer than the longest wait %s",
			who, e.Reason, e.Until.UTC().Format(time.RFC3339), e.Wait.Round(time.Second), e.MaxWait)
	}
	return fmt.Sprintf("%s rate limit (%s): still refused after the allowed retries; next try at %s",
		who, e.Reason, e.Until.UTC().Format(time.RFC3339))
}

// Transport is the polite http.RoundTripper. It is safe for concurrent
// use; make one per source so each has its own budget.
type Transport struct {
	opt  Options
	base http.RoundTripper

	mu      sync.Mutex
	blocked map[string]time.Time // host -> no request before
	sent    int
	cache   *cache

	requests, retries, waits, notModified, refused atomic.Int64
	waited                                         atomic.Int64
}

// New returns an *http.Client whose transport is NewTransport(o). It has
// no overall timeout: that would cut rate-limit waits; the base
// transport's header timeout and the request's context bound a request.
func New(o Options) *http.Client {
	return &http.Client{Transport: NewTransport(o)}
}

// NewTransport returns a Transport for o.
func NewTransport(o Options) *Transport {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.MaxRateLimitRetries <= 0 {
		o.MaxRateLimitRetries = DefaultMaxRateLimitRetries
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = DefaultCacheEntries
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	base := o.Base
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute
		base = t
	}
	t := &Transport{opt: o, base: base, blocked: map[string]time.Time{}}
	if o.CacheEntries > 0 {
		t.cache = newCache(o.CacheEntries, o.CacheBytes)
	}
	return t
}

// Stats returns the counters so far.
func (t *Transport) Stats() Stats {
	return Stats{
		Requests:       t.requests.Load(),
		Retries:        t.retries.Load(),
		RateLimitWaits: t.waits.Load(),
		Waited:         time.Duration(t.waited.Load()),
		NotModified:    t.notModified.Load(),
		BudgetRefused:  t.refused.Load(),
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func (t *Transport) observe(e Event) {
	if t.opt.Observe != nil {
		t.opt.Observe(e)
	}
}

// RoundTrip sends req politely. It follows the http.RoundTripper
// contract: req is not modified, and its body is closed.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeBody := func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}
	ctx := req.Context()
	ev := Event{Method: req.Method, Host: req.URL.Host, Path: req.URL.Path}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	idempotent := isIdempotent(req.Method)

	var key string
	var cached *entry
	if t.cache != nil && req.Method == http.MethodGet && req.Header.Get("Range") == "" &&
		req.Header.Get("If-None-Match") == "" && req.Header.Get("If-Modified-Since") == "" {
		key = cacheKey(req)
		cached = t.cache.get(key)
	}

	attempts, limitRetries := 0, 0
	var secondaryWait time.Duration
	for first := true; ; first = false {
		// A wait announced by an earlier answer (remaining 0) holds this
		// request before it is sent.
		if err := t.waitForHost(ctx, req.URL.Host, ev); err != nil {
			closeBody()
			return nil, err
		}
		if err := t.spend(); err != nil {
			closeBody()
			e := ev
			e.Kind = EventBudgetSpent
			t.observe(e)
			return nil, err
		}
		out, err := t.prepare(req, first, cached)
		if err != nil {
			closeBody()
			return nil, err
		}
		t.requests.Add(1)
		resp, err := t.base.RoundTrip(out)
		e := ev
		e.Kind = EventRequest
		if resp != nil {
			e.Status = resp.StatusCode
		}
		t.observe(e)

		if err != nil {
			if ctx.Err() != nil {
				closeBody()
				return nil, ctx.Err()
			}
			attempts++
			if !replayable || (!idempotent && !t.opt.RetryNonIdempotent) || attempts >= t.opt.MaxAttempts {
				t.gaveUp(ev, 0, "attempts")
				closeBody()
				return nil, fmt.Errorf("%s%s %s: %w", t.prefix(), req.Method, redact(req.URL), err)
			}
			if err := t.backoff(ctx, ev, attempts, 0, "connection"); err != nil {
				closeBody()
				return nil, err
			}
			continue
		}

		now := t.opt.Now()
		// Any answer may announce that the next request must wait.
		t.noteLimit(req.URL.Host, resp, now)

		if wait, reason, limited := t.refusedByLimit(resp, now, &secondaryWait); limited {
			limitRetries++
			if !replayable || limitRetries > t.opt.MaxRateLimitRetries || wait > t.opt.MaxWait {
				discard(resp)
				closeBody()
				t.gaveUp(ev, resp.StatusCode, reason)
				return nil, &RateLimitError{Name: t.opt.Name, Host: req.URL.Host, Until: now.Add(wait),
					Wait: wait, MaxWait: t.opt.MaxWait, Reason: reason}
			}
			discard(resp)
			t.block(req.URL.Host, now.Add(wait))
			t.retries.Add(1)
			r := ev
			r.Kind, r.Status, r.Wait, r.Reason = EventRetry, resp.StatusCode, wait, reason
			t.observe(r)
			continue // waitForHost does the wait
		}

		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
			attempts++
			if !replayable || (!idempotent && !t.opt.RetryNonIdempotent) || attempts >= t.opt.MaxAttempts {
				t.gaveUp(ev, resp.StatusCode, "attempts")
				closeBody()
				return resp, nil // the library reports the status
			}
			retryAfter, _ := parseRetryAfter(resp.Header.Get("Retry-After"), now)
			discard(resp)
			if retryAfter > t.opt.MaxWait {
				closeBody()
				t.gaveUp(ev, resp.StatusCode, "max_wait")
				return nil, &RateLimitError{Name: t.opt.Name, Host: req.URL.Host, Until: now.Add(retryAfter),
					Wait: retryAfter, MaxWait: t.opt.MaxWait, Reason: "server_error"}
			}
			if err := t.backoff(ctx, ev, attempts, retryAfter, "server_error"); err != nil {
				closeBody()
				return nil, err
			}
			continue
		}

		closeBody()
		if resp.StatusCode == http.StatusNotModified && cached != nil {
			t.notModified.Add(1)
			n := ev
			n.Kind, n.Status = EventNotModified, resp.StatusCode
			t.observe(n)
			return cached.response(req, resp), nil
		}
		if key != "" && resp.StatusCode == http.StatusOK &&
			(resp.Header.Get("ETag") != "" || resp.Header.Get("Last-Modified") != "") &&
			!strings.Contains(strings.ToLower(resp.Header.Get("Cache-Control")), "no-store") {
			return t.cache.keep(key, resp), nil
		}
		return resp, nil
	}
}

func (t *Transport) prefix() string {
	if t.opt.Name == "" {
		return ""
	}
	return t.opt.Name + ": "
}

func (t *Transport) gaveUp(ev Event, status int, reason string) {
	ev.Kind, ev.Status, ev.Reason = EventGaveUp, status, reason
	t.observe(ev)
}

// prepare returns the request to send: a clone with a fresh body after
// the first attempt, and the cache's validators.
func (t *Transport) prepare(req *http.Request, first bool, cached *entry) (*http.Request, error) {
	if first && cached == nil {
		return req, nil
	}
	out := req.Clone(req.Context())
	if !first && req.Body != nil && req.Body != http.NoBody {
		b, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("%sreplaying the body of %s %s: %w", t.prefix(), req.Method, redact(req.URL), err)
		}
		out.Body = b
	} else if first {
		out.Body = req.Body
	}
	if cached != nil {
		if cached.etag != "" {
			out.Header.Set("If-None-Match", cached.etag)
		}
		if cached.lastModified != "" {
			out.Header.Set("If-Modified-Since", cached.lastModified)
		}
	}
	return out, nil
}

// spend takes one request from the budget.
func (t *Transport) spend() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.opt.RequestBudget > 0 && t.sent >= t.opt.RequestBudget {
		t.refused.Add(1)
		return fmt.Errorf("%s%w (%d requests)", t.prefix(), history.ErrBudgetSpent, t.opt.RequestBudget)
	}
	t.sent++
	return nil
}

func (t *Transport) block(host string, until time.Time) {
	t.mu.Lock()
	if until.After(t.blocked[host]) {
		t.blocked[host] = until
	}
	t.mu.Unlock()
}

// waitForHost waits until host may be asked again, or fails when that is
// further than MaxWait.
func (t *Transport) waitForHost(ctx context.Context, host string, ev Event) error {
	t.mu.Lock()
	until, ok := t.blocked[host]
	t.mu.Unlock()
	if !ok {
		return ctx.Err()
	}
	now := t.opt.Now()
	wait := until.Sub(now)
	if wait <= 0 {
		return ctx.Err()
	}
	if wait > t.opt.MaxWait {
		t.gaveUp(ev, 0, "max_wait")
		return &RateLimitError{Name: t.opt.Name, Host: host, Until: until, Wait: wait, MaxWait: t.opt.MaxWait, Reason: "primary_limit"}
	}
	t.waits.Add(1)
	t.waited.Add(int64(wait))
	w := ev
	w.Kind, w.Wait, w.Reason = EventRateLimitWait, wait, "rate_limit"
	t.observe(w)
	return t.opt.Sleep(ctx, wait)
}

// backoff waits before resending after a 5xx or a connection error: the
// exponential backoff of this attempt, or the server's Retry-After when
// longer.
func (t *Transport) backoff(ctx context.Context, ev Event, attempt int, atLeast time.Duration, reason string) error {
	d := t.opt.MinBackoff * time.Duration(math.Pow(2, float64(attempt-1)))
	if d > t.opt.MaxBackoff || d <= 0 {
		d = t.opt.MaxBackoff
	}
	// Jitter over the upper half: retries of many clients spread out, and
	// no wait is shorter than half the step.
	d = d/2 + time.Duration(t.opt.Jitter()*float64(d/2))
	if atLeast > d {
		d = atLeast
	}
	t.retries.Add(1)
	t.waited.Add(int64(d))
	r := ev
	r.Kind, r.Wait, r.Reason = EventRetry, d, reason
	t.observe(r)
	return t.opt.Sleep(ctx, d)
}

// noteLimit records a wait that an answer announces for the next request:
// GitHub's X-RateLimit-Remaining 0 until X-RateLimit-Reset, GitLab's
// RateLimit-Remaining 0 until RateLimit-Reset.
func (t *Transport) noteLimit(host string, resp *http.Response, now time.Time) {
	for _, p := range [][2]string{{"X-RateLimit-Remaining", "X-RateLimit-Reset"}, {"RateLimit-Remaining", "RateLimit-Reset"}} {
		if strings.TrimSpace(resp.Header.Get(p[0])) != "0" {
			continue
		}
		if until, ok := resetTime(resp.Header, p[1], now); ok {
			t.block(host, until)
			return
		}
	}
}

// resetTime reads an epoch-seconds reset header, corrected for the
// difference between the server's clock (its Date header) and ours.
func resetTime(h http.Header, name string, now time.Time) (time.Time, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(h.Get(name)), 10, 64)
	if err != nil || v <= 0 {
		return time.Time{}, false
	}
	reset := time.Unix(v, 0)
	// The reset is on the server's clock: keep its distance from the
	// server's now (Date has whole seconds, so this errs long). A year
	// caps nonsense before it overflows; MaxWait refuses it anyway.
	from := now
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		from = d
	}
	wait := min(reset.Sub(from), maxReset)
	return now.Add(wait + time.Second), true
}

const maxReset = 366 * 24 * time.Hour

// refusedByLimit tells whether resp refuses the request for a rate limit,
// and how long to wait before resending it.
func (t *Transport) refusedByLimit(resp *http.Response, now time.Time, secondary *time.Duration) (time.Duration, string, bool) {
	code := resp.StatusCode
	if code != http.StatusTooManyRequests && code != http.StatusForbidden {
		return 0, "", false
	}
	retryAfter, hasRetryAfter := parseRetryAfter(resp.Header.Get("Retry-After"), now)
	primary := resp.Header.Get("X-RateLimit-Remaining") == "0" || resp.Header.Get("RateLimit-Remaining") == "0"
	var reset time.Time
	var hasReset bool
	if reset, hasReset = resetTime(resp.Header, "X-RateLimit-Reset", now); !hasReset {
		reset, hasReset = resetTime(resp.Header, "RateLimit-Reset", now)
	}
	if code == http.StatusForbidden && !hasRetryAfter && !primary && !isSecondaryLimitBody(resp) {
		return 0, "", false // a real 403: the token may not read this
	}
	reason := "too_many_requests"
	switch {
	case primary:
		reason = "primary_limit"
	case code == http.StatusForbidden:
		reason = "secondary_limit"
	}
	switch {
	case hasRetryAfter:
		return retryAfter, reason, true
	case primary && hasReset:
		return max(reset.Sub(now), 0), reason, true
	}
	// No time given: GitHub asks for at least a minute, then longer at
	// each repeat; GitLab and others get the same patience.
	if *secondary == 0 {
		*secondary = DefaultSecondaryWait
	} else {
		*secondary *= 2
	}
	return *secondary, reason, true
}

// isSecondaryLimitBody peeks at a 403's body for GitHub's secondary-limit
// message, then puts the body back.
func isSecondaryLimitBody(resp *http.Response) bool {
	if resp.Body == nil {
		return false
	}
	peek, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
	if err != nil {
		return false
	}
	s := strings.ToLower(string(peek))
	return strings.Contains(s, "secondary rate limit") || strings.Contains(s, "secondary-rate-limits") ||
		strings.Contains(s, "#abuse-rate-limits")
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			s = 0
		}
		if s > math.MaxInt64/int64(time.Second) {
			s = math.MaxInt64 / int64(time.Second)
		}
		return time.Duration(s) * time.Second, true
	}
	if d, err := http.ParseTime(v); err == nil {
		return max(d.Sub(now), 0), true
	}
	return 0, false
}

func isIdempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// discard drains a little of a body (so the connection is reused) and
// closes it.
func discard(resp *http.Response) {
	if resp.Body != nil {
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
	}
}

// redact is u without its query, fragment and user info: what errors and
// telemetry may show.
func redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return c.String()
}

// StatusError is a final answer that a setting must change: 401 (the
// token), 403 that is not a rate limit (the token's permissions), 404 (the
// repository, project or service). Importers wrap it in a
// history.SettingError naming their setting.
type StatusError struct {
	Code int
	// URL has no query string and no user info.
	URL string
}

func (e *StatusError) Error() string {
	what := "not found"
	switch e.Code {
	case http.StatusUnauthorized:
		what = "unauthorized: the token was refused"
	case http.StatusForbidden:
		what = "forbidden: the token may not read this"
	}
	return fmt.Sprintf("%s answered %d (%s)", e.URL, e.Code, what)
}

// Unauthorized reports a refused or insufficient token (401, 403).
func (e *StatusError) Unauthorized() bool {
	return e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden
}

// NotFound reports a 404: the repository, project or service named by a
// setting does not exist, or the token cannot see it.
func (e *StatusError) NotFound() bool { return e.Code == http.StatusNotFound }

// Refused returns a *StatusError when resp is a final 401, 403 (not a rate
// limit) or 404, and nil otherwise. Client libraries hand their
// *http.Response with their errors (github.ErrorResponse.Response,
// gitlab.ErrorResponse.Response), so an importer writes
//
//	if se := apiclient.Refused(resp); se != nil {
//		return &history.SettingError{Setting: "webhooks::github::history::token", Err: se}
//	}
func Refused(resp *http.Response) *StatusError {
	if resp == nil {
		return nil
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusNotFound:
	case http.StatusForbidden:
		if resp.Header.Get("X-RateLimit-Remaining") == "0" || resp.Header.Get("RateLimit-Remaining") == "0" ||
			resp.Header.Get("Retry-After") != "" {
			return nil
		}
	default:
		return nil
	}
	var u string
	if resp.Request != nil {
		u = redact(resp.Request.URL)
	}
	return &StatusError{Code: resp.StatusCode, URL: u}
}

// AsSettingError returns a *history.SettingError naming setting when err
// or resp is a final 401, 403 or 404, and nil otherwise: the one-line
// check an importer makes after a failed call.
func AsSettingError(setting string, resp *http.Response, err error) error {
	if err == nil {
		return nil
	}
	if se := Refused(resp); se != nil {
		return &history.SettingError{Setting: setting, Err: se}
	}
	var se *StatusError
	if errors.As(err, &se) {
		return &history.SettingError{Setting: setting, Err: se}
	}
	return nil
}
