package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
)

// TestReadyHook: while Ready refuses (a follower), the ready path and every
// source answer 503 with Retry-After and the refusal as JSON, and nothing
// reaches the sink; the health path still answers 200. Once Ready accepts,
// all work as usual.
func TestReadyHook(t *testing.T) {
	var follower atomic.Bool
	follower.Store(true)
	var sunk atomic.Int32
	h := NewHandler(Options{
		Routes: []Route{{Path: "/hook", Provider: &fakeProvider{result: oneEvent}}},
		Sink: func(context.Context, string, []event.Event) (SinkResult, error) {
			sunk.Add(1)
			return SinkResult{Accepted: 1}, nil
		},
		HealthPath: "/health",
		ReadyPath:  "/ready",
		Ready: func() *NotReady {
			if follower.Load() {
				return &NotReady{Error: "this replica is not the leader; retry", Leader: "replica-a", RetryAfter: 1500 * time.Millisecond}
			}
			return nil
		},
	})
	do := func(method, path string) (*httptest.ResponseRecorder, map[string]any) {
		req := httptest.NewRequest(method, path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var m map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
		return rec, m
	}

	for _, path := range []string{"/hook", "/ready"} {
		rec, body := do(http.MethodPost, path)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, path)
		assert.Equal(t, "2", rec.Header().Get("Retry-After"), "%s: seconds, rounded up", path)
		assert.Equal(t, map[string]any{"error": "this replica is not the leader; retry", "leader": "replica-a"}, body, path)
	}
	rec, _ := do(http.MethodGet, "/health")
	assert.Equal(t, http.StatusOK, rec.Code, "a follower is alive")
	rec, _ = do(http.MethodPost, "/nowhere")
	assert.Equal(t, http.StatusNotFound, rec.Code, "unknown paths stay 404")
	assert.Zero(t, sunk.Load(), "nothing reached the sink")

	follower.Store(false)
	rec, body := do(http.MethodGet, "/ready")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "ready", body["status"])
	rec, body = do(http.MethodPost, "/hook")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.EqualValues(t, 1, body["accepted"])
	assert.EqualValues(t, 1, sunk.Load())
}

// TestNotLeaderIsRetryable: a sink that lost the leadership while applying
// answers 503 with Retry-After.
func TestNotLeaderIsRetryable(t *testing.T) {
	rec := serve(t, &fakeProvider{result: oneEvent}, func(context.Context, string, []event.Event) (SinkResult, error) {
		return SinkResult{}, ingest.ErrNotLeader
	}, http.MethodPost, "/hook", "application/json", `{}`)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	assert.Contains(t, rec.Body.String(), "no longer the leader")
}
