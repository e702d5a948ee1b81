package generic

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// maxHistoryPage bounds one page of the history endpoint's answer.
const maxHistoryPage = 16 << 20

// maxHistoryEvents bounds the events of one page.
const maxHistoryEvents = 5000

// HistoryPage is the answer of an in-house platform's history endpoint
// (webhooks::generic::history::endpoint, docs/history.md): the events of
// the window in the generic form, oldest first, a page at a time. The
// importer asks GET <endpoint>?since=<RFC 3339>&until=<RFC 3339> and then
// &cursor=<next_cursor> until next_cursor is empty.
type HistoryPage struct {
	Events []Payload `json:"events"`
	// NextCursor asks for the next page; empty: the window is read.
	NextCursor string `json:"next_cursor,omitempty"`
	// Total is how many events the window holds, when known (progress).
	Total int `json:"total,omitempty"`
}

// Importer reads the history of an in-house platform from its history
// endpoint: the same events, with the same ids, as its live deliveries.
type Importer struct {
	client   *http.Client
	endpoint string
	token    string
	budget   int
}

// NewImporter returns the importer of cfg's history block (its endpoint
// is required), with client and the token (empty: none sent).
func NewImporter(cfg Config, client *http.Client, token string) *Importer {
	return &Importer{client: client, endpoint: cfg.History.Endpoint, token: token, budget: cfg.History.RequestBudget}
}

// Name is the source's name.
func (im *Importer) Name() string { return event.SourceGeneric }

// Import reads the window's pages; the cursor is the endpoint's own.
func (im *Importer) Import(ctx context.Context, w history.Window, cursor string, sink history.Sink) error {
	done, requests := 0, 0
	if cursor != "" {
		var c struct {
			Next string `json:"next"`
			Done int    `json:"done"`
		}
		if err := json.Unmarshal([]byte(cursor), &c); err != nil || c.Next == "" {
			return fmt.Errorf("generic: saved history cursor %q is not one this build wrote", cursor)
		}
		cursor, done = c.Next, c.Done
	}
	for {
		if im.budget > 0 && requests >= im.budget {
			return history.ErrBudgetSpent
		}
		requests++
		page, err := im.fetch(ctx, w, cursor)
		if err != nil {
			return err
		}
		evs := make([]event.Event, 0, len(page.Events))
		for i := range page.Events {
			ev, err := page.Events[i].toEvent()
			if err != nil {
				return fmt.Errorf("generic: history endpoint: event %d: %w", i, err)
			}
			evs = append(evs, ev)
		}
		done += len(evs)
		next := ""
		if page.NextCursor != "" {
			b, _ := json.Marshal(map[string]any{"next": page.NextCursor, "done": done})
			next = string(b)
		}
		if err := sink.Apply(ctx, history.Batch{Events: evs, Cursor: next, Done: done, Total: page.Total}); err != nil {
			return err
		}
		if page.NextCursor == "" {
			return nil
		}
		cursor = page.NextCursor
	}
}

func (im *Importer) fetch(ctx context.Context, w history.Window, cursor string) (*HistoryPage, error) {
	const setting = "webhooks::generic::history::"
	u, err := url.Parse(im.endpoint)
	if err != nil {
		return nil, &history.SettingError{Setting: setting + "endpoint", Err: err}
	}
	q := u.Query()
	q.Set("since", w.From.UTC().Format(time.RFC3339))
	q.Set("until", w.To.UTC().Format(time.RFC3339))
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &history.SettingError{Setting: setting + "endpoint", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	if im.token != "" {
		req.Header.Set("Authorization", "Bearer "+im.token)
	}
	resp, err := im.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("generic: history endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHistoryPage+1))
	if err != nil {
		return nil, fmt.Errorf("generic: history endpoint: %w", err)
	}
	if len(body) > maxHistoryPage {
		return nil, fmt.Errorf("generic: history endpoint: a page is larger than %d bytes", maxHistoryPage)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, &history.SettingError{Setting: setting + "token", Err: fmt.Errorf("%s", resp.Status)}
	case resp.StatusCode == http.StatusNotFound:
		return nil, &history.SettingError{Setting: setting + "endpoint", Err: fmt.Errorf("%s", resp.Status)}
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("generic: history endpoint: %s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	var page HistoryPage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("generic: history endpoint: %w", err)
	}
	if len(page.Events) > maxHistoryEvents {
		return nil, fmt.Errorf("generic: history endpoint: %d events in a page, at most %d", len(page.Events), maxHistoryEvents)
	}
	return &page, nil
}

var _ history.Source = (*Importer)(nil)
