package pagerduty

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

const apiToken = "pd-api-t0ken"

var window = history.Window{From: time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}

// fakeAPI serves GET /incidents like PagerDuty's REST API v2: pages of
// copies of the incident of its documented example
// (testdata/api-incidents-list.json), n incidents created an hour apart
// from the window's start, every other one resolved 30 minutes later,
// with offset/limit pagination, total and more. It checks the token.
type fakeAPI struct {
	t       *testing.T
	example map[string]any
	n       int
	// status, when set, answers every request with it and api-error.json.
	status int

	mu       sync.Mutex
	requests []*http.Request
}

func newFakeAPI(t *testing.T, n int) (*fakeAPI, *httptest.Server) {
	var page map[string]any
	require.NoError(t, json.Unmarshal(fixture(t, "api-incidents-list.json"), &page))
	f := &fakeAPI{t: t, example: page["incidents"].([]any)[0].(map[string]any), n: n}
	srv := httptest.NewServer(f) // 127.0.0.1
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) incident(i int) map[string]any {
	inc := map[string]any{}
	for k, v := range f.example {
		inc[k] = v
	}
	created := window.From.Add(time.Duration(i+1) * time.Hour)
	inc["id"] = fmt.Sprintf("PINC%04d", i)
	inc["created_at"] = created.Format(time.RFC3339)
	if i%2 == 0 {
		inc["status"] = "resolved"
		inc["resolved_at"] = created.Add(30 * time.Minute).Format(time.RFC3339)
		inc["last_status_change_at"] = created.Add(30 * time.Minute).Format(time.RFC3339)
	} else {
		inc["status"] = "acknowledged"
		inc["resolved_at"] = nil
		inc["last_status_change_at"] = created.Add(5 * time.Minute).Format(time.RFC3339)
	}
	return inc
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.status != 0 {
		w.WriteHeader(f.status)
		_, _ = w.Write(fixture(f.t, "api-error.json"))
		return
	}
	if r.URL.Path != "/incidents" || r.Header.Get("Authorization") != "Token token="+apiToken {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(fixture(f.t, "api-error.json"))
		return
	}
	q := r.URL.Query()
	offset, _ := strconv.Atoi(q.Get("offset"))
	limit, _ := strconv.Atoi(q.Get("limit"))
	since, err1 := time.Parse(time.RFC3339, q.Get("since"))
	until, err2 := time.Parse(time.RFC3339, q.Get("until"))
	if limit <= 0 || limit > 100 || err1 != nil || err2 != nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(fixture(f.t, "api-error.json"))
		return
	}
	var all []map[string]any
	for i := range f.n {
		inc := f.incident(i)
		created, _ := time.Parse(time.RFC3339, inc["created_at"].(string))
		if !created.Before(since) && created.Before(until) {
			all = append(all, inc)
		}
	}
	end := min(len(all), offset+limit)
	page := all[min(offset, len(all)):end]
	_ = json.NewEncoder(w).Encode(map[string]any{"incidents": page, "limit": limit, "offset": offset, "more": end < len(all), "total": len(all)})
}

type collect struct {
	batches []history.Batch
	fail    int // fail the batch with this number (1-based) when > 0
}

func (c *collect) Apply(_ context.Context, b history.Batch) error {
	if c.fail == len(c.batches)+1 {
		return fmt.Errorf("storage unavailable")
	}
	c.batches = append(c.batches, b)
	return nil
}

func (c *collect) events() []event.Event {
	var out []event.Event
	for _, b := range c.batches {
		out = append(out, b.Events...)
	}
	return out
}

func importer(srv *httptest.Server, cfg Config) *Importer {
	cfg.History.Endpoint = srv.URL
	return NewImporter(cfg, srv.Client(), apiToken)
}

// TestImporterReadsThePagesOfTheWindow: 250 incidents come in three pages
// of 100 (the API's most), each a batch whose cursor is the next page,
// with the progress; each incident gives its trigger at created_at and,
// when resolved, its resolution at resolved_at, with the live source's
// identities.
func TestImporterReadsThePagesOfTheWindow(t *testing.T) {
	api, srv := newFakeAPI(t, 250)
	cfg := DefaultConfig()
	cfg.Services = map[string]string{"PIJ90N7": "mail"}
	cfg.Namespace = "shop"
	var sink collect
	require.NoError(t, importer(srv, cfg).Import(context.Background(), window, "", &sink))

	require.Len(t, sink.batches, 3)
	assert.Equal(t, []int{100, 200, 250}, []int{sink.batches[0].Done, sink.batches[1].Done, sink.batches[2].Done})
	assert.Equal(t, 250, sink.batches[2].Total)
	evs := sink.events()
	require.Len(t, evs, 250+125)
	svc := event.Service{Namespace: "shop", Name: "mail", Environment: "production"}
	assert.Equal(t, event.Event{Kind: event.IncidentOpened, Source: event.SourcePagerDuty, ID: "history/PINC0000/triggered",
		Time: window.From.Add(time.Hour), Service: svc, IncidentID: "pagerduty/PINC0000"}, evs[0])
	assert.Equal(t, event.Event{Kind: event.IncidentResolved, Source: event.SourcePagerDuty, ID: "history/PINC0000/resolved",
		Time: window.From.Add(90 * time.Minute), Service: svc, IncidentID: "pagerduty/PINC0000"}, evs[1])
	assert.Equal(t, event.IncidentOpened, evs[2].Kind, "an acknowledged incident is open")

	require.Len(t, api.requests, 3)
	q := api.requests[0].URL.Query()
	assert.Equal(t, window.From.Format(time.RFC3339), q.Get("since"))
	assert.Equal(t, window.To.Format(time.RFC3339), q.Get("until"))
	assert.Equal(t, []string{"PIJ90N7"}, q["service_ids[]"])
	assert.Equal(t, "created_at:asc", q.Get("sort_by"))
	assert.Equal(t, "200", api.requests[2].URL.Query().Get("offset"))
}

// TestImporterResumesFromItsCursor: an import stopped after its first
// batch (the sink failed) resumes with the cursor of the last batch
// applied and reads only what is left.
func TestImporterResumesFromItsCursor(t *testing.T) {
	api, srv := newFakeAPI(t, 250)
	first := collect{fail: 2}
	require.Error(t, importer(srv, DefaultConfig()).Import(context.Background(), window, "", &first))
	require.Len(t, first.batches, 1)
	var rest collect
	require.NoError(t, importer(srv, DefaultConfig()).Import(context.Background(), window, first.batches[0].Cursor, &rest))
	require.Len(t, rest.batches, 2)
	assert.Equal(t, "100", api.requests[2].URL.Query().Get("offset"), "the resumed run starts at the page after the one applied")
	assert.Equal(t, 250, rest.batches[1].Done)
	ids := map[string]bool{}
	for _, ev := range append(first.events(), rest.events()...) {
		require.False(t, ids[ev.ID], "%s read twice", ev.ID)
		ids[ev.ID] = true
	}
	assert.Len(t, ids, 375)
}

// TestImporterSettingErrors: 401 and 403 name the token, 404 the
// endpoint, 400 the services; the token is in no error.
func TestImporterSettingErrors(t *testing.T) {
	for status, setting := range map[int]string{
		http.StatusUnauthorized: "webhooks::pagerduty::history::token",
		http.StatusForbidden:    "webhooks::pagerduty::history::token",
		http.StatusNotFound:     "webhooks::pagerduty::history::endpoint",
		http.StatusBadRequest:   "webhooks::pagerduty::services",
	} {
		api, srv := newFakeAPI(t, 10)
		api.status = status
		err := importer(srv, DefaultConfig()).Import(context.Background(), window, "", &collect{})
		var serr *history.SettingError
		require.ErrorAs(t, err, &serr, "%d", status)
		assert.Equal(t, setting, serr.Setting)
		assert.Contains(t, err.Error(), "Not Found", "the API's message is kept")
		assert.NotContains(t, err.Error(), apiToken)
	}
	api, srv := newFakeAPI(t, 10)
	api.status = http.StatusInternalServerError
	err := importer(srv, DefaultConfig()).Import(context.Background(), window, "", &collect{})
	var serr *history.SettingError
	require.Error(t, err)
	assert.NotErrorAs(t, err, &serr, "a failing API is no setting to fix")
}

// TestImporterRequestBudget: the import stops with ErrBudgetSpent after
// request_budget requests, its last batch's cursor saved to go on from.
func TestImporterRequestBudget(t *testing.T) {
	api, srv := newFakeAPI(t, 250)
	cfg := DefaultConfig()
	cfg.History.RequestBudget = 2
	var sink collect
	err := importer(srv, cfg).Import(context.Background(), window, "", &sink)
	require.ErrorIs(t, err, history.ErrBudgetSpent)
	assert.Len(t, api.requests, 2)
	assert.Len(t, sink.batches, 2)
}

// TestImporterIdentitiesAreTheLiveOnes: an incident imported and the same
// incident's webhook delivery have the same incident id and service, so
// the engine counts it once.
func TestImporterIdentitiesAreTheLiveOnes(t *testing.T) {
	cfg := config()
	cfg.Services = map[string]string{"PF9KMXH": "api"}
	res, err := New(cfg).Parse(signed(fixture(t, "triggered.json")))
	require.NoError(t, err)
	live := res.Events[0]
	var d Delivery
	require.NoError(t, json.Unmarshal(fixture(t, "triggered.json"), &d))
	var inc Incident
	require.NoError(t, json.Unmarshal(d.Event.Data, &inc))
	imp := NewImporter(cfg, nil, "").events(apiIncident{ID: inc.ID, Status: "triggered", CreatedAt: live.Time, Service: inc.Service})
	require.Len(t, imp, 1)
	assert.Equal(t, live.IncidentID, imp[0].IncidentID)
	assert.Equal(t, live.Service, imp[0].Service)
	assert.Equal(t, live.Kind, imp[0].Kind)
}
