package pagerduty

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// DefaultAPI is PagerDuty's REST API v2.
const DefaultAPI = "https://api.pagerduty.com"

// pageLimit is the page size: the API's maximum.
const pageLimit = 100

// maxOffset is where PagerDuty's classic (offset) pagination stops
// answering; the importer then starts again from the created_at of the
// last incident read (see cursor).
const maxOffset = 10000

// maxPageBytes bounds one page's body: 100 incidents of a few KiB each.
const maxPageBytes = 16 << 20

// Importer reads the incidents of the history window from PagerDuty's
// REST API v2 (GET /incidents) and turns them into the events the webhook
// source makes of the same incidents: the same incident id
// ("pagerduty/<incident id>"), service and environment, so that an
// incident imported and later delivered live counts once.
type Importer struct {
	cfg    Config
	client *http.Client
	base   string
	token  string
	budget int
}

// NewImporter returns the importer of cfg's history block, with client
// (the polite API client of the wiring) and the token (read from
// history::token or history::token_file).
func NewImporter(cfg Config, client *http.Client, token string) *Importer {
	base := strings.TrimRight(cfg.History.Endpoint, "/")
	if base == "" {
		base = DefaultAPI
	}
	return &Importer{cfg: cfg, client: client, base: base, token: token, budget: cfg.History.RequestBudget}
}

// Name is the source's name in logs, telemetry and saved progress.
func (im *Importer) Name() string { return event.SourcePagerDuty }

// Phase runs the import after the sources of deployments: an incident is
// attributed to a deployment the engine already knows (history.Phased).
func (im *Importer) Phase() int { return 1 }

// apiIncident is the part of an incident of GET /incidents the importer
// uses (testdata/api-incidents-list.json is PagerDuty's own example).
type apiIncident struct {
	ID                 string    `json:"id"`
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	CreatedAt          time.Time `json:"created_at"`
	ResolvedAt         time.Time `json:"resolved_at"`
	LastStatusChangeAt time.Time `json:"last_status_change_at"`
	Service            Reference `json:"service"`
}

type apiPage struct {
	Incidents []apiIncident `json:"incidents"`
	Limit     int           `json:"limit"`
	Offset    int           `json:"offset"`
	More      bool          `json:"more"`
	Total     *int          `json:"total"`
}

type apiError struct {
	Error struct {
		Message string   `json:"message"`
		Code    int      `json:"code"`
		Errors  []string `json:"errors"`
	} `json:"error"`
}

// cursor is where the import resumes: the since of the query (the
// window's start, or the created_at of the last incident read once the
// offsets ran out) and the offset of the next page; read is how many
// incidents were read before, for the progress.
type cursor struct {
	Since  time.Time `json:"since"`
	Offset int       `json:"offset"`
	Read   int       `json:"read"`
}

func parseCursor(s string, w history.Window) (cursor, error) {
	if s == "" {
		return cursor{Since: w.From}, nil
	}
	var c cursor
	if err := json.Unmarshal([]byte(s), &c); err != nil || c.Since.IsZero() || c.Offset < 0 {
		return cursor{}, fmt.Errorf("pagerduty: saved history cursor %q is not one this build wrote", s)
	}
	return c, nil
}

func (c cursor) String() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// serviceID matches PagerDuty object ids (PIJ90N7): the services keys that
// are ids go to the API as service_ids[]; names cannot.
var serviceID = regexp.MustCompile(`^P[A-Z0-9]{5,13}$`)

// serviceFilter returns the service ids to ask for, and whether the
// incidents must be filtered here (some mapped services are given by
// name). Without a services mapping every service's incidents count, as
// for the webhook source.
func (im *Importer) serviceFilter() (ids []string, local bool) {
	for k := range im.cfg.Services {
		if !serviceID.MatchString(k) {
			return nil, true
		}
		ids = append(ids, k)
	}
	return ids, false
}

func (im *Importer) mapped(s Reference) bool {
	_, byID := im.cfg.Services[s.ID]
	_, byName := im.cfg.Services[s.Summary]
	return byID || byName
}

// Import reads the window's incidents, created_at ascending, a page at a
// time, and hands each page on as a batch whose cursor is the next page.
func (im *Importer) Import(ctx context.Context, w history.Window, cur string, sink history.Sink) error {
	c, err := parseCursor(cur, w)
	if err != nil {
		return err
	}
	ids, local := im.serviceFilter()
	requests := 0
	var lastCreated time.Time
	for {
		if im.budget > 0 && requests >= im.budget {
			return history.ErrBudgetSpent
		}
		requests++
		page, err := im.fetch(ctx, w, c, ids)
		if err != nil {
			return err
		}
		var evs []event.Event
		for _, inc := range page.Incidents {
			if inc.ID == "" || inc.CreatedAt.IsZero() {
				return fmt.Errorf("pagerduty: GET /incidents: an incident lacks id or created_at")
			}
			if !inc.CreatedAt.Before(lastCreated) {
				lastCreated = inc.CreatedAt
			}
			if local && !im.mapped(inc.Service) {
				continue
			}
			evs = append(evs, im.events(inc)...)
		}
		c.Read += len(page.Incidents)
		next := c
		next.Offset += len(page.Incidents)
		if page.More && next.Offset+pageLimit > maxOffset {
			// Offsets run out: query again from the last created_at read
			// (incidents at that instant are read twice; their ids make
			// the second reading a no-op).
			next = cursor{Since: lastCreated, Offset: 0, Read: c.Read}
		}
		total := 0
		if page.Total != nil {
			total = *page.Total
		}
		if err := sink.Apply(ctx, history.Batch{Events: evs, Cursor: next.String(), Done: c.Read, Total: total}); err != nil {
			return err
		}
		if !page.More || len(page.Incidents) == 0 {
			return nil
		}
		c = next
	}
}

// events are the webhook source's events of one incident: its trigger at
// created_at and, when resolved, its resolution at resolved_at (the
// incident's documented field; last_status_change_at, the time of the
// change to resolved, when it is absent).
func (im *Importer) events(inc apiIncident) []event.Event {
	p := Provider{cfg: im.cfg}
	name := p.serviceName(inc.Service)
	if name == "" {
		name = inc.Service.ID
	}
	if name == "" {
		return nil // no service to count it for
	}
	svc := event.Service{Namespace: im.cfg.Namespace, Name: name, Environment: im.cfg.Environment}
	id := "pagerduty/" + inc.ID
	out := []event.Event{{Kind: event.IncidentOpened, Source: event.SourcePagerDuty, ID: "history/" + inc.ID + "/triggered",
		Time: inc.CreatedAt, Service: svc, IncidentID: id}}
	if inc.Status == "resolved" {
		at := inc.ResolvedAt
		if at.IsZero() {
			at = inc.LastStatusChangeAt
		}
		if !at.IsZero() {
			out = append(out, event.Event{Kind: event.IncidentResolved, Source: event.SourcePagerDuty, ID: "history/" + inc.ID + "/resolved",
				Time: at, Service: svc, IncidentID: id})
		}
	}
	return out
}

func (im *Importer) fetch(ctx context.Context, w history.Window, c cursor, ids []string) (*apiPage, error) {
	q := url.Values{}
	q.Set("since", c.Since.UTC().Format(time.RFC3339))
	q.Set("until", w.To.UTC().Format(time.RFC3339))
	q.Set("limit", strconv.Itoa(pageLimit))
	q.Set("offset", strconv.Itoa(c.Offset))
	q.Set("total", "true")
	q.Set("sort_by", "created_at:asc")
	for _, id := range ids {
		q.Add("service_ids[]", id)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, im.base+"/incidents?"+q.Encode(), nil)
	if err != nil {
		return nil, &history.SettingError{Setting: "webhooks::pagerduty::history::endpoint", Err: err}
	}
	req.Header.Set("Accept", "application/vnd.pagerduty+json;version=2")
	req.Header.Set("Authorization", "Token token="+im.token)
	resp, err := im.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pagerduty: GET /incidents: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pagerduty: GET /incidents: reading the answer: %w", err)
	}
	if len(body) > maxPageBytes {
		return nil, fmt.Errorf("pagerduty: GET /incidents: the answer is larger than %d bytes", maxPageBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp.StatusCode, body)
	}
	var page apiPage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("pagerduty: GET /incidents: %w", err)
	}
	if len(page.Incidents) > pageLimit {
		return nil, fmt.Errorf("pagerduty: GET /incidents: %d incidents in a page of %d", len(page.Incidents), pageLimit)
	}
	return &page, nil
}

// statusError names the setting to fix for the answers a setting causes;
// the others are the system failing (the polite client has retried them).
func statusError(status int, body []byte) error {
	var e apiError
	msg := http.StatusText(status)
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
		if len(e.Error.Errors) > 0 {
			msg += ": " + strings.Join(e.Error.Errors, "; ")
		}
	}
	err := fmt.Errorf("pagerduty: GET /incidents: %d %s", status, msg)
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		// 403: the key may not read incidents (a read-only key can).
		return &history.SettingError{Setting: "webhooks::pagerduty::history::token", Err: err}
	case http.StatusNotFound:
		return &history.SettingError{Setting: "webhooks::pagerduty::history::endpoint", Err: err}
	case http.StatusBadRequest:
		// A service id PagerDuty does not know is refused here.
		return &history.SettingError{Setting: "webhooks::pagerduty::services", Err: err}
	}
	return err
}

var _ history.Source = (*Importer)(nil)
