package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Events whose times are approximations (Result.Approximate) are counted
// apart, once applied: not when the delivery is refused, not again when it
// is redelivered (its events are duplicates).
func TestApproximatedCountedApart(t *testing.T) {
	two := Result{Approximate: 2, Events: []event.Event{
		{Kind: event.ChangeCommitted, ID: "1", Time: time.Unix(1, 0), Revision: "a"},
		{Kind: event.ChangeCommitted, ID: "2", Time: time.Unix(1, 0), Revision: "b"},
	}}
	duplicates := func(_ context.Context, _ string, events []event.Event) (SinkResult, error) {
		return SinkResult{Duplicates: len(events)}, nil
	}
	refused := func(context.Context, string, []event.Event) (SinkResult, error) {
		return SinkResult{}, ErrPipelineRefused
	}
	for name, tt := range map[string]struct {
		result Result
		sink   Sink
		want   int
	}{
		"applied":             {two, okSink, 2},
		"redelivered":         {two, duplicates, 0},
		"refused":             {two, refused, 0},
		"exact times":         {oneEvent, okSink, 0},
		"more than the count": {Result{Approximate: 5, Events: two.Events}, okSink, 2},
	} {
		t.Run(name, func(t *testing.T) {
			counted := map[string]int{}
			h := NewHandler(Options{
				Routes: []Route{{Path: "/hook", Provider: &fakeProvider{result: tt.result}}},
				Sink:   tt.sink,
				Approximated: func(_ context.Context, source string, n int) {
					counted[source] += n
				},
			})
			req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if tt.want == 0 {
				assert.Empty(t, counted)
				return
			}
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, map[string]int{"fake": tt.want}, counted)
		})
	}
}
