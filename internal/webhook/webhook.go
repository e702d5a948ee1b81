// Package webhook is the receiver's HTTP front: it routes each delivery to
// the provider registered for its path, maps every outcome to an HTTP
// status with a JSON body, and hands the provider's events to a Sink.
//
// Providers (GitHub, GitLab, Alertmanager, ...) live in their own packages
// and only turn one verified delivery into events; everything about HTTP
// (methods, media types, size limits, status codes, telemetry) is here.
package webhook

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
)

// Request is one delivery, already read and size-checked.
type Request struct {
	Header http.Header
	// Body is reused for later deliveries once this one is answered:
	// providers copy what they keep (string(b) does); each source's
	// TestEventsOwnTheirData (webhooktest) fails one that does not.
	Body []byte
	// Received is when the delivery arrived, for payloads without times.
	Received time.Time
	// RawQuery is the request URL's query, for senders that can only put
	// a token in the URL (Tekton's events sink).
	RawQuery string
}

// Result is what a provider found in a delivery.
type Result struct {
	Events []event.Event
	// Ignored says why a valid delivery carries nothing to count (an
	// event type that is not used, a ping). It is answered with 200.
	Ignored string
	// WithoutService is the number of incidents (or alerts) in the
	// delivery that name no service: never guessed, so not counted, but
	// counted apart in the receiver's telemetry.
	WithoutService int
	// Approximate is how many of Events carry a time that only
	// approximates what they stand for (a push's time for a commit's, when
	// the payload has no commit times): counted apart
	// (Options.Approximated), so that users see how much of their lead
	// time rests on it.
	Approximate int
}

// Provider turns a delivery into events. Implementations verify the
// delivery's signature or token themselves, in constant time.
type Provider interface {
	// Name is the source's name in logs, telemetry and event.Source.
	Name() string
	// ContentTypes are the accepted media types; other types get 415.
	ContentTypes() []string
	// Parse verifies and decodes one delivery. Errors made with the helpers
	// below carry their HTTP status; any other error is a 400.
	Parse(req *Request) (Result, error)
}

// ContentTypeHinter is implemented by providers whose senders have a
// setting for the content type: the hint, added to the 415 answer, says
// which setting to change (the answer is what the sender's delivery log
// shows).
type ContentTypeHinter interface {
	ContentTypeHint() string
}

// SuccessWriter is implemented by providers whose senders expect a
// particular success body (OTLP expects an ExportTraceServiceResponse).
type SuccessWriter interface {
	WriteSuccess(w http.ResponseWriter, req *Request, accepted int)
}

// ErrorWriter is implemented by providers whose senders expect errors in
// their own encoding (OTLP expects a google.rpc.Status).
type ErrorWriter interface {
	WriteError(w http.ResponseWriter, header http.Header, status int, message string)
}

// Error is a failure with the HTTP status it is answered with.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func statusError(status int, format string, args ...any) error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// Unauthorized is a missing or wrong signature, token or secret (401).
func Unauthorized(format string, args ...any) error {
	return statusError(http.StatusUnauthorized, format, args...)
}

// BadRequest is a malformed body or a missing required field (400).
func BadRequest(format string, args ...any) error {
	return statusError(http.StatusBadRequest, format, args...)
}

// The ingest core's errors, as a Sink returns them: ErrPipelineRefused and
// (ingest.ErrStorageUnavailable, ingest.ErrNotLeader) are retryable (503),
// an error wrapping ErrInvalidEvent is the sender's fault (400). They are
// the core's (internal/ingest): this package maps them to a status.
var (
	ErrPipelineRefused = ingest.ErrPipelineRefused
	ErrInvalidEvent    = ingest.ErrInvalidEvent
)

// SinkResult says what the engine did with a delivery's events.
type SinkResult = ingest.Result

// Sink applies a delivery's events. It returns once the metrics they
// change have been handed to the pipeline, or one of the errors above.
type Sink func(ctx context.Context, source string, events []event.Event) (SinkResult, error)

// acceptsContentType reports whether the request's media type is one of
// types (application/json when types is empty).
func acceptsContentType(header string, types []string) bool {
	if len(types) == 0 {
		types = defaultContentTypes
	}
	// The common case, a bare media type, without parsing (the types are
	// lower case, as ParseMediaType returns them).
	for _, t := range types {
		if strings.EqualFold(header, t) {
			return true
		}
	}
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return false
	}
	return slices.Contains(types, mt)
}

var defaultContentTypes = []string{"application/json"}

// unsupportedMediaType is the 415 answer: it names the type received, the
// types the source reads and, where the sender has a setting for it, what
// to change, so that the sender's delivery log says how to fix it.
func unsupportedMediaType(p Provider, header string) error {
	types := p.ContentTypes()
	if len(types) == 0 {
		types = defaultContentTypes
	}
	got := fmt.Sprintf("content type %q", header)
	if strings.TrimSpace(header) == "" {
		got = "a request without Content-Type"
	}
	msg := fmt.Sprintf("%s is not accepted by the %s source: send %s", got, p.Name(), strings.Join(types, " or "))
	if h, ok := p.(ContentTypeHinter); ok {
		if hint := h.ContentTypeHint(); hint != "" {
			msg += "; " + hint
		}
	}
	return statusError(http.StatusUnsupportedMediaType, "%s", msg)
}
