// Package incidentio is the source for incident.io's webhooks (public
// incident events, v2): an incident opens when it is live (accepted, not
// in triage) and resolves when its status category is learning
// (post-incident) or closed, on the services a configured custom field
// names.
//
// incident.io sends its webhooks through Svix, signed as Standard Webhooks
// specifies: webhook-id, webhook-timestamp and webhook-signature, "v1,"
// and the base64 HMAC-SHA256 of "<id>.<timestamp>.<body>" under the
// endpoint's signing secret (whsec_ and its base64 key).
package incidentio

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Source is the source's name in events, logs and telemetry.
const Source = "incidentio"

// DefaultPath is where the webhook endpoint's URL points by default.
const DefaultPath = "/webhooks/incidentio"

// The event types that count; every other one is answered 200 and ignored.
const (
	EventCreated = "public_incident.incident_created_v2"
	EventUpdated = "public_incident.incident_updated_v2"
)

// Config configures the incident.io source.
type Config struct {
	Path string `mapstructure:"path"`
	// Secret is the endpoint's signing secret ("whsec_..."), as incident.io's
	// webhook settings show it.
	webhook.SecretConfig `mapstructure:",squash"`
	// MaxAge refuses deliveries whose signed webhook-timestamp is further
	// than this from their arrival (replay protection); 0 disables it.
	MaxAge time.Duration `mapstructure:"max_age"`
	// ServiceField is the custom field naming the affected services (a
	// catalog, select or text field): an incident is counted once for each
	// of its values. Incidents without it are not counted.
	ServiceField string `mapstructure:"service_field"`
	// Services maps a field value (catalog entry or option name) to the
	// service name used in the metrics; unmapped values are the name.
	Services map[string]string `mapstructure:"services"`
	// EnvironmentField is a custom field naming the environment; without
	// it, or when it is empty, DefaultEnvironment applies.
	EnvironmentField   string `mapstructure:"environment_field"`
	DefaultEnvironment string `mapstructure:"default_environment"`
	// Namespace is set on every incident.
	Namespace string `mapstructure:"namespace"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, ServiceField: "Affected services", DefaultEnvironment: "production"}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path: %q must start with /", c.Path))
	}
	if err := c.SecretConfig.Check(); err != nil {
		errs = append(errs, err)
	} else if c.Secret != "" {
		if _, err := signingKey(string(webhook.Key(c.Secret))); err != nil {
			errs = append(errs, fmt.Errorf("secret: %w", err))
		}
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: %s is negative (0 disables the check)", c.MaxAge))
	}
	if strings.TrimSpace(c.ServiceField) == "" {
		errs = append(errs, errors.New("service_field: the custom field naming the affected services is required"))
	}
	for k, v := range c.Services {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, errors.New("services: empty field value"))
		}
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("services[%s]: empty service name", k))
		}
	}
	if strings.TrimSpace(c.DefaultEnvironment) == "" {
		errs = append(errs, errors.New("default_environment: must not be empty"))
	}
	return errors.Join(errs...)
}

// Incident is the part of an incident (IncidentV2) the source uses.
type Incident struct {
	ID                 string             `json:"id"`
	Mode               string             `json:"mode"`
	CreatedAt          time.Time          `json:"created_at"`
	UpdatedAt          time.Time          `json:"updated_at"`
	Status             *Status            `json:"incident_status"`
	CustomFieldEntries []CustomFieldEntry `json:"custom_field_entries"`
}

// Status is the incident's status; its category is what counts
// (triage, declined, merged, canceled, live, learning, closed, paused).
type Status struct {
	Category string `json:"category"`
	Name     string `json:"name"`
}

// CustomFieldEntry is one custom field of the incident and its values.
type CustomFieldEntry struct {
	CustomField struct {
		Name string `json:"name"`
	} `json:"custom_field"`
	Values []CustomFieldValue `json:"values"`
}

// CustomFieldValue is one value: a catalog entry, an option or a text.
type CustomFieldValue struct {
	CatalogEntry *struct {
		Name string `json:"name"`
	} `json:"value_catalog_entry"`
	Option *struct {
		Value string `json:"value"`
	} `json:"value_option"`
	Text string `json:"value_text"`
}

func (v CustomFieldValue) String() string {
	switch {
	case v.CatalogEntry != nil && strings.TrimSpace(v.CatalogEntry.Name) != "":
		return strings.TrimSpace(v.CatalogEntry.Name)
	case v.Option != nil && strings.TrimSpace(v.Option.Value) != "":
		return strings.TrimSpace(v.Option.Value)
	}
	return strings.TrimSpace(v.Text)
}

// Provider implements webhook.Provider for incident.io webhooks.
type Provider struct {
	cfg Config
	key []byte
}

// New returns the provider for cfg (validated: its secret decodes).
func New(cfg Config) *Provider {
	p := &Provider{cfg: cfg}
	if cfg.Secret != "" {
		p.key, _ = signingKey(string(webhook.Key(cfg.Secret)))
	}
	return p
}

func (p *Provider) Name() string { return Source }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// Parse verifies and decodes one delivery.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	msgID := headerOf(req, "webhook-id", "svix-id")
	if p.cfg.Verify() {
		if err := p.verify(req, msgID); err != nil {
			return webhook.Result{}, err
		}
	}
	var env map[string]json.RawMessage
	if err := webhook.DecodeJSON(req.Body, &env); err != nil {
		return webhook.Result{}, err
	}
	var eventType string
	if raw, ok := env["event_type"]; ok {
		if err := json.Unmarshal(raw, &eventType); err != nil {
			return webhook.Result{}, webhook.BadRequest(`field "event_type": expected a string`)
		}
	}
	if err := webhook.Required("event_type", eventType); err != nil {
		return webhook.Result{}, err
	}
	if eventType != EventCreated && eventType != EventUpdated {
		return webhook.Result{Ignored: fmt.Sprintf("event type %q is not counted (only %s and %s are)", eventType, EventCreated, EventUpdated)}, nil
	}
	// Each delivery has its own webhook-id, kept on redeliveries: it names
	// the events, so a redelivery is counted once.
	if msgID == "" {
		return webhook.Result{}, webhook.BadRequest("missing webhook-id header (the delivery id incident.io sends with every webhook)")
	}
	raw, ok := env[eventType]
	if !ok || len(raw) == 0 || string(raw) == "null" {
		return webhook.Result{}, webhook.BadRequest("missing required field %q", eventType)
	}
	if raw[0] != '{' {
		return webhook.Result{}, webhook.BadRequest("field %q: expected an incident object", eventType)
	}
	var inc Incident
	if err := webhook.DecodeJSON(raw, &inc); err != nil {
		var herr *webhook.Error
		if errors.As(err, &herr) {
			return webhook.Result{}, webhook.BadRequest("%s: %s", eventType, herr.Message)
		}
		return webhook.Result{}, err
	}
	return p.events(eventType, msgID, &inc)
}

// events turns an incident's state into events: open while live (or
// paused), resolved once learning or closed. A retrospective incident,
// created already resolved, is opened and resolved at once.
func (p *Provider) events(eventType, msgID string, inc *Incident) (webhook.Result, error) {
	field := func(name string) string { return eventType + "." + name }
	if err := webhook.Required(field("id"), inc.ID); err != nil {
		return webhook.Result{}, err
	}
	if inc.Status == nil {
		return webhook.Result{}, webhook.BadRequest("missing required field %q", field("incident_status"))
	}
	if err := webhook.Required(field("incident_status.category"), inc.Status.Category); err != nil {
		return webhook.Result{}, err
	}
	switch inc.Mode {
	case "test", "tutorial":
		return webhook.Result{Ignored: fmt.Sprintf("a %s incident is not counted", inc.Mode)}, nil
	}
	var open, resolve bool
	switch c := inc.Status.Category; c {
	case "live", "paused":
		open = true
	case "learning", "closed":
		resolve, open = true, eventType == EventCreated
	case "triage":
		return webhook.Result{Ignored: "an incident in triage is not counted until it is accepted (live)"}, nil
	case "declined", "merged", "canceled":
		return webhook.Result{Ignored: fmt.Sprintf("a %s incident is not counted", c)}, nil
	default:
		return webhook.Result{}, webhook.BadRequest(`field %q: %q is not one of triage, live, paused, learning, closed, declined, merged, canceled`, field("incident_status.category"), c)
	}
	if open && inc.CreatedAt.IsZero() {
		return webhook.Result{}, webhook.BadRequest("missing required field %q", field("created_at"))
	}
	if resolve && inc.UpdatedAt.IsZero() {
		return webhook.Result{}, webhook.BadRequest("missing required field %q", field("updated_at"))
	}
	names := p.values(inc, p.cfg.ServiceField)
	if len(names) == 0 {
		// Counted apart (the answer says why), never guessed.
		return webhook.Result{Ignored: fmt.Sprintf("the incident has no value in its custom field %q", p.cfg.ServiceField), WithoutService: 1}, nil
	}
	env := p.cfg.DefaultEnvironment
	if p.cfg.EnvironmentField != "" {
		if v := p.values(inc, p.cfg.EnvironmentField); len(v) > 0 {
			env = v[0]
		}
	}
	incident := Source + "/" + strings.TrimSpace(inc.ID)
	var res webhook.Result
	for _, name := range names {
		if mapped, ok := p.cfg.Services[name]; ok {
			name = mapped
		}
		svc := event.Service{Namespace: p.cfg.Namespace, Name: name, Environment: env}
		id := Source + "/" + msgID + "/" + name
		if open {
			res.Events = append(res.Events, event.Event{Kind: event.IncidentOpened, Source: Source, ID: id + "/opened",
				Time: inc.CreatedAt.UTC(), Service: svc, IncidentID: incident})
		}
		if resolve {
			res.Events = append(res.Events, event.Event{Kind: event.IncidentResolved, Source: Source, ID: id + "/resolved",
				Time: inc.UpdatedAt.UTC(), Service: svc, IncidentID: incident})
		}
	}
	return res, nil
}

// values are the distinct values of the custom field named name.
func (p *Provider) values(inc *Incident, name string) []string {
	var out []string
	for _, e := range inc.CustomFieldEntries {
		if !strings.EqualFold(strings.TrimSpace(e.CustomField.Name), name) {
			continue
		}
		for _, v := range e.Values {
			if s := v.String(); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// headerOf is the first non-empty of the headers (Svix sends its
// unbranded webhook-* headers, and svix-* ones in older setups).
func headerOf(req *webhook.Request, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(req.Header.Get(n)); v != "" {
			return v
		}
	}
	return ""
}

var _ webhook.Provider = (*Provider)(nil)
