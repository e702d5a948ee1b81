package providertest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/apiclient/providertest"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func numbers(n int) func(int) []byte {
	return func(i int) []byte { return []byte(strconv.Itoa(i)) }
}

func TestGitHubPagesAndLinks(t *testing.T) {
	s := providertest.New(t)
	s.List("GET /items", providertest.List{Style: providertest.GitHub, Total: 5, Item: numbers(5)})
	resp, body := get(t, s.URL+"/items?per_page=2&page=2&state=all")
	assert.Equal(t, "[2,3]", body)
	link := resp.Header.Get("Link")
	assert.Contains(t, link, `<`+s.URL+`/items?page=3&per_page=2&state=all>; rel="next"`)
	assert.Contains(t, link, `<`+s.URL+`/items?page=3&per_page=2&state=all>; rel="last"`)
	assert.Contains(t, link, `<`+s.URL+`/items?page=1&per_page=2&state=all>; rel="first"`)
	assert.Contains(t, link, `<`+s.URL+`/items?page=1&per_page=2&state=all>; rel="prev"`)
	resp, body = get(t, s.URL+"/items?per_page=2&page=3")
	assert.Equal(t, "[4]", body)
	assert.NotContains(t, resp.Header.Get("Link"), `rel="next"`)
	_, body = get(t, s.URL+"/items")
	assert.Equal(t, "[0,1,2,3,4]", body, "default page size 30")
}

func TestGitLabPageHeaders(t *testing.T) {
	s := providertest.New(t)
	s.List("GET /api/v4/projects/1/deployments", providertest.List{Style: providertest.GitLab, Total: 45, Item: numbers(45)})
	resp, body := get(t, s.URL+"/api/v4/projects/1/deployments?page=2")
	var got []int
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	assert.Len(t, got, 20, "GitLab's default page size")
	assert.Equal(t, 20, got[0])
	h := resp.Header
	assert.Equal(t, "2", h.Get("X-Page"))
	assert.Equal(t, "20", h.Get("X-Per-Page"))
	assert.Equal(t, "3", h.Get("X-Next-Page"))
	assert.Equal(t, "1", h.Get("X-Prev-Page"))
	assert.Equal(t, "45", h.Get("X-Total"))
	assert.Equal(t, "3", h.Get("X-Total-Pages"))
	assert.Contains(t, h.Get("Link"), `rel="next"`)
	resp, _ = get(t, s.URL+"/api/v4/projects/1/deployments?page=3")
	assert.Equal(t, "", resp.Header.Get("X-Next-Page"))
}

func TestPagerDutyOffsetEnvelope(t *testing.T) {
	s := providertest.New(t)
	s.List("GET /incidents", providertest.List{Style: providertest.PagerDuty, Envelope: "incidents", Total: 3, Item: numbers(3)})
	_, body := get(t, s.URL+"/incidents?limit=2&offset=0&total=true")
	assert.JSONEq(t, `{"incidents":[0,1],"limit":2,"offset":0,"more":true,"total":3}`, body)
	_, body = get(t, s.URL+"/incidents?limit=2&offset=2")
	assert.JSONEq(t, `{"incidents":[2],"limit":2,"offset":2,"more":false,"total":null}`, body)
}

// The GitHub limit: counted down on each answer, a 403 with remaining 0
// once spent, back after the reset; 304s are free.
func TestGitHubRateLimit(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	s := providertest.New(t, providertest.WithClock(c.Now), providertest.WithRateLimit(providertest.GitHub, 2, time.Hour))
	s.JSON("GET /x", []byte(`{"a":1}`))
	resp, _ := get(t, s.URL+"/x")
	assert.Equal(t, "1", resp.Header.Get("X-RateLimit-Remaining"))
	assert.Equal(t, strconv.FormatInt(c.Now().Add(time.Hour).Unix(), 10), resp.Header.Get("X-RateLimit-Reset"))
	assert.Equal(t, c.Now().Format(http.TimeFormat), resp.Header.Get("Date"))
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)
	resp, _ = get(t, s.URL+"/x", "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("X-RateLimit-Remaining"), "a 304 does not count")
	resp, _ = get(t, s.URL+"/x")
	assert.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, body := get(t, s.URL+"/x")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
	assert.Contains(t, body, "API rate limit exceeded")
	c.add(time.Hour)
	resp, _ = get(t, s.URL+"/x")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("X-RateLimit-Remaining"))
	var statuses []int
	for _, r := range s.Log() {
		statuses = append(statuses, r.Status)
	}
	assert.Equal(t, []int{200, 304, 200, 403, 200}, statuses)
}

func TestGitLabRateLimit(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	s := providertest.New(t, providertest.WithClock(c.Now), providertest.WithRateLimit(providertest.GitLab, 1, time.Minute))
	s.JSON("GET /x", []byte(`{}`))
	resp, _ := get(t, s.URL+"/x")
	assert.Equal(t, "0", resp.Header.Get("RateLimit-Remaining"))
	assert.Equal(t, "1", resp.Header.Get("RateLimit-Limit"))
	c.add(15 * time.Second)
	resp, body := get(t, s.URL+"/x")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "45", resp.Header.Get("Retry-After"))
	assert.Equal(t, "Retry later\n", body)
}

func TestScriptsCountsAndHangup(t *testing.T) {
	s := providertest.New(t)
	s.JSON("GET /a", []byte(`{}`))
	s.JSON("GET /b", []byte(`{}`))
	s.Script("/a", providertest.ServerError(502))
	s.Script("", providertest.TooManyRequests("7"))
	assert.Equal(t, 2, s.Pending())
	resp, _ := get(t, s.URL+"/b", "Authorization", "Bearer x")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the any-path script")
	assert.Equal(t, "7", resp.Header.Get("Retry-After"))
	resp, _ = get(t, s.URL+"/a")
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	resp, _ = get(t, s.URL+"/a")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Zero(t, s.Pending())
	s.Script("/a", providertest.Hangup())
	// A fresh connection: net/http itself resends a GET whose reused
	// connection drops.
	_, err := (&http.Client{Transport: &http.Transport{}}).Get(s.URL + "/a")
	assert.Error(t, err)
	assert.Equal(t, 3, s.Count("/a"))
	assert.Equal(t, 4, s.Requests())
	log := s.Log()
	assert.True(t, log[0].Authorized)
	assert.False(t, log[1].Authorized)
	assert.Equal(t, 0, log[3].Status)
}

func TestVary(t *testing.T) {
	item := providertest.Vary([]byte(`{"id":1,"sha":"a","nested":{"k":"v"}}`), func(i int, m map[string]any) {
		m["id"] = 100 + i
		m["sha"] = fmt.Sprint("s", i)
	})
	assert.JSONEq(t, `{"id":102,"sha":"s2","nested":{"k":"v"}}`, string(item(2)))
	assert.JSONEq(t, `{"id":100,"sha":"s0","nested":{"k":"v"}}`, string(item(0)))
}

func TestWrappedPages(t *testing.T) {
	s := providertest.New(t)
	s.List("GET /repos/o/r/compare/{basehead}", providertest.List{Style: providertest.GitHub, Total: 3, Item: numbers(3),
		Wrap: func(page []byte, total int) []byte {
			return []byte(fmt.Sprintf(`{"total_commits":%d,"commits":%s}`, total, page))
		}})
	resp, body := get(t, s.URL+"/repos/o/r/compare/a...b?per_page=2")
	assert.JSONEq(t, `{"total_commits":3,"commits":[0,1]}`, body)
	assert.Contains(t, resp.Header.Get("Link"), `page=2&per_page=2>; rel="next"`)
}
