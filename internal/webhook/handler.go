package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/otelcol-dora/dorareceiver/internal/ingest"
)

// DefaultMaxBodySize bounds a delivery when the server config sets no
// limit. GitHub caps its payloads at 25 MB; pushes are far smaller.
const DefaultMaxBodySize = 10 << 20

// Route binds a provider to a URL path.
type Route struct {
	Path     string
	Provider Provider
}

// Handler serves every webhook route and the health path.
type Handler struct {
	routes      map[string]Provider
	sink        Sink
	logger      *zap.Logger
	obsrecv     *receiverhelper.ObsReport
	maxBodySize int64
	healthPath  string
	health      func() any
	readyPath   string
	ready       func() *NotReady
	refused     func(ctx context.Context, source, reason string)
	noService   func(ctx context.Context, source string, n int)
	approx      func(ctx context.Context, source string, n int)
	now         func() time.Time
}

// NotReady is why a replica takes no deliveries now (a follower of the
// leader election): deliveries and the ready path get 503, Retry-After and
// this as JSON.
type NotReady struct {
	Error      string        `json:"error"`
	Leader     string        `json:"leader,omitempty"`
	RetryAfter time.Duration `json:"-"`
}

// Options configure a Handler.
type Options struct {
	Routes      []Route
	Sink        Sink
	Logger      *zap.Logger
	ObsReport   *receiverhelper.ObsReport
	MaxBodySize int64
	// HealthPath answers GET with 200 and Health's value as JSON.
	HealthPath string
	Health     func() any
	// ReadyPath answers 200 when Ready returns nil, 503 otherwise (a
	// readinessProbe keeps a Service's traffic on ready replicas).
	ReadyPath string
	// Ready, when set and not nil, refuses every delivery.
	Ready func() *NotReady
	// Refused, when set, is called for every delivery refused with a 4xx,
	// with the source and a reason (refusalReason).
	Refused func(ctx context.Context, source, reason string)
	// WithoutService, when set, is told of the incidents a delivery
	// reported that name no service (Result.WithoutService).
	WithoutService func(ctx context.Context, source string, n int)
	// Approximated, when set, is called after a delivery's events were
	// applied with the number of new events whose times are approximations
	// (Result.Approximate; a redelivery's duplicates are not counted).
	Approximated func(ctx context.Context, source string, n int)
	Now          func() time.Time
}

// NewHandler returns the HTTP handler for opts.
func NewHandler(opts Options) *Handler {
	h := &Handler{
		routes:      map[string]Provider{},
		sink:        opts.Sink,
		logger:      opts.Logger,
		obsrecv:     opts.ObsReport,
		maxBodySize: opts.MaxBodySize,
		healthPath:  opts.HealthPath,
		health:      opts.Health,
		readyPath:   opts.ReadyPath,
		ready:       opts.Ready,
		refused:     opts.Refused,
		noService:   opts.WithoutService,
		approx:      opts.Approximated,
		now:         opts.Now,
	}
	for _, r := range opts.Routes {
		h.routes[r.Path] = r.Provider
	}
	if h.maxBodySize <= 0 {
		h.maxBodySize = DefaultMaxBodySize
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.logger == nil {
		h.logger = zap.NewNop()
	}
	return h
}

type response struct {
	Status     string `json:"status"`
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates,omitempty"`
	Ignored    string `json:"ignored,omitempty"`
	Error      string `json:"error,omitempty"`
	// Field names the event field that made the delivery invalid.
	Field string `json:"field,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.healthPath != "" && r.URL.Path == h.healthPath {
		var body any = map[string]string{"status": "ok"}
		if h.health != nil {
			body = h.health()
		}
		writeJSON(w, http.StatusOK, body)
		return
	}
	var notReady *NotReady
	if h.ready != nil {
		notReady = h.ready()
	}
	if h.readyPath != "" && r.URL.Path == h.readyPath {
		if notReady == nil {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
			return
		}
	}
	if notReady != nil && (r.URL.Path == h.readyPath || h.routes[r.URL.Path] != nil) {
		w.Header().Set("Retry-After", strconv.Itoa(int((notReady.RetryAfter+time.Second-1)/time.Second)))
		writeJSON(w, http.StatusServiceUnavailable, notReady)
		return
	}
	p, ok := h.routes[r.URL.Path]
	if !ok {
		writeJSON(w, http.StatusNotFound, response{Status: "error", Error: "no webhook source is configured at " + r.URL.Path})
		return
	}

	ctx := r.Context()
	if h.obsrecv != nil {
		ctx = h.obsrecv.StartMetricsOp(ctx)
	}
	d := deliveryPool.Get().(*delivery)
	defer d.release()
	req, sres, err := h.process(ctx, p, r, d)
	h.finish(ctx, w, r, p, req, sres, err, d)
}

// delivery is the per-request space the handler reuses across deliveries:
// the request given to the provider, the body it was read into and the
// response buffer. Providers copy what they keep (event strings are
// copies), so the body can be reused once the delivery is answered.
type delivery struct {
	req  Request
	body []byte
	resp []byte
}

var deliveryPool = sync.Pool{New: func() any { return &delivery{body: make([]byte, 0, 8<<10)} }}

// maxPooledBody bounds the buffers kept for reuse: a rare large delivery
// should not pin its memory.
const maxPooledBody = 1 << 20

func (d *delivery) release() {
	if cap(d.body) > maxPooledBody {
		return
	}
	d.req = Request{}
	d.body, d.resp = d.body[:0], d.resp[:0]
	deliveryPool.Put(d)
}

// errBodyTooLarge is readBody's refusal of a body over the limit.
var errBodyTooLarge = errors.New("body too large")

// readBody reads r to its end into buf, refusing more than limit bytes
// without reading (or buffering) much past the limit.
func readBody(r io.Reader, buf []byte, sizeHint, limit int64) ([]byte, error) {
	buf = buf[:0]
	if sizeHint > 0 && sizeHint <= limit && int64(cap(buf)) <= sizeHint {
		// One more byte than announced, so the read that finds the end
		// does not grow the buffer.
		buf = slices.Grow(buf, int(sizeHint)+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(int64(max(cap(buf), 512)), limit+1-int64(len(buf)))))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errBodyTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// process reads, verifies and applies one delivery.
func (h *Handler) process(ctx context.Context, p Provider, r *http.Request, d *delivery) (*Request, SinkResult, error) {
	if r.Method != http.MethodPost {
		return nil, SinkResult{}, statusError(http.StatusMethodNotAllowed, "method %s not allowed; deliveries are POSTed", r.Method)
	}
	if !acceptsContentType(r.Header.Get("Content-Type"), p.ContentTypes()) {
		return nil, SinkResult{}, unsupportedMediaType(p, r.Header.Get("Content-Type"))
	}
	if r.ContentLength > h.maxBodySize {
		// Refused without reading the body.
		return nil, SinkResult{}, statusError(http.StatusRequestEntityTooLarge, "body of %d bytes exceeds the limit of %d", r.ContentLength, h.maxBodySize)
	}
	body, err := readBody(r.Body, d.body, r.ContentLength, h.maxBodySize)
	d.body = body
	if err != nil {
		// The server may bound the body too (confighttp's
		// max_request_body_size wraps it in an http.MaxBytesReader).
		var tooLarge *http.MaxBytesError
		if errors.Is(err, errBodyTooLarge) || errors.As(err, &tooLarge) {
			return nil, SinkResult{}, statusError(http.StatusRequestEntityTooLarge, "body exceeds the limit of %d bytes", h.maxBodySize)
		}
		return nil, SinkResult{}, BadRequest("reading the body: %v", err)
	}
	d.req = Request{Header: r.Header, Body: body, Received: h.now(), RawQuery: r.URL.RawQuery}
	req := &d.req
	res, err := p.Parse(req)
	if err != nil {
		return req, SinkResult{}, err
	}
	if res.WithoutService > 0 && h.noService != nil {
		h.noService(ctx, p.Name(), res.WithoutService)
	}
	if len(res.Events) == 0 {
		if res.Ignored == "" {
			res.Ignored = "nothing to count in this delivery"
		}
		return req, SinkResult{}, ignored(res.Ignored)
	}
	sres, err := h.sink(ctx, p.Name(), res.Events)
	if err == nil && h.approx != nil && res.Approximate > 0 {
		// Only what was applied: a redelivery adds nothing.
		if n := min(res.Approximate, sres.Accepted); n > 0 {
			h.approx(ctx, p.Name(), n)
		}
	}
	return req, sres, err
}

type ignored string

func (i ignored) Error() string { return string(i) }

// StatusOf is the HTTP status a delivery failing with err is answered
// with: what its sender sees.
func StatusOf(err error) int {
	status, _ := failure(err)
	return status
}

// failure maps a delivery's error to its status and answer (a 503 is
// answered with Retry-After). It is apart from finish because its
// errors.As targets escape to the heap.
func failure(err error) (int, response) {
	var ign ignored
	var herr *Error
	switch {
	case errors.As(err, &ign):
		return http.StatusOK, response{Status: "ignored", Ignored: string(ign)}
	case errors.Is(err, ErrPipelineRefused), errors.Is(err, ingest.ErrStorageUnavailable), errors.Is(err, ingest.ErrNotLeader):
		return http.StatusServiceUnavailable, response{Status: "error", Error: err.Error() + "; retry later"}
	case errors.Is(err, ErrInvalidEvent):
		var f interface{ FieldName() string }
		field := ""
		if errors.As(err, &f) {
			field = f.FieldName()
		}
		return http.StatusBadRequest, response{Status: "error", Error: err.Error(), Field: field}
	case errors.As(err, &herr):
		return herr.Status, response{Status: "error", Error: herr.Message}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, response{Status: "error", Error: "request ended before the data reached the pipeline; retry"}
	default:
		return http.StatusBadRequest, response{Status: "error", Error: err.Error()}
	}
}

// finish answers the delivery and always ends the telemetry operation, so
// every outcome is counted once, whichever way it ended.
func (h *Handler) finish(ctx context.Context, w http.ResponseWriter, r *http.Request, p Provider, req *Request, sres SinkResult, err error, d *delivery) {
	status := http.StatusOK
	body := response{Status: "accepted", Accepted: sres.Accepted, Duplicates: sres.Duplicates}
	if err != nil {
		status, body = failure(err)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
	}

	if h.obsrecv != nil {
		var opErr error
		if status >= 400 {
			opErr = errors.New(body.Error)
		}
		h.obsrecv.EndMetricsOp(ctx, p.Name(), sres.Accepted, opErr)
	}
	if h.refused != nil && status >= 400 && status < 500 {
		h.refused(ctx, p.Name(), refusalReason(status, err))
	}
	// Fields are built only for a level that is logged: accepted
	// deliveries log at debug, usually off.
	var level zapcore.Level
	msg := ""
	switch {
	case status >= 500:
		level, msg = zapcore.WarnLevel, "Webhook delivery not accepted; the sender should retry"
	case status >= 400:
		level, msg = zapcore.InfoLevel, "Webhook delivery refused"
	case body.Ignored != "":
		level, msg = zapcore.DebugLevel, "Webhook delivery ignored"
	default:
		level, msg = zapcore.DebugLevel, "Webhook delivery accepted"
	}
	if ce := h.logger.Check(level, msg); ce != nil {
		fields := []zap.Field{zap.String("source", p.Name()), zap.Int("status", status)}
		switch {
		case status >= 400:
			// The client address, so that a refusal can be traced to its
			// sender (behind a proxy, the proxy's).
			fields = append(fields, zap.String("error", body.Error), zap.String("client", r.RemoteAddr))
		case body.Ignored != "":
			fields = append(fields, zap.String("reason", body.Ignored))
		default:
			fields = append(fields, zap.Int("events", sres.Accepted), zap.Int("duplicates", sres.Duplicates))
		}
		ce.Write(fields...)
	}

	if sw, ok := p.(SuccessWriter); ok && status == http.StatusOK && req != nil {
		sw.WriteSuccess(w, req, sres.Accepted)
		return
	}
	if ew, ok := p.(ErrorWriter); ok && status >= 400 {
		ew.WriteError(w, r.Header, status, body.Error)
		return
	}
	if body.Ignored == "" && body.Error == "" {
		// The common answer, written without encoding/json.
		d.resp = appendAccepted(d.resp[:0], body)
		writeJSONBytes(w, status, d.resp)
		return
	}
	writeJSON(w, status, body)
}

// refusalReason names why a delivery was refused (status 4xx), for the
// receiver's telemetry: a few fixed values, never the sender's text.
func refusalReason(status int, err error) string {
	var rr interface{ RefusalReason() string }
	if errors.As(err, &rr) && rr.RefusalReason() != "" {
		return rr.RefusalReason()
	}
	switch {
	case errors.Is(err, ErrInvalidEvent):
		return "invalid_event"
	case status == http.StatusBadRequest:
		return "bad_request"
	case status == http.StatusUnauthorized:
		return "unauthorized"
	case status == http.StatusForbidden:
		return "forbidden"
	case status == http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case status == http.StatusRequestEntityTooLarge:
		return "too_large"
	case status == http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	}
	return "status_" + strconv.Itoa(status)
}

// appendAccepted appends body, which has no strings to escape, as
// json.Marshal would encode it, and a newline.
func appendAccepted(b []byte, body response) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, body.Status...)
	b = append(b, `","accepted":`...)
	b = strconv.AppendInt(b, int64(body.Accepted), 10)
	if body.Duplicates != 0 {
		b = append(b, `,"duplicates":`...)
		b = strconv.AppendInt(b, int64(body.Duplicates), 10)
	}
	return append(b, "}\n"...)
}

// jsonContentType is shared by every response: net/http only reads it.
var jsonContentType = []string{"application/json"}

// writeJSONBytes writes b, a JSON document and its newline.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"status":"error","error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
