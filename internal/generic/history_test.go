package generic

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

type collect struct{ batches []history.Batch }

func (c *collect) Apply(_ context.Context, b history.Batch) error {
	c.batches = append(c.batches, b)
	return nil
}

// TestHistoryImporterFollowsCursors: the importer asks for the window and
// follows next_cursor; the events are those the same payloads give when
// delivered live (same ids), and a saved cursor resumes at its page.
func TestHistoryImporterFollowsCursors(t *testing.T) {
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	w := history.Window{From: from, To: from.Add(30 * 24 * time.Hour)}
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.RawQuery)
		if r.Header.Get("Authorization") != "Bearer tok" {
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		page := 0
		fmt.Sscan(r.URL.Query().Get("cursor"), &page)
		var p HistoryPage
		for i := range 2 {
			n := page*2 + i
			p.Events = append(p.Events, Payload{Type: "deployment", ID: fmt.Sprintf("d%d", n), Time: from.Add(time.Duration(n) * time.Hour),
				Service: "api", Environment: "production", Status: "success", DeploymentID: fmt.Sprintf("d%d", n), Revision: fmt.Sprintf("r%d", n)})
		}
		if page < 2 {
			p.NextCursor = fmt.Sprint(page + 1)
		}
		p.Total = 6
		_ = json.NewEncoder(rw).Encode(p)
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.History.Endpoint = srv.URL + "/history"
	im := NewImporter(cfg, srv.Client(), "tok")
	var sink collect
	require.NoError(t, im.Import(context.Background(), w, "", &sink))
	require.Len(t, sink.batches, 3)
	assert.Equal(t, 6, sink.batches[2].Done)
	assert.Empty(t, sink.batches[2].Cursor)
	ev := sink.batches[1].Events[0]
	assert.Equal(t, event.DeploymentSucceeded, ev.Kind)
	assert.Equal(t, "d2", ev.ID, "the live delivery's id")
	assert.Contains(t, asked[0], "since=2026-10-01T00%3A00%3A00Z")

	var rest collect
	require.NoError(t, im.Import(context.Background(), w, sink.batches[0].Cursor, &rest))
	require.Len(t, rest.batches, 2)
	assert.Equal(t, "d2", rest.batches[0].Events[0].ID)

	bad := NewImporter(cfg, srv.Client(), "wrong")
	var serr *history.SettingError
	require.ErrorAs(t, bad.Import(context.Background(), w, "", &collect{}), &serr)
	assert.Equal(t, "webhooks::generic::history::token", serr.Setting)
}
