// Package pagerduty is the source for PagerDuty v3 webhooks (webhook
// subscriptions): incident.triggered opens an incident and
// incident.resolved resolves it. Deliveries are signed with the
// subscription's secret (X-PagerDuty-Signature: v1=<hex HMAC-SHA256>).
package pagerduty

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// DefaultPath is where the webhook subscription's URL points by default.
const DefaultPath = "/webhooks/pagerduty"

// SignatureHeader carries one or more comma-separated "v1=<hex HMAC-SHA256
// of the body>", one per signing secret (several during a secret rotation).
const SignatureHeader = "X-PagerDuty-Signature"

// Event types that count; every other one is answered 200 and ignored.
const (
	EventTriggered = "incident.triggered"
	EventResolved  = "incident.resolved"
)

// Config configures the PagerDuty source.
type Config struct {
	Path string `mapstructure:"path"`
	// Secret is the webhook subscription's signing secret.
	webhook.SecretConfig `mapstructure:",squash"`
	// Services maps a PagerDuty service (its id, such as "PF9KMXH", or its
	// name, the summary, such as "API Service") to the service name used in
	// the metrics. Unmapped services keep their PagerDuty name.
	Services map[string]string `mapstructure:"services"`
	// Namespace and Environment are set on every incident.
	Namespace   string `mapstructure:"namespace"`
	Environment string `mapstructure:"environment"`
	// MaxAge refuses deliveries whose event occurred longer ago than this
	// when they arrive (replay protection); 0 disables the check.
	MaxAge time.Duration `mapstructure:"max_age"`
	// History imports the incidents of the last history::window from
	// PagerDuty's REST API when a token is set (history.go).
	History history.SourceConfig `mapstructure:"history"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, Environment: "production", History: history.DefaultSourceConfig()}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path: %q must start with /", c.Path))
	}
	if err := c.SecretConfig.Check(); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.Environment) == "" {
		errs = append(errs, errors.New("environment: must not be empty"))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: %s is negative (0 disables the check)", c.MaxAge))
	}
	if err := c.History.Validate("history::"); err != nil {
		errs = append(errs, err)
	}
	for k, v := range c.Services {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, errors.New("services: empty PagerDuty service id or name"))
		}
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("services[%s]: empty service name", k))
		}
	}
	return errors.Join(errs...)
}

// Delivery is the part of a v3 webhook body the source uses.
type Delivery struct {
	Event *Event `json:"event"`
}

// Event is the delivery's single outbound event. Agent and client (who and
// what caused it) are not needed. Data is decoded only for the counted
// event types: its shape depends on the type (incident, incident_note,
// service, ...).
type Event struct {
	ID           string          `json:"id"`
	EventType    string          `json:"event_type"`
	ResourceType string          `json:"resource_type"`
	OccurredAt   time.Time       `json:"occurred_at"`
	Data         json.RawMessage `json:"data"`
}

// Incident is event.data for incident events.
type Incident struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Service Reference `json:"service"`
}

// Reference is a PagerDuty object reference.
type Reference struct {
	ID      string `json:"id"`
	Summary string `json:"summary"`
}

// Provider implements webhook.Provider for PagerDuty v3 webhooks.
type Provider struct{ cfg Config }

// New returns the provider for cfg.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

func (p *Provider) Name() string { return event.SourcePagerDuty }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// Parse verifies and decodes one delivery.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		if err := p.verify(req); err != nil {
			return webhook.Result{}, err
		}
	}
	var d Delivery
	if err := webhook.DecodeJSON(req.Body, &d); err != nil {
		return webhook.Result{}, err
	}
	if d.Event == nil {
		return webhook.Result{}, webhook.BadRequest(`missing required field "event" (is this a PagerDuty v3 webhook?)`)
	}
	ev := d.Event
	if err := webhook.Required("event.event_type", ev.EventType); err != nil {
		return webhook.Result{}, err
	}
	var kind event.Kind
	switch ev.EventType {
	case EventTriggered:
		kind = event.IncidentOpened
	case EventResolved:
		kind = event.IncidentResolved
	default:
		return webhook.Result{Ignored: fmt.Sprintf("event type %q is not counted (only %s and %s are)", ev.EventType, EventTriggered, EventResolved)}, nil
	}
	if err := webhook.Required("event.id", ev.ID); err != nil {
		return webhook.Result{}, err
	}
	if len(ev.Data) == 0 || string(ev.Data) == "null" {
		return webhook.Result{}, webhook.BadRequest(`missing required field "event.data"`)
	}
	if ev.Data[0] != '{' {
		return webhook.Result{}, webhook.BadRequest(`field "event.data": expected an incident object`)
	}
	var inc Incident
	if err := webhook.DecodeJSON(ev.Data, &inc); err != nil {
		var herr *webhook.Error
		if errors.As(err, &herr) {
			return webhook.Result{}, webhook.BadRequest("event.data: %s", herr.Message)
		}
		return webhook.Result{}, err
	}
	if err := webhook.Required("event.data.id", inc.ID); err != nil {
		return webhook.Result{}, err
	}
	if ev.OccurredAt.IsZero() {
		return webhook.Result{}, webhook.BadRequest(`missing required field "event.occurred_at"`)
	}
	if ev.ResourceType != "" && ev.ResourceType != "incident" {
		return webhook.Result{}, webhook.BadRequest(`field "event.resource_type": %q, expected "incident" for %s`, ev.ResourceType, ev.EventType)
	}
	if inc.Type != "" && inc.Type != "incident" {
		return webhook.Result{}, webhook.BadRequest(`field "event.data.type": %q, expected "incident" for %s`, inc.Type, ev.EventType)
	}
	// occurred_at is inside the signed body: a replayed copy cannot move it.
	if err := webhook.CheckAge("event.occurred_at", ev.OccurredAt, req.Received, p.cfg.MaxAge); err != nil {
		return webhook.Result{}, err
	}
	name := p.serviceName(inc.Service)
	if name == "" {
		return webhook.Result{}, webhook.BadRequest(`missing required field "event.data.service.summary"`)
	}
	return webhook.Result{Events: []event.Event{{
		Kind:       kind,
		Source:     event.SourcePagerDuty,
		ID:         ev.ID,
		Time:       ev.OccurredAt,
		Service:    event.Service{Namespace: p.cfg.Namespace, Name: name, Environment: p.cfg.Environment},
		IncidentID: "pagerduty/" + inc.ID,
	}}}, nil
}

// serviceName maps a service by id, then by name; else its name.
func (p *Provider) serviceName(s Reference) string {
	if s.ID != "" {
		if name, ok := p.cfg.Services[s.ID]; ok {
			return name
		}
	}
	if s.Summary != "" {
		if name, ok := p.cfg.Services[s.Summary]; ok {
			return name
		}
	}
	return strings.TrimSpace(s.Summary)
}

// verify accepts the delivery if any v1 signature of the header matches.
func (p *Provider) verify(req *webhook.Request) error {
	header := req.Header.Get(SignatureHeader)
	if header == "" {
		return webhook.Unauthorized("missing %s header (v1=<hex HMAC-SHA256 of the body>)", SignatureHeader)
	}
	matched, versioned := false, false
	for sig := range strings.SplitSeq(header, ",") {
		hexSig, ok := strings.CutPrefix(strings.TrimSpace(sig), "v1=")
		if !ok {
			continue // a future signature version
		}
		versioned = true
		// Check them all, so the time taken does not say which one matched.
		if webhook.ValidHMACSHA256(p.cfg.Secret, req.Body, hexSig) {
			matched = true
		}
	}
	switch {
	case matched:
		return nil
	case !versioned:
		return webhook.Unauthorized("%s holds no v1 signature", SignatureHeader)
	default:
		return webhook.Unauthorized("no signature in %s matches the body", SignatureHeader)
	}
}

var _ webhook.Provider = (*Provider)(nil)
