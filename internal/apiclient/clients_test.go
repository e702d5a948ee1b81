package apiclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v93/github"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go/v2"
	"golang.org/x/time/rate"

	"github.com/otelcol-dora/dorareceiver/internal/apiclient"
	"github.com/otelcol-dora/dorareceiver/internal/apiclient/providertest"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// fakeClock is the clock of both the transport and the fake server: a
// wait moves it on at once and is recorded.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newClock() *fakeClock {
	// Whole seconds: Date and reset headers have no fraction.
	return &fakeClock{now: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waits = append(c.waits, d)
	return nil
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// events collects the transport's telemetry.
type events struct {
	mu  sync.Mutex
	all []apiclient.Event
}

func (e *events) observe(ev apiclient.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		s := ev.Kind.String()
		if ev.Reason != "" {
			s += ":" + ev.Reason
		}
		if ev.Kind == apiclient.EventRequest {
			s += fmt.Sprintf(":%d", ev.Status)
		}
		out = append(out, s)
	}
	return out
}

func options(c *fakeClock, ev *events) apiclient.Options {
	o := apiclient.Options{Name: "test", Now: c.Now, Sleep: c.Sleep, MinBackoff: 4 * time.Second,
		Jitter: func() float64 { return 0.5 }}
	if ev != nil {
		o.Observe = ev.observe
	}
	return o
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return b
}

// githubDeployments is n deployments made from GitHub's published
// example, each with its own id and SHA.
func githubDeployments(t *testing.T, n int) providertest.List {
	tmpl := readFixture(t, "github_deployment.json")
	return providertest.List{Style: providertest.GitHub, Total: n, Item: providertest.Vary(tmpl, func(i int, m map[string]any) {
		m["id"] = 1000 + i
		m["sha"] = fmt.Sprintf("%040x", 0xa84d88e7+i)
	})}
}

const ghPath = "/repos/octocat/example/deployments"

func newGitHub(t *testing.T, srv *providertest.Server, hc *http.Client) *github.Client {
	t.Helper()
	base := srv.URL + "/"
	gh, err := github.NewClient(github.WithHTTPClient(hc), github.WithURLs(&base, &base),
		github.WithAuthToken("ghp_TESTSECRETTOKEN"), github.WithDisableRateLimitCheck())
	require.NoError(t, err)
	return gh
}

func listGitHub(ctx context.Context, gh *github.Client, perPage int) ([]int64, []string, error) {
	var ids []int64
	var shas []string
	opts := &github.DeploymentsListOptions{ListOptions: github.ListOptions{PerPage: perPage}}
	for {
		ds, resp, err := gh.Repositories.ListDeployments(ctx, "octocat", "example", opts)
		if err != nil {
			return ids, shas, err
		}
		for _, d := range ds {
			ids = append(ids, d.GetID())
			shas = append(shas, d.GetSHA())
		}
		if resp.NextPage == 0 {
			return ids, shas, nil
		}
		opts.Page = resp.NextPage
	}
}

// go-github lists GitHub deployments across pages while the server
// answers a secondary limit with Retry-After, a 502, a primary limit
// refusal and a spent primary limit announced on a 200; listed again, the
// pages come back as 304s served from the cache.
func TestGitHubDeploymentsThroughLimitsRetriesAndNotModified(t *testing.T) {
	clock := newClock()
	start := clock.Now()
	srv := providertest.New(t, providertest.WithClock(clock.Now), providertest.WithRateLimit(providertest.GitHub, 3, time.Hour))
	srv.List("GET "+ghPath, githubDeployments(t, 5))
	srv.Script(ghPath,
		providertest.GitHubSecondaryLimit(30*time.Second),
		providertest.ServerError(http.StatusBadGateway),
	)
	ev := &events{}
	o := options(clock, ev)
	o.MaxWait = 2 * time.Hour
	tr := apiclient.NewTransport(o)
	gh := newGitHub(t, srv, &http.Client{Transport: tr})

	// Page 2's first ask is refused by the primary limit (reset in 60s).
	ctx := context.Background()
	ids, shas, err := listGitHubScripted(ctx, gh, srv)
	require.NoError(t, err)
	want := []int64{1000, 1001, 1002, 1003, 1004}
	assert.Equal(t, want, ids)
	assert.Equal(t, fmt.Sprintf("%040x", 0xa84d88e7), shas[0], "the body of GitHub's example is decoded")

	waits := clock.Waits()
	require.Len(t, waits, 3, "%v", waits)
	assert.Equal(t, 30*time.Second, waits[0], "secondary limit: Retry-After")
	assert.Equal(t, 3*time.Second, waits[1], "502: first backoff step (4s) with the jitter in its upper half")
	assert.Equal(t, 61*time.Second, waits[2], "primary limit refusal: until X-RateLimit-Reset (+1s)")
	// secondary, 502, page 1, primary refusal, page 2, page 3.
	assert.Equal(t, 6, srv.Count(ghPath))
	assert.Zero(t, srv.Pending())

	// The server's limit is 3 an hour, from page 1 (at 33s): pages 1-3
	// spent it, page 3's answer said so, and listing again first waits
	// for the reset (3633s, +1s) instead of being refused.
	ids, _, err = listGitHub(ctx, gh, 2)
	require.NoError(t, err)
	assert.Equal(t, want, ids, "304s are served from the cache with their Link headers")
	waits = clock.Waits()
	require.Len(t, waits, 4, "%v", waits)
	assert.Equal(t, 3540*time.Second, waits[3])
	assert.Equal(t, start.Add(time.Hour+34*time.Second), clock.Now(), "waited for the reset of the spent limit before the next request")
	for _, r := range srv.Log()[6:] {
		assert.True(t, r.Conditional, "second listing sends validators: %+v", r)
		assert.Equal(t, http.StatusNotModified, r.Status, "%+v", r)
		assert.True(t, r.Authorized)
	}
	assert.Equal(t, 9, srv.Count(ghPath))
	st := tr.Stats()
	assert.Equal(t, int64(9), st.Requests)
	assert.Equal(t, int64(3), st.NotModified)
	assert.Equal(t, int64(3), st.Retries, "secondary, 502 and primary refusal resent")
	assert.Equal(t, int64(3), st.RateLimitWaits)
	assert.Contains(t, ev.kinds(), "not_modified")
	assert.Contains(t, ev.kinds(), "retry:secondary_limit")
	assert.Contains(t, ev.kinds(), "retry:server_error")
	assert.Contains(t, ev.kinds(), "retry:primary_limit")
}

// listGitHubScripted lists with per_page 2 and scripts a primary-limit
// refusal for the first ask of page 2.
func listGitHubScripted(ctx context.Context, gh *github.Client, srv *providertest.Server) ([]int64, []string, error) {
	var ids []int64
	var shas []string
	opts := &github.DeploymentsListOptions{ListOptions: github.ListOptions{PerPage: 2}}
	for {
		if opts.Page == 2 {
			srv.Script(ghPath, providertest.GitHubPrimaryLimit(60*time.Second))
		}
		ds, resp, err := gh.Repositories.ListDeployments(ctx, "octocat", "example", opts)
		if err != nil {
			return ids, shas, err
		}
		for _, d := range ds {
			ids = append(ids, d.GetID())
			shas = append(shas, d.GetSHA())
		}
		if resp.NextPage == 0 {
			return ids, shas, nil
		}
		opts.Page = resp.NextPage
	}
}

// GitLab's client-go lists deployments while the server throttles with
// 429 + Retry-After and announces a spent RateLimit-Remaining.
func TestGitLabDeploymentsRateLimitHeadersAnd429(t *testing.T) {
	clock := newClock()
	start := clock.Now()
	srv := providertest.New(t, providertest.WithClock(clock.Now), providertest.WithRateLimit(providertest.GitLab, 2, time.Minute))
	var example []map[string]any
	require.NoError(t, json.Unmarshal(readFixture(t, "gitlab_deployments.json"), &example))
	tmpl, err := json.Marshal(example[0])
	require.NoError(t, err)
	const path = "/api/v4/projects/1/deployments"
	srv.List("GET "+path, providertest.List{Style: providertest.GitLab, Total: 5, Item: providertest.Vary(tmpl, func(i int, m map[string]any) {
		m["id"] = 41 + i
		m["iid"] = 1 + i
	})})
	srv.Script(path, providertest.GitLabTooMany(20*time.Second))

	tr := apiclient.NewTransport(options(clock, nil))
	// client-go's own retries and wall-clock limiter off: the transport
	// is the one policy (and this test would not see its absence).
	gl, err := gitlab.NewClient("glpat-TESTSECRET", gitlab.WithBaseURL(srv.URL+"/api/v4"),
		gitlab.WithHTTPClient(&http.Client{Transport: tr}), gitlab.WithoutRetries(),
		gitlab.WithCustomLimiter(rate.NewLimiter(rate.Inf, 0)))
	require.NoError(t, err)

	var ids []int64
	var shas []string
	opts := &gitlab.ListProjectDeploymentsOptions{ListOptions: gitlab.ListOptions{PerPage: 2}}
	for {
		ds, resp, err := gl.Deployments.ListProjectDeployments(1, opts)
		require.NoError(t, err)
		for _, d := range ds {
			ids = append(ids, d.ID)
			shas = append(shas, d.SHA)
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	assert.Equal(t, []int64{41, 42, 43, 44, 45}, ids)
	assert.Equal(t, "99d03678b90d914dbb1b109132516d71a4a03ea8", shas[0], "client-go's example body decoded")

	waits := clock.Waits()
	require.Len(t, waits, 2, "%v", waits)
	assert.Equal(t, 21*time.Second, waits[0], "429: Retry-After 20s, RateLimit-Reset in 20s (+1s)")
	// Pages 1 and 2 spent the limit of 2 a minute (window from 21s):
	// page 3 waits for RateLimit-Reset (81s, +1s) instead of being refused.
	assert.Equal(t, 61*time.Second, waits[1])
	assert.Equal(t, start.Add(82*time.Second), clock.Now())
	var statuses []int
	for _, r := range srv.Log() {
		statuses = append(statuses, r.Status)
	}
	assert.Equal(t, []int{429, 200, 200, 200}, statuses)
}

// A plain net/http call (PagerDuty's REST API) through 429s with
// Retry-After in seconds and as an HTTP date.
func TestPagerDutyTooManyRequests(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	var example struct {
		Incidents []json.RawMessage `json:"incidents"`
	}
	require.NoError(t, json.Unmarshal(readFixture(t, "pagerduty_incidents.json"), &example))
	srv.List("GET /incidents", providertest.List{Style: providertest.PagerDuty, Envelope: "incidents", Total: 1,
		Item: providertest.Items([][]byte(toBytes(example.Incidents)))})
	srv.Script("/incidents",
		providertest.TooManyRequests("5"),
		providertest.TooManyRequests(clock.Now().Add(2*time.Minute).Format(http.TimeFormat)),
	)
	hc := apiclient.New(options(clock, nil))
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/incidents?limit=25&service_ids[]=PIJ90N7", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Token token=TESTSECRET")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var page struct {
		Incidents []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"incidents"`
		More bool `json:"more"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
	require.Len(t, page.Incidents, 1)
	assert.Equal(t, "PT4KHLK", page.Incidents[0].ID)
	assert.Equal(t, "resolved", page.Incidents[0].Status)
	assert.False(t, page.More)
	// 5s, then the date two minutes after the start, 5s later: 115s.
	assert.Equal(t, []time.Duration{5 * time.Second, 115 * time.Second}, clock.Waits())
	assert.Equal(t, 3, srv.Requests())
}

func toBytes(raw []json.RawMessage) [][]byte {
	out := make([][]byte, len(raw))
	for i, r := range raw {
		out[i] = r
	}
	return out
}

// The budget stops the import at exactly N requests, retries included:
// the N+1th fails with history.ErrBudgetSpent and reaches no server.
func TestBudgetStopsExactlyAtN(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	srv.List("GET "+ghPath, githubDeployments(t, 10))
	srv.Script(ghPath, providertest.ServerError(http.StatusServiceUnavailable))
	o := options(clock, nil)
	o.RequestBudget = 4
	tr := apiclient.NewTransport(o)
	gh := newGitHub(t, srv, &http.Client{Transport: tr})

	ids, _, err := listGitHub(context.Background(), gh, 2)
	require.Error(t, err)
	assert.ErrorIs(t, err, history.ErrBudgetSpent)
	// 503, then pages 1, 2 and 3: four requests, six deployments.
	assert.Equal(t, 4, srv.Requests())
	assert.Len(t, ids, 6)
	_, _, err = gh.Repositories.ListDeployments(context.Background(), "octocat", "example", nil)
	assert.ErrorIs(t, err, history.ErrBudgetSpent)
	assert.Equal(t, 4, srv.Requests(), "nothing more is sent once the budget is spent")
	assert.Equal(t, int64(2), tr.Stats().BudgetRefused)
}

// Canceling the context ends a rate-limit wait at once (a real sleep of
// half an hour here).
func TestCancelEndsRateLimitWait(t *testing.T) {
	srv := providertest.New(t)
	srv.List("GET "+ghPath, githubDeployments(t, 1))
	srv.Script(ghPath, providertest.GitHubPrimaryLimit(30*time.Minute))
	hc := apiclient.New(apiclient.Options{MaxWait: time.Hour})
	gh := newGitHub(t, srv, hc)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, _, err := gh.Repositories.ListDeployments(ctx, "octocat", "example", nil)
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not end with the context")
	}
	assert.Equal(t, 1, srv.Requests())
}

// A reset further than MaxWait fails at once with a RateLimitError that
// says until when; the next request is not sent either.
func TestResetBeyondMaxWaitFails(t *testing.T) {
	clock := newClock()
	srv := providertest.New(t, providertest.WithClock(clock.Now))
	srv.List("GET "+ghPath, githubDeployments(t, 1))
	srv.Script(ghPath, providertest.GitHubPrimaryLimit(2*time.Hour))
	o := options(clock, nil)
	o.MaxWait = 15 * time.Minute
	gh := newGitHub(t, srv, apiclient.New(o))

	_, _, err := gh.Repositories.ListDeployments(context.Background(), "octocat", "example", nil)
	var rle *apiclient.RateLimitError
	require.ErrorAs(t, err, &rle)
	assert.Equal(t, clock.Now().Add(2*time.Hour+time.Second), rle.Until)
	assert.Contains(t, err.Error(), "2026-11-02T11:00:01Z")
	assert.Contains(t, err.Error(), "longer than the longest wait 15m0s")
	assert.Empty(t, clock.Waits(), "no wait at all")

	_, _, err = gh.Repositories.ListDeployments(context.Background(), "octocat", "example", nil)
	require.ErrorAs(t, err, &rle)
	assert.Equal(t, 1, srv.Requests(), "a known reset beyond MaxWait holds later requests too")

	// A secondary limit asking for longer than MaxWait: given up at once,
	// not counted as a retry.
	tr := apiclient.NewTransport(o)
	srv.Script(ghPath, providertest.GitHubSecondaryLimit(time.Hour))
	_, _, err = newGitHub(t, srv, &http.Client{Transport: tr}).Repositories.ListDeployments(context.Background(), "octocat", "example", nil)
	require.ErrorAs(t, err, &rle)
	assert.Equal(t, "secondary_limit", rle.Reason)
	assert.Equal(t, time.Hour, rle.Wait)
	assert.Zero(t, tr.Stats().Retries)
	assert.Equal(t, 2, srv.Requests())
	assert.Empty(t, clock.Waits())
}
