package forward

import (
	"errors"
	"mime"
	"net/http"
	"strconv"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// SourceName names the gateway input in logs and telemetry; the events
// keep the source that made them at the agent (kubernetes, ...).
const SourceName = "dora_agent"

// Provider is the gateway's OTLP/HTTP logs path (POST /v1/logs, protobuf
// or JSON): a webhook.Provider whose senders are agents, authenticated like
// the otlp source's (its auth, the server's auth or mutual TLS) before the
// body is read.
type Provider struct {
	limits Limits
}

// NewProvider returns the provider; limits bound each export.
func NewProvider(limits Limits) *Provider { return &Provider{limits: limits} }

// SetMaxRecords bounds the records of one export (the receiver's
// limits::max_events_per_delivery); call it before serving.
func (p *Provider) SetMaxRecords(n int) { p.limits.MaxRecords = n }

func (p *Provider) Name() string { return SourceName }

func (p *Provider) ContentTypes() []string {
	return []string{cicdspans.ContentTypeProtobuf, "application/protobuf", cicdspans.ContentTypeJSON}
}

// Parse decodes one ExportLogsServiceRequest into its events.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	er := plogotlp.NewExportRequest()
	if mediaType(req.Header) == cicdspans.ContentTypeJSON {
		if err := jsonscan.CheckDepth(req.Body, jsonscan.MaxDepth); err != nil {
			return webhook.Result{}, err
		}
		if err := er.UnmarshalJSON(req.Body); err != nil {
			return webhook.Result{}, webhook.BadRequest("malformed OTLP/JSON ExportLogsServiceRequest: %v", err)
		}
	} else if err := er.UnmarshalProto(req.Body); err != nil {
		return webhook.Result{}, webhook.BadRequest("malformed OTLP/protobuf ExportLogsServiceRequest: %v", err)
	}
	return p.ParseLogs(er.Logs())
}

// ParseLogs is Parse for logs already decoded (an OTLP/gRPC export).
func (p *Provider) ParseLogs(ld plog.Logs) (webhook.Result, error) {
	events, err := Decode(ld, p.limits)
	if err != nil {
		if errors.Is(err, ErrTooManyRecords) {
			return webhook.Result{}, &webhook.Error{Status: http.StatusRequestEntityTooLarge, Message: err.Error() + " (limits::max_events_per_delivery); send smaller batches (the exporter's sending_queue::batch)"}
		}
		return webhook.Result{}, err
	}
	if len(events) == 0 {
		return webhook.Result{Ignored: "no records in this export"}, nil
	}
	return webhook.Result{Events: events}, nil
}

// WriteSuccess answers with an empty ExportLogsServiceResponse in the
// request's encoding, as OTLP/HTTP requires.
func (p *Provider) WriteSuccess(w http.ResponseWriter, req *webhook.Request, _ int) {
	resp := plogotlp.NewExportResponse()
	ct := mediaType(req.Header)
	var body []byte
	var err error
	if ct == cicdspans.ContentTypeJSON {
		body, err = resp.MarshalJSON()
	} else {
		if ct != "application/protobuf" {
			ct = cicdspans.ContentTypeProtobuf
		}
		body, err = resp.MarshalProto()
	}
	if err != nil {
		http.Error(w, "encoding the export response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// WriteError answers a refused export with a google.rpc.Status, as
// OTLP/HTTP requires.
func (p *Provider) WriteError(w http.ResponseWriter, header http.Header, status int, message string) {
	cicdspans.WriteOTLPError(w, header, status, message)
}

func mediaType(h http.Header) string {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return cicdspans.ContentTypeProtobuf
	}
	return mt
}
