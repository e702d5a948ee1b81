// Package opsgenie is the source for Opsgenie's outgoing webhook
// integration: an alert's Create action opens an incident and its Close
// action resolves it, on the service a configured alert field names.
//
// Opsgenie signs nothing: the integration sends the custom headers it is
// given, so the sender authenticates with a token in an Authorization
// header (Bearer, or Basic with the token as password) or in a header of
// the user's choosing (token_header), checked in constant time.
package opsgenie

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Source is the source's name in events, logs and telemetry.
const Source = "opsgenie"

// DefaultPath is where the webhook integration's URL points by default.
const DefaultPath = "/webhooks/opsgenie"

// The alert actions that count; every other one (Acknowledge, AddNote,
// ...) is answered 200 and ignored.
const (
	ActionCreate = "Create"
	ActionClose  = "Close"
)

// Config configures the Opsgenie source.
type Config struct {
	Path string `mapstructure:"path"`
	// Token (TokenConfig) is what the integration's custom headers send:
	// "Authorization: Bearer <token>", Basic auth with it as password, or
	// the token alone in TokenHeader.
	webhook.TokenConfig `mapstructure:",squash"`
	// TokenHeader is a custom header carrying the token; empty: only the
	// Authorization header is read.
	TokenHeader string `mapstructure:"token_header"`
	// ServiceFields are the alert fields naming the service, first
	// non-empty wins: "entity", "alias", "source", or "tag:<prefix>" (the
	// first tag starting with prefix, without it; "tag:" is the first
	// tag). Alerts with none are not counted.
	ServiceFields []string `mapstructure:"service_fields"`
	// Services maps a field's value to the service name used in the
	// metrics; unmapped values are the name.
	Services map[string]string `mapstructure:"services"`
	// EnvironmentTagPrefix names the environment in a tag
	// ("environment:staging"); DefaultEnvironment applies without one.
	EnvironmentTagPrefix string `mapstructure:"environment_tag_prefix"`
	DefaultEnvironment   string `mapstructure:"default_environment"`
	// Namespace is set on every incident.
	Namespace string `mapstructure:"namespace"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		Path:                 DefaultPath,
		ServiceFields:        []string{"tag:service:", "entity"},
		EnvironmentTagPrefix: "environment:",
		DefaultEnvironment:   "production",
	}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path: %q must start with /", c.Path))
	}
	if err := c.TokenConfig.Check("a custom header of the webhook integration: Authorization: Bearer <token>, or token_header"); err != nil {
		errs = append(errs, err)
	}
	if len(c.ServiceFields) == 0 {
		errs = append(errs, errors.New("service_fields: at least one field is required (entity, alias, source or tag:<prefix>)"))
	}
	for i, f := range c.ServiceFields {
		switch {
		case f == "entity", f == "alias", f == "source", strings.HasPrefix(f, "tag:"):
		default:
			errs = append(errs, fmt.Errorf("service_fields[%d]: %q is not entity, alias, source or tag:<prefix>", i, f))
		}
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

// Delivery is the part of the webhook body (Opsgenie's "alert action
// data") the source uses.
type Delivery struct {
	Action string `json:"action"`
	Alert  *Alert `json:"alert"`
}

// Alert is the alert the action was taken on. createdAt is in
// milliseconds, updatedAt in nanoseconds (Opsgenie's samples); unixTime
// reads either by its size.
type Alert struct {
	AlertID   string   `json:"alertId"`
	Alias     string   `json:"alias"`
	Entity    string   `json:"entity"`
	Source    string   `json:"source"`
	Tags      []string `json:"tags"`
	CreatedAt int64    `json:"createdAt"`
	UpdatedAt int64    `json:"updatedAt"`
}

// Provider implements webhook.Provider for Opsgenie's webhook integration.
type Provider struct{ cfg Config }

// New returns the provider for cfg.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

func (p *Provider) Name() string { return Source }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// Parse authenticates and decodes one delivery.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		if err := p.cfg.CheckAuthorization(req.Header, p.cfg.TokenHeader,
			"add a custom header to the Opsgenie webhook integration: Authorization: Bearer <token>"); err != nil {
			return webhook.Result{}, err
		}
	}
	var d Delivery
	if err := webhook.DecodeJSON(req.Body, &d); err != nil {
		return webhook.Result{}, err
	}
	if err := webhook.Required("action", d.Action); err != nil {
		return webhook.Result{}, err
	}
	var kind event.Kind
	var suffix string
	switch d.Action {
	case ActionCreate:
		kind, suffix = event.IncidentOpened, "/opened"
	case ActionClose:
		kind, suffix = event.IncidentResolved, "/closed"
	default:
		return webhook.Result{Ignored: fmt.Sprintf("alert action %q is not counted (only %s and %s are)", d.Action, ActionCreate, ActionClose)}, nil
	}
	a := d.Alert
	if a == nil {
		return webhook.Result{}, webhook.BadRequest(`missing required field "alert" (is this an Opsgenie webhook integration delivery?)`)
	}
	if err := webhook.Required("alert.alertId", a.AlertID); err != nil {
		return webhook.Result{}, err
	}
	// Create is when the alert was created; Close is its last update.
	field, raw := "alert.createdAt", a.CreatedAt
	if kind == event.IncidentResolved {
		field, raw = "alert.updatedAt", a.UpdatedAt
	}
	at, err := unixTime(field, raw)
	if err != nil {
		return webhook.Result{}, err
	}
	name := p.serviceName(a)
	if name == "" {
		// Counted apart (the answer says why), never guessed.
		return webhook.Result{Ignored: fmt.Sprintf("the alert carries none of the service fields %v", p.cfg.ServiceFields), WithoutService: 1}, nil
	}
	env := p.cfg.DefaultEnvironment
	if v := tagValue(a.Tags, p.cfg.EnvironmentTagPrefix); p.cfg.EnvironmentTagPrefix != "" && v != "" {
		env = v
	}
	// An alert is never reopened (Opsgenie creates a new alert, with a new
	// id, for a new occurrence of the alias): its id and the action name
	// each event, so redeliveries are counted once.
	incident := Source + "/" + strings.TrimSpace(a.AlertID)
	return webhook.Result{Events: []event.Event{{
		Kind:       kind,
		Source:     Source,
		ID:         incident + suffix,
		Time:       at,
		Service:    event.Service{Namespace: p.cfg.Namespace, Name: name, Environment: env},
		IncidentID: incident,
	}}}, nil
}

// serviceName is the first service field with a value, mapped.
func (p *Provider) serviceName(a *Alert) string {
	name := ""
	for _, f := range p.cfg.ServiceFields {
		switch {
		case f == "entity":
			name = a.Entity
		case f == "alias":
			name = a.Alias
		case f == "source":
			name = a.Source
		case strings.HasPrefix(f, "tag:"):
			name = tagValue(a.Tags, strings.TrimPrefix(f, "tag:"))
		}
		if name = strings.TrimSpace(name); name != "" {
			break
		}
	}
	if mapped, ok := p.cfg.Services[name]; ok && name != "" {
		return mapped
	}
	return name
}

// tagValue is the rest of the first tag starting with prefix.
func tagValue(tags []string, prefix string) string {
	for _, t := range tags {
		if v, ok := strings.CutPrefix(strings.TrimSpace(t), prefix); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// unixTime reads an Opsgenie epoch time by its size: seconds, milliseconds,
// microseconds or nanoseconds (createdAt is in milliseconds, updatedAt in
// nanoseconds).
func unixTime(field string, v int64) (time.Time, error) {
	switch {
	case v <= 0:
		return time.Time{}, webhook.BadRequest("missing required field %q", field)
	case v >= 1e17:
		return time.Unix(0, v).UTC(), nil
	case v >= 1e14:
		return time.UnixMicro(v).UTC(), nil
	case v >= 1e11:
		return time.UnixMilli(v).UTC(), nil
	default:
		return time.Unix(v, 0).UTC(), nil
	}
}

var _ webhook.Provider = (*Provider)(nil)
