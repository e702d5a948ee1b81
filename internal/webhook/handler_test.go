package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
)

// fakeProvider answers what it is told to.
type fakeProvider struct {
	result Result
	err    error
}

func (f *fakeProvider) Name() string           { return "fake" }
func (f *fakeProvider) ContentTypes() []string { return nil }
func (f *fakeProvider) Parse(*Request) (Result, error) {
	return f.result, f.err
}

// otlpLike writes its own success and error bodies.
type otlpLike struct{ fakeProvider }

func (o *otlpLike) WriteSuccess(w http.ResponseWriter, _ *Request, accepted int) {
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("own-success"))
}

func (o *otlpLike) WriteError(w http.ResponseWriter, _ http.Header, status int, message string) {
	w.WriteHeader(status)
	_, _ = w.Write([]byte("own-error: " + message))
}

var oneEvent = Result{Events: []event.Event{{Kind: event.ChangeCommitted, ID: "1", Time: time.Unix(1, 0), Revision: "abc"}}}

func serve(t *testing.T, p Provider, sink Sink, method, path, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	h := NewHandler(Options{
		Routes:     []Route{{Path: "/hook", Provider: p}},
		Sink:       sink,
		HealthPath: "/health",
	})
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func okSink(_ context.Context, _ string, events []event.Event) (SinkResult, error) {
	return SinkResult{Accepted: len(events)}, nil
}

func TestHandlerStatuses(t *testing.T) {
	refused := func(context.Context, string, []event.Event) (SinkResult, error) {
		return SinkResult{}, ErrPipelineRefused
	}
	invalid := func(context.Context, string, []event.Event) (SinkResult, error) {
		return SinkResult{}, errors.Join(ErrInvalidEvent, errors.New("event 0: without a service name"))
	}
	canceled := func(context.Context, string, []event.Event) (SinkResult, error) {
		return SinkResult{}, context.Canceled
	}
	storageDown := func(context.Context, string, []event.Event) (SinkResult, error) {
		return SinkResult{}, fmt.Errorf("%w: disk full", ingest.ErrStorageUnavailable)
	}
	tests := []struct {
		name     string
		provider Provider
		sink     Sink
		method   string
		path     string
		ctype    string
		status   int
		contains string
	}{
		{"accepted", &fakeProvider{result: oneEvent}, okSink, http.MethodPost, "/hook", "application/json", 200, `"accepted":1`},
		{"ignored", &fakeProvider{result: Result{Ignored: "ping"}}, okSink, http.MethodPost, "/hook", "application/json", 200, `"ignored":"ping"`},
		{"no events means ignored", &fakeProvider{}, okSink, http.MethodPost, "/hook", "application/json", 200, `"status":"ignored"`},
		{"unauthorized", &fakeProvider{err: Unauthorized("bad signature")}, okSink, http.MethodPost, "/hook", "application/json", 401, "bad signature"},
		{"bad request", &fakeProvider{err: BadRequest("field %q missing", "x")}, okSink, http.MethodPost, "/hook", "application/json", 400, `field \"x\" missing`},
		{"plain error is 400", &fakeProvider{err: errors.New("boom")}, okSink, http.MethodPost, "/hook", "application/json", 400, "boom"},
		{"pipeline refused", &fakeProvider{result: oneEvent}, refused, http.MethodPost, "/hook", "application/json", 503, "retry"},
		{"storage unavailable", &fakeProvider{result: oneEvent}, storageDown, http.MethodPost, "/hook", "application/json", 503, "storage is unavailable: disk full; retry later"},
		{"invalid event", &fakeProvider{result: oneEvent}, invalid, http.MethodPost, "/hook", "application/json", 400, "without a service name"},
		{"request ended", &fakeProvider{result: oneEvent}, canceled, http.MethodPost, "/hook", "application/json", 503, "retry"},
		{"wrong method", &fakeProvider{result: oneEvent}, okSink, http.MethodPut, "/hook", "application/json", 405, "not allowed"},
		{"wrong type", &fakeProvider{result: oneEvent}, okSink, http.MethodPost, "/hook", "text/plain", 415, "content type"},
		{"unparsable type", &fakeProvider{result: oneEvent}, okSink, http.MethodPost, "/hook", ";;", 415, "content type"},
		{"unknown path", &fakeProvider{result: oneEvent}, okSink, http.MethodPost, "/other", "application/json", 404, "/other"},
		{"health", &fakeProvider{}, okSink, http.MethodGet, "/health", "", 200, `"status":"ok"`},
		{"own success body", &otlpLike{fakeProvider{result: oneEvent}}, okSink, http.MethodPost, "/hook", "application/json", 200, "own-success"},
		{"own error body", &otlpLike{fakeProvider{err: BadRequest("bad proto")}}, okSink, http.MethodPost, "/hook", "application/json", 400, "own-error: bad proto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, tt.provider, tt.sink, tt.method, tt.path, tt.ctype, "{}")
			assert.Equal(t, tt.status, rec.Code)
			assert.Contains(t, rec.Body.String(), tt.contains)
			if _, own := tt.provider.(*otlpLike); !own {
				var v map[string]any
				assert.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), "JSON body: %s", rec.Body)
			}
		})
	}
}

// hinted is a source whose senders have a content type setting.
type hinted struct{ fakeProvider }

func (h *hinted) ContentTypes() []string {
	return []string{"application/json", "application/cdevents+json"}
}
func (h *hinted) ContentTypeHint() string { return "change the sender's setting" }

// TestUnsupportedMediaTypeSaysWhatToSend: the 415 answer is what the
// sender's delivery log shows, so it names the types the source reads and,
// where the provider knows one, the setting to change.
func TestUnsupportedMediaTypeSaysWhatToSend(t *testing.T) {
	tests := []struct {
		name     string
		provider Provider
		ctype    string
		want     string
	}{
		{"default types", &fakeProvider{result: oneEvent}, "application/x-www-form-urlencoded",
			`content type "application/x-www-form-urlencoded" is not accepted by the fake source: send application/json`},
		{"no header", &fakeProvider{result: oneEvent}, "",
			`a request without Content-Type is not accepted by the fake source: send application/json`},
		{"several types and a hint", &hinted{fakeProvider{result: oneEvent}}, "text/plain",
			`content type "text/plain" is not accepted by the fake source: send application/json or application/cdevents+json; change the sender's setting`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, tt.provider, okSink, http.MethodPost, "/hook", tt.ctype, "{}")
			assert.Equal(t, http.StatusUnsupportedMediaType, rec.Code)
			var body struct{ Error string }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
			assert.Equal(t, tt.want, body.Error)
		})
	}
}

func TestHandlerRefusesLargeBodiesBeforeReading(t *testing.T) {
	h := NewHandler(Options{Routes: []Route{{Path: "/hook", Provider: &fakeProvider{result: oneEvent}}}, Sink: okSink, MaxBodySize: 10})
	req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(strings.Repeat("x", 11)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
}

func TestDecodeJSONDepthAndErrors(t *testing.T) {
	var v any
	deep := strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1)
	err := DecodeJSON([]byte(deep), &v)
	var herr *Error
	require.ErrorAs(t, err, &herr)
	assert.Contains(t, herr.Message, "nested deeper")
	// Brackets inside strings do not count.
	require.NoError(t, DecodeJSON([]byte(`{"a":"`+strings.Repeat("[", 100)+`"}`), &v))
	require.NoError(t, DecodeJSON([]byte(strings.Repeat("[", jsonscan.MaxDepth)+strings.Repeat("]", jsonscan.MaxDepth)), &v))

	var typed struct {
		N int `json:"n"`
	}
	require.ErrorAs(t, DecodeJSON([]byte(`{"n":"x"}`), &typed), &herr)
	assert.Contains(t, herr.Message, `field "n"`)
}

func TestTokensAndSignatures(t *testing.T) {
	assert.True(t, EqualToken("abc", "abc"))
	assert.False(t, EqualToken("abc", "abd"))
	assert.False(t, EqualToken("abc", ""))
	assert.Equal(t, "tok", BearerToken("Bearer tok"))
	assert.Equal(t, "tok", BearerToken("bearer  tok"))
	assert.Empty(t, BearerToken("Basic dXNlcjpwYXNz"))
	sig := SignHMACSHA256("k", []byte("body"))
	assert.True(t, ValidHMACSHA256("k", []byte("body"), sig))
	assert.False(t, ValidHMACSHA256("k", []byte("body!"), sig))
	assert.False(t, ValidHMACSHA256("k", []byte("body"), "nothex"))
	assert.Error(t, (&SecretConfig{}).Check())
	assert.NoError(t, (&SecretConfig{InsecureSkipVerify: true}).Check())
}

// bodyProvider records the body it was given.
type bodyProvider struct {
	fakeProvider
	got []byte
}

func (b *bodyProvider) Parse(req *Request) (Result, error) {
	b.got = append(b.got[:0], req.Body...)
	return b.result, nil
}

// TestHandlerReadsBodiesWithinTheLimit: bodies of unknown length (chunked)
// are read whole up to the limit and refused past it, whether the limit is
// the handler's or the server's (confighttp wraps the body in an
// http.MaxBytesReader), and a pooled buffer never leaks one delivery's
// bytes into the next.
func TestHandlerReadsBodiesWithinTheLimit(t *testing.T) {
	p := &bodyProvider{fakeProvider: fakeProvider{result: oneEvent}}
	h := NewHandler(Options{Routes: []Route{{Path: "/hook", Provider: p}}, Sink: okSink, MaxBodySize: 3000})
	post := func(body io.Reader, contentLength int64) int {
		req := httptest.NewRequest(http.MethodPost, "/hook", body)
		req.ContentLength = contentLength
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, n := range []int{0, 1, 511, 512, 513, 2999, 3000, 7} {
		body := strings.Repeat(string(rune('a'+n%26)), n)
		require.Equal(t, http.StatusOK, post(io.NopCloser(strings.NewReader(body)), -1), "chunked body of %d bytes", n)
		require.Equal(t, body, string(p.got), "chunked body of %d bytes", n)
		require.Equal(t, http.StatusOK, post(strings.NewReader(body), int64(n)), "body of %d bytes", n)
		require.Equal(t, body, string(p.got), "body of %d bytes", n)
	}
	assert.Equal(t, http.StatusRequestEntityTooLarge, post(io.NopCloser(strings.NewReader(strings.Repeat("x", 3001))), -1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, post(io.NopCloser(strings.NewReader(strings.Repeat("x", 1<<20))), -1))
	serverLimited := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(strings.Repeat("x", 100))), 50)
	assert.Equal(t, http.StatusRequestEntityTooLarge, post(serverLimited, -1), "the server's limit")
	assert.Equal(t, http.StatusBadRequest, post(io.NopCloser(iotest.ErrReader(errors.New("connection reset"))), -1))
}

// queryProvider records the URL query it was given.
type queryProvider struct {
	fakeProvider
	got []string
}

func (q *queryProvider) Parse(req *Request) (Result, error) {
	q.got = append(q.got, req.RawQuery)
	return q.result, nil
}

// TestHandlerPassesTheQuery: a provider sees the request URL's query (the
// token of senders that can only configure a URL, such as Tekton's sink),
// and a pooled request never carries one delivery's query into the next.
func TestHandlerPassesTheQuery(t *testing.T) {
	p := &queryProvider{fakeProvider: fakeProvider{result: oneEvent}}
	for _, path := range []string{"/hook?access_token=s3cret", "/hook"} {
		rec := serve(t, p, okSink, http.MethodPost, path, "application/json", "{}")
		require.Equal(t, http.StatusOK, rec.Code)
	}
	assert.Equal(t, []string{"access_token=s3cret", ""}, p.got)
}

// TestHandlerCountsIncidentsWithoutService: the incidents a delivery
// reports that name no service are told to WithoutService, whether the
// delivery is otherwise ignored or carries other events.
func TestHandlerCountsIncidentsWithoutService(t *testing.T) {
	got := map[string]int{}
	h := NewHandler(Options{
		Routes: []Route{
			{Path: "/none", Provider: &fakeProvider{result: Result{Ignored: "no usable alert", WithoutService: 2}}},
			{Path: "/some", Provider: &fakeProvider{result: Result{Events: oneEvent.Events, WithoutService: 1}}},
			{Path: "/all", Provider: &fakeProvider{result: oneEvent}},
		},
		Sink:           func(context.Context, string, []event.Event) (SinkResult, error) { return SinkResult{Accepted: 1}, nil },
		WithoutService: func(_ context.Context, source string, n int) { got[source] += n },
	})
	for _, path := range []string{"/none", "/some", "/all"} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, path)
	}
	assert.Equal(t, map[string]int{"fake": 3}, got)
}
