// Package historytest is a local stand-in for the systems the history
// import reads, for tests: PagerDuty's REST API v2 (GET /incidents, its
// answers shaped like PagerDuty's own example,
// internal/pagerduty/testdata/api-incidents-list.json) and an in-house
// platform's history endpoint in the generic form (GET /history). It
// serves on 127.0.0.1 and can be slowed down to interrupt an import. Its
// error answers are PagerDuty's documented error object
// (internal/pagerduty/testdata/api-error.json).
package historytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/generic"
)

// Incident is one PagerDuty incident served.
type Incident struct {
	ID        string
	ServiceID string
	Service   string
	Created   time.Time
	// Resolved is zero for an incident still open.
	Resolved time.Time
}

// Server serves the incidents and the deployments.
type Server struct {
	URL string
	// Token is the token both APIs require.
	Token string

	srv         *httptest.Server
	example     map[string]any
	errBody     []byte
	incidents   []Incident
	events      []generic.Payload
	pageSize    int
	delay       atomic.Int64
	requests    atomic.Int64
	mu          sync.Mutex
	lastQueries []string
}

// New starts a server with the given history; the generic endpoint
// answers pageSize events a page.
func New(token string, incidents []Incident, events []generic.Payload, pageSize int) (*Server, error) {
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "pagerduty", "testdata", "api-incidents-list.json"))
	if err != nil {
		return nil, err
	}
	var page map[string]any
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, err
	}
	errBody, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "pagerduty", "testdata", "api-error.json"))
	if err != nil {
		return nil, err
	}
	s := &Server{Token: token, example: page["incidents"].([]any)[0].(map[string]any), errBody: errBody, incidents: incidents, events: events, pageSize: pageSize}
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetDelay slows every answer down by d.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Requests is how many requests were answered.
func (s *Server) Requests() int64 { return s.requests.Load() }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	s.lastQueries = append(s.lastQueries, r.URL.String())
	s.mu.Unlock()
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	q := r.URL.Query()
	since, err1 := time.Parse(time.RFC3339, q.Get("since"))
	until, err2 := time.Parse(time.RFC3339, q.Get("until"))
	if err1 != nil || err2 != nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(s.errBody)
		return
	}
	switch r.URL.Path {
	case "/incidents":
		if r.Header.Get("Authorization") != "Token token="+s.Token {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write(s.errBody)
			return
		}
		s.serveIncidents(w, q, since, until)
	case "/history":
		if r.Header.Get("Authorization") != "Bearer "+s.Token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.serveEvents(w, q.Get("cursor"), since, until)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(s.errBody)
	}
}

func (s *Server) serveIncidents(w http.ResponseWriter, q map[string][]string, since, until time.Time) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	offset, _ := strconv.Atoi(get("offset"))
	limit, _ := strconv.Atoi(get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 25
	}
	var all []map[string]any
	for _, inc := range s.incidents {
		if inc.Created.Before(since) || !inc.Created.Before(until) {
			continue
		}
		m := map[string]any{}
		for k, v := range s.example {
			m[k] = v
		}
		m["id"] = inc.ID
		m["created_at"] = inc.Created.UTC().Format(time.RFC3339)
		svc := map[string]any{}
		for k, v := range s.example["service"].(map[string]any) {
			svc[k] = v
		}
		svc["id"], svc["summary"] = inc.ServiceID, inc.Service
		m["service"] = svc
		if inc.Resolved.IsZero() {
			m["status"], m["resolved_at"] = "triggered", nil
			m["last_status_change_at"] = m["created_at"]
		} else {
			m["status"] = "resolved"
			m["resolved_at"] = inc.Resolved.UTC().Format(time.RFC3339)
			m["last_status_change_at"] = m["resolved_at"]
		}
		all = append(all, m)
	}
	end := min(len(all), offset+limit)
	page := all[min(offset, len(all)):end]
	_ = json.NewEncoder(w).Encode(map[string]any{"incidents": page, "limit": limit, "offset": offset, "more": end < len(all), "total": len(all)})
}

func (s *Server) serveEvents(w http.ResponseWriter, cursor string, since, until time.Time) {
	var in []generic.Payload
	for _, ev := range s.events {
		if !ev.Time.Before(since) && ev.Time.Before(until) {
			in = append(in, ev)
		}
	}
	start, _ := strconv.Atoi(cursor)
	end := min(len(in), start+s.pageSize)
	p := generic.HistoryPage{Events: in[min(start, len(in)):end], Total: len(in)}
	if end < len(in) {
		p.NextCursor = fmt.Sprint(end)
	}
	_ = json.NewEncoder(w).Encode(p)
}

// Month is a month of history before now for one service of namespace
// ns in production: a successful deployment every 12 hours (60), each
// shipping a commit made 3 hours before it (lead time 3 h), and an
// incident every 5th deployment, opened an hour after it and resolved
// two hours later (PagerDuty service PIJ90N7, "My Mail Service").
func Month(now time.Time, ns, service string) ([]generic.Payload, []Incident) {
	var evs []generic.Payload
	var incs []Incident
	from := now.Add(-30 * 24 * time.Hour)
	for i := range 60 {
		at := from.Add(time.Duration(i)*12*time.Hour + 6*time.Hour).UTC().Truncate(time.Second)
		id := fmt.Sprintf("hist-deploy-%02d", i)
		evs = append(evs, generic.Payload{Type: "deployment", ID: id, Time: at, Service: service, Namespace: ns, Environment: "production",
			Status: "success", DeploymentID: id, Revision: fmt.Sprintf("%040x", i+1), CommitTime: at.Add(-3 * time.Hour)})
		if i%5 == 0 {
			incs = append(incs, Incident{ID: fmt.Sprintf("PHIST%02d", i), ServiceID: "PIJ90N7", Service: "My Mail Service",
				Created: at.Add(time.Hour), Resolved: at.Add(3 * time.Hour)})
		}
	}
	return evs, incs
}
