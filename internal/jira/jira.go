// Package jira is the source for Jira Cloud and Jira Service Management
// issue webhooks (admin webhooks with a secret): an incident issue (of an
// incident issue type, or with an incident label) opens an incident when
// it is created and resolves it when it is resolved (its status category
// becomes Done or a resolution is set); clearing the resolution reopens it.
//
// Jira Cloud signs deliveries of webhooks that have a secret with
// X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>.
package jira

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// DefaultPath is where the webhook's URL points by default.
const DefaultPath = "/webhooks/jira"

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>".
const SignatureHeader = "X-Hub-Signature"

// Webhook events that count; every other one is answered 200 and ignored.
const (
	EventCreated = "jira:issue_created"
	EventUpdated = "jira:issue_updated"
)

// Config configures the Jira source.
type Config struct {
	Path string `mapstructure:"path"`
	// Secret is the webhook's secret (Jira signs with it).
	webhook.SecretConfig `mapstructure:",squash"`
	// IssueTypes and Labels make an issue an incident: an issue of one of
	// the types, or carrying one of the labels (case-insensitive).
	IssueTypes []string `mapstructure:"issue_types"`
	Labels     []string `mapstructure:"labels"`
	// ServiceFields name the service, first usable one wins: "components"
	// (the first component's name), "project" (the project key), "labels"
	// (a label starting with ServiceLabelPrefix, the rest is the name), or
	// a custom field id ("customfield_10050": a text, a select option's
	// value or an object's name).
	ServiceFields      []string `mapstructure:"service_fields"`
	ServiceLabelPrefix string   `mapstructure:"service_label_prefix"`
	// Services maps what a service field gives to the service name used in
	// the metrics; unmapped values are the name.
	Services map[string]string `mapstructure:"services"`
	// Namespace and Environment are set on every incident.
	Namespace   string `mapstructure:"namespace"`
	Environment string `mapstructure:"environment"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		Path: DefaultPath,
		// Jira Service Management names its incident type "[System]
		// Incident" in IT service management projects.
		IssueTypes:         []string{"Incident", "[System] Incident"},
		Labels:             []string{"incident"},
		ServiceFields:      []string{"labels", "components"},
		ServiceLabelPrefix: "service:",
		Environment:        "production",
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
	if len(c.IssueTypes) == 0 && len(c.Labels) == 0 {
		errs = append(errs, errors.New("issue_types, labels: at least one issue type or label must make an issue an incident"))
	}
	for i, v := range c.IssueTypes {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("issue_types[%d]: empty issue type", i))
		}
	}
	for i, v := range c.Labels {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("labels[%d]: empty label", i))
		}
	}
	if len(c.ServiceFields) == 0 {
		errs = append(errs, errors.New("service_fields: at least one field is required"))
	}
	for i, f := range c.ServiceFields {
		switch {
		case f == "components", f == "project", strings.HasPrefix(f, "customfield_") && len(f) > len("customfield_"):
		case f == "labels":
			if strings.TrimSpace(c.ServiceLabelPrefix) == "" {
				errs = append(errs, errors.New("service_label_prefix: required when service_fields has labels"))
			}
		default:
			errs = append(errs, fmt.Errorf("service_fields[%d]: %q is not components, project, labels or a customfield_ id", i, f))
		}
	}
	if strings.TrimSpace(c.Environment) == "" {
		errs = append(errs, errors.New("environment: must not be empty"))
	}
	for k, v := range c.Services {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, errors.New("services: empty Jira value"))
		}
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("services[%s]: empty service name", k))
		}
	}
	return errors.Join(errs...)
}

// Delivery is the part of an issue webhook the source uses.
type Delivery struct {
	WebhookEvent string     `json:"webhookEvent"`
	Timestamp    jiraTime   `json:"timestamp"`
	Issue        *Issue     `json:"issue"`
	Changelog    *Changelog `json:"changelog"`
}

// Issue is the webhook's issue, in the REST API's shape.
type Issue struct {
	ID     string          `json:"id"`
	Key    string          `json:"key"`
	Fields json.RawMessage `json:"fields"`
}

// Fields are the issue fields the source reads; service custom fields are
// read from the raw fields.
type Fields struct {
	IssueType *named   `json:"issuetype"`
	Labels    []string `json:"labels"`
	Status    *struct {
		Name           string `json:"name"`
		StatusCategory *struct {
			Key string `json:"key"`
		} `json:"statusCategory"`
	} `json:"status"`
	Resolution     *named   `json:"resolution"`
	ResolutionDate jiraTime `json:"resolutiondate"`
	Created        jiraTime `json:"created"`
	Components     []named  `json:"components"`
	Project        *struct {
		Key string `json:"key"`
	} `json:"project"`
}

type named struct {
	Name string `json:"name"`
}

// Changelog says what an update changed.
type Changelog struct {
	Items []ChangeItem `json:"items"`
}

// ChangeItem is one changed field.
type ChangeItem struct {
	Field string  `json:"field"`
	From  *string `json:"from"`
	To    *string `json:"to"`
}

// jiraTime is a time as Jira writes it: "2009-12-16T23:46:10.612-0600" in
// issue fields, milliseconds since the epoch in Cloud's timestamp. It is
// kept as sent and read by parse, whose errors name the field.
type jiraTime struct{ raw []byte }

func (t *jiraTime) UnmarshalJSON(b []byte) error {
	t.raw = append(t.raw[:0], bytes.TrimSpace(b)...)
	return nil
}

var timeLayouts = []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700", time.RFC3339Nano}

// parse returns the time, the zero time when absent or null.
func (t jiraTime) parse(field string) (time.Time, error) {
	b := t.raw
	if len(b) == 0 || string(b) == "null" {
		return time.Time{}, nil
	}
	if b[0] != '"' {
		ms, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil || ms <= 0 || ms > 1<<50 {
			return time.Time{}, webhook.BadRequest(`field %q: %.40s is not a time (want milliseconds since the epoch or "2006-01-02T15:04:05.000-0700")`, field, b)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return time.Time{}, webhook.BadRequest("field %q: %v", field, err)
	}
	if s == "" {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if v, err := time.Parse(l, s); err == nil && !v.IsZero() {
			return v.UTC(), nil
		}
	}
	return time.Time{}, webhook.BadRequest(`field %q: %q is not a time (want "2006-01-02T15:04:05.000-0700")`, field, s)
}

// Provider implements webhook.Provider for Jira.
type Provider struct{ cfg Config }

// New returns the provider for cfg.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

func (p *Provider) Name() string { return event.SourceJira }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// Parse verifies and decodes one delivery.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		if err := p.verify(req); err != nil {
			return webhook.Result{}, err
		}
	}
	var d Delivery
	if err := decode(req.Body, &d, ""); err != nil {
		return webhook.Result{}, err
	}
	if err := webhook.Required("webhookEvent", d.WebhookEvent); err != nil {
		return webhook.Result{}, err
	}
	if d.WebhookEvent != EventCreated && d.WebhookEvent != EventUpdated {
		return webhook.Result{Ignored: fmt.Sprintf("webhook event %q is not counted (only %s and %s are)", d.WebhookEvent, EventCreated, EventUpdated)}, nil
	}
	if d.Issue == nil {
		return webhook.Result{}, webhook.BadRequest(`missing required field "issue"`)
	}
	if err := webhook.Required("issue.id", d.Issue.ID); err != nil {
		return webhook.Result{}, err
	}
	if len(d.Issue.Fields) == 0 || d.Issue.Fields[0] != '{' {
		return webhook.Result{}, webhook.BadRequest(`missing required field "issue.fields" (an object; is "Exclude body" set on the webhook?)`)
	}
	var f Fields
	if err := decode(d.Issue.Fields, &f, "issue.fields"); err != nil {
		return webhook.Result{}, err
	}
	if !p.isIncident(&f) {
		return webhook.Result{Ignored: fmt.Sprintf("issue %s is not an incident: not of type %v, without the labels %v", d.Issue.Key, p.cfg.IssueTypes, p.cfg.Labels)}, nil
	}
	incident := event.SourceJira + "/" + d.Issue.ID
	resolved := f.Resolution != nil || (f.Status != nil && f.Status.StatusCategory != nil && f.Status.StatusCategory.Key == "done")
	var changed []string
	if d.Changelog != nil {
		for _, it := range d.Changelog.Items {
			changed = append(changed, it.Field)
		}
	}
	stamp, err := d.Timestamp.parse("timestamp")
	if err != nil {
		return webhook.Result{}, err
	}
	ev := event.Event{Source: event.SourceJira, IncidentID: incident}
	switch {
	case resolved && (d.WebhookEvent == EventCreated || slices.Contains(changed, "status") || slices.Contains(changed, "resolution")):
		ev.Kind = event.IncidentResolved
		if ev.Time, err = f.ResolutionDate.parse("issue.fields.resolutiondate"); err != nil {
			return webhook.Result{}, err
		}
		if ev.Time.IsZero() {
			ev.Time = stamp
		}
		if ev.Time.IsZero() {
			return webhook.Result{}, webhook.BadRequest(`missing required field "issue.fields.resolutiondate" (or "timestamp")`)
		}
		ev.ID = incident + "/resolved/" + strconv.FormatInt(ev.Time.Unix(), 10)
	case resolved:
		return webhook.Result{Ignored: fmt.Sprintf("update of resolved incident %s that changes neither its status nor its resolution", d.Issue.Key)}, nil
	case p.resolutionCleared(d.Changelog):
		// Reopened: opened again when the resolution was cleared.
		if stamp.IsZero() {
			return webhook.Result{}, webhook.BadRequest(`missing required field "timestamp" (a reopened incident opens again at its update)`)
		}
		ev.Kind, ev.Time = event.IncidentOpened, stamp
		ev.ID = incident + "/reopened/" + strconv.FormatInt(ev.Time.UnixMilli(), 10)
	default:
		// Created, or an update of an open incident (made one by a new
		// type or label, or any other change): opened when created, one
		// id for all of them.
		created, err := f.Created.parse("issue.fields.created")
		if err != nil {
			return webhook.Result{}, err
		}
		if created.IsZero() {
			return webhook.Result{}, webhook.BadRequest(`missing required field "issue.fields.created"`)
		}
		ev.Kind, ev.Time, ev.ID = event.IncidentOpened, created, incident+"/opened"
	}
	name, err := p.serviceName(&f, d.Issue.Fields)
	if err != nil {
		return webhook.Result{}, err
	}
	if name == "" {
		// Never guessed: an incident without a service counts for no
		// service's deployments.
		return webhook.Result{Ignored: fmt.Sprintf("incident %s names no service (service_fields %v)", d.Issue.Key, p.cfg.ServiceFields), WithoutService: 1}, nil
	}
	ev.Service = event.Service{Namespace: p.cfg.Namespace, Name: name, Environment: p.cfg.Environment}
	return webhook.Result{Events: []event.Event{ev}}, nil
}

// decode is webhook.DecodeJSON with the errors of a nested object named
// under its field.
func decode(body []byte, v any, under string) error {
	err := webhook.DecodeJSON(body, v)
	var herr *webhook.Error
	if err != nil && under != "" && errors.As(err, &herr) {
		return webhook.BadRequest("%s: %s", under, herr.Message)
	}
	return err
}

func (p *Provider) isIncident(f *Fields) bool {
	if f.IssueType != nil && slices.ContainsFunc(p.cfg.IssueTypes, func(t string) bool { return strings.EqualFold(t, f.IssueType.Name) }) {
		return true
	}
	for _, l := range f.Labels {
		if slices.ContainsFunc(p.cfg.Labels, func(want string) bool { return strings.EqualFold(want, l) }) {
			return true
		}
	}
	return false
}

// resolutionCleared reports whether the update cleared the resolution
// (what reopening does in Jira's workflows).
func (p *Provider) resolutionCleared(c *Changelog) bool {
	if c == nil {
		return false
	}
	for _, it := range c.Items {
		if it.Field == "resolution" && it.From != nil && *it.From != "" && (it.To == nil || *it.To == "") {
			return true
		}
	}
	return false
}

// serviceName is the first service field's value, mapped by services.
func (p *Provider) serviceName(f *Fields, raw json.RawMessage) (string, error) {
	var custom map[string]json.RawMessage
	for _, field := range p.cfg.ServiceFields {
		v := ""
		switch field {
		case "components":
			for _, c := range f.Components {
				if v = strings.TrimSpace(c.Name); v != "" {
					break
				}
			}
		case "project":
			if f.Project != nil {
				v = strings.TrimSpace(f.Project.Key)
			}
		case "labels":
			for _, l := range f.Labels {
				if rest, ok := strings.CutPrefix(l, p.cfg.ServiceLabelPrefix); ok && strings.TrimSpace(rest) != "" {
					v = strings.TrimSpace(rest)
					break
				}
			}
		default: // a custom field
			if custom == nil {
				if err := json.Unmarshal(raw, &custom); err != nil {
					return "", webhook.BadRequest("issue.fields: %v", err)
				}
			}
			var err error
			if v, err = customValue(custom[field]); err != nil {
				return "", webhook.BadRequest("field %q: %s", "issue.fields."+field, err.Error())
			}
		}
		if v == "" {
			continue
		}
		if s, ok := p.cfg.Services[v]; ok {
			return strings.TrimSpace(s), nil
		}
		return v, nil
	}
	return "", nil
}

// customValue reads a custom field: a text, a select option ({"value"}),
// an object with a name, or the first of a list of them.
func customValue(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return strings.TrimSpace(s), nil
	case '{':
		var o struct {
			Value string `json:"value"`
			Name  string `json:"name"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return "", errors.New(`expected a text, {"value": string} or {"name": string}`)
		}
		if v := strings.TrimSpace(o.Value); v != "" {
			return v, nil
		}
		return strings.TrimSpace(o.Name), nil
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return "", err
		}
		for _, item := range list {
			if len(bytes.TrimSpace(item)) > 0 && bytes.TrimSpace(item)[0] == '[' {
				return "", errors.New("expected a list of texts or options, got a nested list")
			}
			v, err := customValue(item)
			if err != nil || v != "" {
				return v, err
			}
		}
		return "", nil
	}
	return "", errors.New(`expected a text, {"value": string} or {"name": string}`)
}

// verify checks X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>.
func (p *Provider) verify(req *webhook.Request) error {
	header := strings.TrimSpace(req.Header.Get(SignatureHeader))
	if header == "" {
		return webhook.Unauthorized("missing %s header (set a secret on the Jira webhook)", SignatureHeader)
	}
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return webhook.Unauthorized("%s must be sha256=<hex HMAC-SHA256 of the body>", SignatureHeader)
	}
	if !webhook.ValidHMACSHA256(p.cfg.Secret, req.Body, sig) {
		return webhook.Unauthorized("the %s signature does not match the body", SignatureHeader)
	}
	return nil
}

var _ webhook.Provider = (*Provider)(nil)
