// Package providertest is a fake provider API for tests and benchmarks:
// an HTTP server on 127.0.0.1 that serves JSON lists with the providers'
// pagination (GitHub's Link headers, GitLab's X-Next-Page/X-Total-Pages
// and Link, PagerDuty's offset/limit/more envelope), answers ETag
// conditional requests with 304, keeps a rate limit the way GitHub or
// GitLab announce it, plays scripted answers (primary and secondary rate
// limits, 429 with Retry-After, 5xx bursts, dropped connections) and
// counts every request.
//
// Its clock is injectable, so the rate-limit resets it announces follow
// the test's fake clock, the one the client under test waits on.
package providertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Style is the API convention a list or a rate limit follows.
type Style int

const (
	// GitHub: ?page=&per_page= and a Link header (next, last, first,
	// prev); X-RateLimit-* headers, a 403 with remaining 0 when spent,
	// and 304s that do not count.
	GitHub Style = iota
	// GitLab: ?page=&per_page=, X-Page, X-Per-Page, X-Next-Page,
	// X-Prev-Page, X-Total, X-Total-Pages and Link; RateLimit-* headers
	// and a 429 with Retry-After when spent.
	GitLab
	// PagerDuty: ?offset=&limit= and a body envelope {"<key>": [...],
	// "limit", "offset", "more", "total"}; a 429 when rate limited.
	PagerDuty
)

// Server is the fake provider. Its URL is the API's base URL.
type Server struct {
	URL string

	t   testing.TB
	srv *httptest.Server
	mux *http.ServeMux
	now func() time.Time

	mu           sync.Mutex
	scripts      map[string][]Answer
	log          []Record
	limit        *rateLimit
	lastModified time.Time
	noETag       bool
}

// Record is one request the server received.
type Record struct {
	Method, Path, RawQuery string
	// Status is what it answered (0 for a dropped connection).
	Status int
	// Conditional is true when the request carried If-None-Match or
	// If-Modified-Since.
	Conditional bool
	// Authorized is true when it carried an Authorization or
	// PRIVATE-TOKEN header (never its value).
	Authorized bool
}

// Option configures a Server.
type Option func(*Server)

// WithClock makes the server's time (Date headers, rate-limit windows and
// resets) follow now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithRateLimit makes the server keep a rate limit of limit requests per
// window, announced and enforced in style's way (GitHub or GitLab).
func WithRateLimit(style Style, limit int, window time.Duration) Option {
	return func(s *Server) { s.limit = &rateLimit{style: style, limit: limit, window: window} }
}

// WithLastModified adds Last-Modified: t to the 200 answers of GET routes
// and answers If-Modified-Since not before t with 304.
func WithLastModified(t time.Time) Option { return func(s *Server) { s.lastModified = t } }

// WithoutETags leaves ETag out of the answers.
func WithoutETags() Option { return func(s *Server) { s.noETag = true } }

// New starts a Server on 127.0.0.1; it is closed when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	s := &Server{t: t, mux: http.NewServeMux(), now: time.Now, scripts: map[string][]Answer{}}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Close stops the server (New already arranges it for the test's end).
func (s *Server) Close() { s.srv.Close() }

// Handle adds a route (a net/http ServeMux pattern such as
// "GET /repos/{owner}/{repo}/compare/{basehead}"); its answers go through
// the server's scripts, rate limit, ETags and counting like the others.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// JSON serves body at pattern.
func (s *Server) JSON(pattern string, body []byte) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
	})
}

// List is a paginated collection.
type List struct {
	Style Style
	// Total is the number of items; Item returns the i-th (0-based) as
	// JSON, so large lists need not be held in memory.
	Total int
	Item  func(i int) []byte
	// PerPage is the page size when the request names none (defaults:
	// GitHub 30, GitLab 20, PagerDuty 25); MaxPerPage caps what a request
	// may ask (default 100).
	PerPage, MaxPerPage int
	// Envelope is PagerDuty's list key ("incidents").
	Envelope string
	// Wrap, for GitHub and GitLab lists, builds the body around the page's
	// JSON array: GitHub's compare answers an object whose "commits" are
	// paginated with Link headers.
	Wrap func(page []byte, total int) []byte
}

// Items is a List.Item over a slice.
func Items(items [][]byte) func(int) []byte { return func(i int) []byte { return items[i] } }

// Vary returns a List.Item that decodes template (a provider's published
// example) and lets set change the fields that must differ per item (ids,
// SHAs, times) before encoding it again.
func Vary(template []byte, set func(i int, m map[string]any)) func(int) []byte {
	return func(i int) []byte {
		var m map[string]any
		if err := json.Unmarshal(template, &m); err != nil {
			panic(fmt.Sprintf("providertest.Vary: template: %v", err))
		}
		set(i, m)
		b, err := json.Marshal(m)
		if err != nil {
			panic(fmt.Sprintf("providertest.Vary: %v", err))
		}
		return b
	}
}

// List serves l at pattern.
func (s *Server) List(pattern string, l List) {
	if l.MaxPerPage <= 0 {
		l.MaxPerPage = 100
	}
	if l.PerPage <= 0 {
		l.PerPage = map[Style]int{GitHub: 30, GitLab: 20, PagerDuty: 25}[l.Style]
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { s.serveList(w, r, l) })
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, l List) {
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if l.Style == PagerDuty {
		limit := atoi(q.Get("limit"), l.PerPage)
		limit = min(max(limit, 1), l.MaxPerPage)
		offset := max(atoi(q.Get("offset"), 0), 0)
		end := min(offset+limit, l.Total)
		var b bytes.Buffer
		fmt.Fprintf(&b, "{%q:[", l.Envelope)
		for i := offset; i < end; i++ {
			if i > offset {
				b.WriteByte(',')
			}
			b.Write(l.Item(i))
		}
		total := "null"
		if q.Get("total") == "true" {
			total = strconv.Itoa(l.Total)
		}
		fmt.Fprintf(&b, `],"limit":%d,"offset":%d,"more":%t,"total":%s}`, limit, offset, end < l.Total, total)
		_, _ = w.Write(b.Bytes())
		return
	}
	perPage := min(max(atoi(q.Get("per_page"), l.PerPage), 1), l.MaxPerPage)
	page := max(atoi(q.Get("page"), 1), 1)
	pages := max((l.Total+perPage-1)/perPage, 1)
	start := min((page-1)*perPage, l.Total)
	end := min(start+perPage, l.Total)

	link := func(p int, rel string) string {
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
		qq := r.URL.Query()
		qq.Set("page", strconv.Itoa(p))
		qq.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = qq.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if page < pages {
		links = append(links, link(page+1, "next"), link(pages, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if l.Style == GitLab {
		h := w.Header()
		h.Set("X-Page", strconv.Itoa(page))
		h.Set("X-Per-Page", strconv.Itoa(perPage))
		h.Set("X-Total", strconv.Itoa(l.Total))
		h.Set("X-Total-Pages", strconv.Itoa(pages))
		h.Set("X-Next-Page", "")
		h.Set("X-Prev-Page", "")
		if page < pages {
			h.Set("X-Next-Page", strconv.Itoa(page+1))
		}
		if page > 1 {
			h.Set("X-Prev-Page", strconv.Itoa(page-1))
		}
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i := start; i < end; i++ {
		if i > start {
			b.WriteByte(',')
		}
		b.Write(l.Item(i))
	}
	b.WriteByte(']')
	if l.Wrap != nil {
		_, _ = w.Write(l.Wrap(b.Bytes(), l.Total))
		return
	}
	_, _ = w.Write(b.Bytes())
}

func atoi(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

// Answer is a scripted answer, played instead of the route's.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
	// Hangup drops the connection without an answer.
	Hangup bool
	// resetIn and retryIn are resolved against the server's clock when
	// the answer is played.
	resetIn *time.Duration
}

// Script queues answers for the next requests to path (the URL path
// exactly, "" for any path), played in order before the route is asked.
func (s *Server) Script(path string, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[path] = append(s.scripts[path], answers...)
}

// Pending is the number of scripted answers not played yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.scripts {
		n += len(a)
	}
	return n
}

// GitHubPrimaryLimit is GitHub's answer when the primary rate limit is
// spent: 403, X-RateLimit-Remaining 0 and a reset resetIn from the
// server's now, with the message GitHub documents.
func GitHubPrimaryLimit(resetIn time.Duration) Answer {
	return Answer{Status: http.StatusForbidden, resetIn: &resetIn,
		Header: http.Header{"X-Ratelimit-Limit": {"5000"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Used": {"5000"},
			"X-Ratelimit-Resource": {"core"}, "Content-Type": {"application/json; charset=utf-8"}},
		Body: []byte(`{"message":"API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits","status":"403"}`)}
}

// GitHubSecondaryLimit is GitHub's secondary-limit answer: 403 with
// Retry-After (seconds; 0 leaves the header out) and the documented
// message.
func GitHubSecondaryLimit(retryAfter time.Duration) Answer {
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	}
	return Answer{Status: http.StatusForbidden, Header: h,
		Body: []byte(`{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits","status":"403"}`)}
}

// GitLabTooMany is GitLab's throttled answer: 429, Retry-After and the
// RateLimit-* headers, reset resetIn from the server's now, body "Retry
// later".
func GitLabTooMany(resetIn time.Duration) Answer {
	return Answer{Status: http.StatusTooManyRequests, resetIn: &resetIn,
		Header: http.Header{"Ratelimit-Limit": {"600"}, "Ratelimit-Observed": {"601"}, "Ratelimit-Remaining": {"0"},
			"Retry-After": {strconv.Itoa(int(resetIn / time.Second))}, "Content-Type": {"text/plain"}},
		Body: []byte("Retry later\n")}
}

// TooManyRequests is a bare 429 with Retry-After as given (seconds or an
// HTTP date; "" leaves it out).
func TooManyRequests(retryAfter string) Answer {
	h := http.Header{"Content-Type": {"application/json"}}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return Answer{Status: http.StatusTooManyRequests, Header: h,
		Body: []byte(`{"error":{"message":"Rate Limit Exceeded","code":2020}}`)}
}

// ServerError is a 5xx answer (502, 503, ...).
func ServerError(code int) Answer {
	return Answer{Status: code, Header: http.Header{"Content-Type": {"text/html"}},
		Body: []byte("<html><body><h1>" + strconv.Itoa(code) + " " + http.StatusText(code) + "</h1></body></html>\n")}
}

// Status is a plain answer with a JSON message (401, 404, ...).
func Status(code int) Answer {
	return Answer{Status: code, Header: http.Header{"Content-Type": {"application/json"}},
		Body: []byte(fmt.Sprintf(`{"message":%q}`, http.StatusText(code)))}
}

// Hangup drops the connection: the client sees a connection error. On a
// reused connection net/http resends a GET by itself (once), so a test of
// a client's own retry starts it on a fresh connection.
func Hangup() Answer { return Answer{Hangup: true} }

// Requests is the number of requests received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// Count is the number of requests received for path.
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.log {
		if r.Path == path {
			n++
		}
	}
	return n
}

// Log is every request received, in order.
func (s *Server) Log() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.log...)
}

type rateLimit struct {
	style     Style
	limit     int
	window    time.Duration
	remaining int
	reset     time.Time
}

// take counts one request against the limit: false when it is spent.
func (l *rateLimit) take(now time.Time) bool {
	if !now.Before(l.reset) {
		l.remaining, l.reset = l.limit, now.Add(l.window)
	}
	if l.remaining == 0 {
		return false
	}
	l.remaining--
	return true
}

func (l *rateLimit) headers(h http.Header, now time.Time) {
	reset := strconv.FormatInt(l.reset.Unix(), 10)
	if l.style == GitLab {
		h.Set("RateLimit-Limit", strconv.Itoa(l.limit))
		h.Set("RateLimit-Observed", strconv.Itoa(l.limit-l.remaining))
		h.Set("RateLimit-Remaining", strconv.Itoa(l.remaining))
		h.Set("RateLimit-Reset", reset)
		h.Set("RateLimit-ResetTime", l.reset.UTC().Format(http.TimeFormat))
		return
	}
	h.Set("X-RateLimit-Limit", strconv.Itoa(l.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(l.remaining))
	h.Set("X-RateLimit-Used", strconv.Itoa(l.limit-l.remaining))
	h.Set("X-RateLimit-Reset", reset)
	h.Set("X-RateLimit-Resource", "core")
}

// recorder buffers a route's answer so the server can compute its ETag
// and answer 304 instead.
type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	rec := Record{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Conditional: r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "",
		Authorized:  r.Header.Get("Authorization") != "" || r.Header.Get("Private-Token") != ""}
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))

	s.mu.Lock()
	a, scripted := s.pop(r.URL.Path)
	var limited bool
	if s.limit != nil && !scripted {
		limited = !s.limit.take(now)
		s.limit.headers(w.Header(), now)
	}
	s.mu.Unlock()

	finish := func(code int) {
		rec.Status = code
		s.mu.Lock()
		s.log = append(s.log, rec)
		s.mu.Unlock()
	}
	if scripted {
		if a.Hangup {
			finish(0)
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		for k, vs := range a.Header {
			w.Header()[k] = vs
		}
		if a.resetIn != nil {
			reset := strconv.FormatInt(now.Add(*a.resetIn).Unix(), 10)
			if a.Status == http.StatusTooManyRequests {
				w.Header().Set("RateLimit-Reset", reset)
				w.Header().Set("RateLimit-ResetTime", now.Add(*a.resetIn).UTC().Format(http.TimeFormat))
			} else {
				w.Header().Set("X-RateLimit-Reset", reset)
			}
		}
		w.WriteHeader(a.Status)
		_, _ = w.Write(a.Body)
		finish(a.Status)
		return
	}
	if limited {
		s.mu.Lock()
		wait := s.limit.reset.Sub(now)
		style := s.limit.style
		s.mu.Unlock()
		if style == GitLab {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte("Retry later\n"))
			finish(http.StatusTooManyRequests)
			return
		}
		p := GitHubPrimaryLimit(0)
		for k, vs := range p.Header {
			if !strings.HasPrefix(k, "X-Ratelimit") {
				w.Header()[k] = vs
			}
		}
		w.WriteHeader(p.Status)
		_, _ = w.Write(p.Body)
		finish(p.Status)
		return
	}

	out := &recorder{h: w.Header()}
	s.mux.ServeHTTP(out, r)
	if out.code == 0 {
		out.code = http.StatusOK
	}
	if out.code == http.StatusOK && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if !s.noETag && w.Header().Get("ETag") == "" {
			sum := sha256.Sum256(out.body.Bytes())
			w.Header().Set("ETag", `W/"`+hex.EncodeToString(sum[:16])+`"`)
		}
		if !s.lastModified.IsZero() {
			w.Header().Set("Last-Modified", s.lastModified.UTC().Format(http.TimeFormat))
		}
		if s.notModified(r, w.Header()) {
			if s.limit != nil && s.limit.style == GitHub {
				// GitHub does not count a 304 against the limit.
				s.mu.Lock()
				s.limit.remaining++
				s.limit.headers(w.Header(), now)
				s.mu.Unlock()
			}
			w.Header().Del("Content-Type")
			w.Header().Del("Content-Length")
			w.WriteHeader(http.StatusNotModified)
			finish(http.StatusNotModified)
			return
		}
	}
	w.WriteHeader(out.code)
	_, _ = w.Write(out.body.Bytes())
	finish(out.code)
}

func (s *Server) notModified(r *http.Request, h http.Header) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		etag := h.Get("ETag")
		for _, v := range strings.Split(inm, ",") {
			if v = strings.TrimSpace(v); etag != "" && (v == etag || v == "*") {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" && !s.lastModified.IsZero() {
		t, err := http.ParseTime(ims)
		return err == nil && !s.lastModified.Truncate(time.Second).After(t)
	}
	return false
}

func (s *Server) pop(path string) (Answer, bool) {
	for _, p := range []string{path, ""} {
		if q := s.scripts[p]; len(q) > 0 {
			s.scripts[p] = q[1:]
			return q[0], true
		}
	}
	return Answer{}, false
}
