// Package servicenow is the source for ServiceNow incidents. ServiceNow has
// no standard webhook: an admin adds a business rule on the incident table
// (docs/sources/servicenow.md has the script) that posts the incident
// record, with the incident table's own field names, to this source on
// insert and on every state change. An incident in an open state opens the
// incident at opened_at; Resolved, Closed or Canceled resolves it at
// resolved_at (else closed_at).
//
// The record's shape is the Table API's: each field is a string (the
// value), or an object {"value", "display_value"} as the Table API returns
// with sysparm_display_value=all (a reference field's value is a sys_id,
// its display value a name). The body may be the record itself or the
// Table API's {"result": record}.
//
// The business rule signs the body with the shared secret
// (X-Signature-256: sha256=<HMAC-SHA256 of the body>, base64 as
// GlideCertificateEncryption.generateMac returns it, or hex).
package servicenow

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// DefaultPath is where the business rule posts by default.
const DefaultPath = "/webhooks/servicenow"

// SignatureHeader carries "sha256=" and the HMAC-SHA256 of the body, in
// base64 (what GlideCertificateEncryption.generateMac returns) or hex.
const SignatureHeader = "X-Signature-256"

// Config configures the ServiceNow source.
type Config struct {
	Path string `mapstructure:"path"`
	// Secret is the key the business rule signs with (HMAC-SHA256).
	webhook.SecretConfig `mapstructure:",squash"`
	// ServiceFields are the incident fields naming the service, first
	// usable one wins: a reference (business_service, cmdb_ci,
	// assignment_group) or any string field (a u_ custom field).
	ServiceFields []string `mapstructure:"service_fields"`
	// Services maps a field's display value or sys_id to the service name
	// used in the metrics. An unmapped display value is the name; an
	// unmapped sys_id names no service.
	Services map[string]string `mapstructure:"services"`
	// Namespace and Environment are set on every incident.
	Namespace   string `mapstructure:"namespace"`
	Environment string `mapstructure:"environment"`
	// MaxAge refuses deliveries whose sys_updated_on (in the signed body)
	// is further than this from when they arrive; 0 disables the check.
	MaxAge time.Duration `mapstructure:"max_age"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		Path:          DefaultPath,
		ServiceFields: []string{"business_service", "cmdb_ci"},
		Environment:   "production",
	}
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
	if len(c.ServiceFields) == 0 {
		errs = append(errs, errors.New("service_fields: at least one incident field is required"))
	}
	for i, f := range c.ServiceFields {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, fmt.Errorf("service_fields[%d]: empty field name", i))
		}
	}
	if strings.TrimSpace(c.Environment) == "" {
		errs = append(errs, errors.New("environment: must not be empty"))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: %s is negative (0 disables the check)", c.MaxAge))
	}
	for k, v := range c.Services {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, errors.New("services: empty ServiceNow display value or sys_id"))
		}
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("services[%s]: empty service name", k))
		}
	}
	return errors.Join(errs...)
}

// Field is one field of a record: a plain value, or the Table API's
// {"value", "display_value"} (a "link" is ignored).
type Field struct {
	Value   string
	Display string
}

// UnmarshalJSON takes a string, a number or boolean (kept as written),
// null, or an object with value and display_value.
func (f *Field) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case 'n':
		return nil
	case '"':
		return json.Unmarshal(b, &f.Value)
	case '{':
		var o struct {
			Value   *string `json:"value"`
			Display *string `json:"display_value"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return errors.New(`expected a string or {"value": string, "display_value": string}`)
		}
		if o.Value != nil {
			f.Value = *o.Value
		}
		if o.Display != nil {
			f.Display = *o.Display
		}
		return nil
	case '[':
		return errors.New(`expected a string or {"value": string, "display_value": string}, got an array`)
	default:
		f.Value = string(b) // a number or a boolean
		return nil
	}
}

// Provider implements webhook.Provider for ServiceNow incidents.
type Provider struct{ cfg Config }

// New returns the provider for cfg.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

func (p *Provider) Name() string { return event.SourceServiceNow }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// Parse verifies and decodes one delivery.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		if err := p.verify(req); err != nil {
			return webhook.Result{}, err
		}
	}
	rec, err := decodeRecord(req.Body)
	if err != nil {
		return webhook.Result{}, err
	}
	field := func(name string) (Field, error) {
		raw, ok := rec[name]
		if !ok {
			return Field{}, nil
		}
		var f Field
		if err := f.UnmarshalJSON(raw); err != nil {
			return Field{}, webhook.BadRequest("field %q: %s", name, err.Error())
		}
		f.Value, f.Display = strings.TrimSpace(f.Value), strings.TrimSpace(f.Display)
		return f, nil
	}
	get := func(names ...string) (map[string]Field, error) {
		out := map[string]Field{}
		for _, n := range names {
			f, err := field(n)
			if err != nil {
				return nil, err
			}
			out[n] = f
		}
		return out, nil
	}
	f, err := get("sys_id", "sys_class_name", "state", "opened_at", "resolved_at", "closed_at", "sys_updated_on", "reopen_count")
	if err != nil {
		return webhook.Result{}, err
	}
	if c := f["sys_class_name"].Value; c != "" && c != "incident" {
		return webhook.Result{Ignored: fmt.Sprintf("record of table %q, not incident", c)}, nil
	}
	sysID := f["sys_id"].Value
	if err := webhook.Required("sys_id", sysID); err != nil {
		return webhook.Result{}, err
	}
	state := f["state"]
	if state.Value == "" && state.Display == "" {
		return webhook.Result{}, webhook.BadRequest(`missing required field "state"`)
	}
	updated, err := optionalTime("sys_updated_on", f["sys_updated_on"])
	if err != nil {
		return webhook.Result{}, err
	}
	if p.cfg.MaxAge > 0 {
		// sys_updated_on is inside the signed body: a replayed copy
		// cannot move it.
		if updated.IsZero() {
			return webhook.Result{}, webhook.BadRequest(`missing required field "sys_updated_on" (max_age is set)`)
		}
		if err := webhook.CheckAge("sys_updated_on", updated, req.Received, p.cfg.MaxAge); err != nil {
			return webhook.Result{}, err
		}
	}
	incident := event.SourceServiceNow + "/" + sysID
	ev := event.Event{Source: event.SourceServiceNow, IncidentID: incident}
	if resolvedState(state) {
		ev.Kind = event.IncidentResolved
		at, err := optionalTime("resolved_at", f["resolved_at"])
		if err != nil {
			return webhook.Result{}, err
		}
		if at.IsZero() {
			if at, err = optionalTime("closed_at", f["closed_at"]); err != nil {
				return webhook.Result{}, err
			}
		}
		if at.IsZero() {
			return webhook.Result{}, webhook.BadRequest(`missing required field "resolved_at" (the incident's state is %s)`, stateName(state))
		}
		ev.Time = at
		ev.ID = incident + "/resolved/" + strconv.FormatInt(at.Unix(), 10)
	} else {
		ev.Kind = event.IncidentOpened
		reopened := f["reopen_count"].Value
		if reopened == "" || reopened == "0" {
			// Every update of an open incident sends this same event: one
			// id, counted once.
			if ev.Time, err = requiredTime("opened_at", f["opened_at"]); err != nil {
				return webhook.Result{}, err
			}
			ev.ID = incident + "/opened"
		} else {
			// Reopened: opened again at the update that reopened it; the
			// updates after it keep the id, so only the first counts.
			n, err := strconv.ParseUint(reopened, 10, 32)
			if err != nil {
				return webhook.Result{}, webhook.BadRequest("field %q: %q is not a count", "reopen_count", reopened)
			}
			if updated.IsZero() {
				return webhook.Result{}, webhook.BadRequest(`missing required field "sys_updated_on" (a reopened incident opens again at its update)`)
			}
			ev.Time = updated
			ev.ID = incident + "/reopened/" + strconv.FormatUint(n, 10)
		}
	}
	svc, err := get(p.cfg.ServiceFields...)
	if err != nil {
		return webhook.Result{}, err
	}
	name := p.serviceName(svc)
	if name == "" {
		// Never guessed: an incident without a service counts for no
		// service's deployments.
		return webhook.Result{Ignored: fmt.Sprintf("incident %s names no service: none of %v has a display value or a sys_id mapped in services", sysID, p.cfg.ServiceFields), WithoutService: 1}, nil
	}
	ev.Service = event.Service{Namespace: p.cfg.Namespace, Name: name, Environment: p.cfg.Environment}
	return webhook.Result{Events: []event.Event{ev}}, nil
}

// decodeRecord returns the record's fields, undecoded: the body is the
// record or {"result": record}.
func decodeRecord(body []byte) (map[string]json.RawMessage, error) {
	var rec map[string]json.RawMessage
	if err := webhook.DecodeJSON(body, &rec); err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, webhook.BadRequest("expected a JSON object (the incident record)")
	}
	if inner, ok := rec["result"]; ok {
		if _, hasID := rec["sys_id"]; !hasID {
			var r map[string]json.RawMessage
			if err := json.Unmarshal(inner, &r); err != nil || r == nil {
				return nil, webhook.BadRequest(`field "result": expected the incident record (an object)`)
			}
			return r, nil
		}
	}
	return rec, nil
}

// resolvedState reports whether an incident state ends the incident:
// Resolved (6), Closed (7) or Canceled (8), by value or, when only the
// display value is sent, by name. Every other state, custom ones
// included, is open.
func resolvedState(f Field) bool {
	switch f.Value {
	case "6", "7", "8":
		return true
	case "":
		switch strings.ToLower(f.Display) {
		case "resolved", "closed", "canceled", "cancelled":
			return true
		}
	}
	return false
}

func stateName(f Field) string {
	if f.Display != "" {
		return strconv.Quote(f.Display)
	}
	return strconv.Quote(f.Value)
}

// timeLayouts: ServiceNow's internal date-time form, always UTC (the
// value; a display value is in the user's time zone, so it is not used),
// and RFC 3339 for senders that convert.
var timeLayouts = []string{"2006-01-02 15:04:05", time.RFC3339}

func optionalTime(name string, f Field) (time.Time, error) {
	if f.Value == "" {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, f.Value); err == nil && !t.IsZero() {
			return t.UTC(), nil
		}
	}
	return time.Time{}, webhook.BadRequest(`field %q: %q is not a time (want "2006-01-02 15:04:05", UTC, as the incident table stores it)`, name, f.Value)
}

func requiredTime(name string, f Field) (time.Time, error) {
	if f.Value == "" {
		return time.Time{}, webhook.BadRequest("missing required field %q", name)
	}
	return optionalTime(name, f)
}

// serviceName is the service of the first service field that names one:
// its display value or sys_id mapped by services, else its display value,
// else its value unless it is a sys_id (an unmapped sys_id is no name).
func (p *Provider) serviceName(fields map[string]Field) string {
	for _, name := range p.cfg.ServiceFields {
		f := fields[name]
		for _, k := range []string{f.Display, f.Value} {
			if k == "" {
				continue
			}
			if s, ok := p.cfg.Services[k]; ok {
				return strings.TrimSpace(s)
			}
		}
		if f.Display != "" {
			return f.Display
		}
		if f.Value != "" && !isSysID(f.Value) {
			return f.Value
		}
	}
	return ""
}

// isSysID reports whether v is a sys_id: 32 lower-case hex digits.
func isSysID(v string) bool {
	if len(v) != 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// verify checks "sha256=<HMAC-SHA256 of the body>", base64 or hex, in
// constant time.
func (p *Provider) verify(req *webhook.Request) error {
	header := strings.TrimSpace(req.Header.Get(SignatureHeader))
	if header == "" {
		return webhook.Unauthorized("missing %s header (sha256=<HMAC-SHA256 of the body>, as the business rule computes it)", SignatureHeader)
	}
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return webhook.Unauthorized("%s must start with sha256=", SignatureHeader)
	}
	mac := hmac.New(sha256.New, webhook.Key(p.cfg.Secret))
	mac.Write(req.Body)
	want := mac.Sum(nil)
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != len(want) {
		got, err = base64.StdEncoding.DecodeString(sig)
	}
	if err != nil || !hmac.Equal(got, want) {
		return webhook.Unauthorized("the %s signature does not match the body", SignatureHeader)
	}
	return nil
}

var _ webhook.Provider = (*Provider)(nil)
