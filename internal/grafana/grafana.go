// Package grafana is the source for Grafana alerting's webhook contact
// point (unified alerting, payload version "1"): every alert of a
// notification is an incident, opened when it fires and resolved when it
// resolves, on the service its labels name.
//
// Grafana authenticates its notifications in the ways its contact point
// offers: HTTP basic auth, an Authorization header with a scheme and
// credentials (Bearer by default), and, in newer versions, an HMAC-SHA256
// signature of the body (hmacConfig: X-Grafana-Alerting-Signature, hex,
// optionally over "<timestamp>:<body>" with the timestamp in a header of
// its own). This source checks the token, the signature or both.
package grafana

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Source is the source's name in events, logs and telemetry.
const Source = "grafana"

// DefaultPath is where the contact point's URL points by default.
const DefaultPath = "/webhooks/grafana"

// DefaultSignatureHeader is the header Grafana's hmacConfig signs into when
// its header setting is empty.
const DefaultSignatureHeader = "X-Grafana-Alerting-Signature"

// Config configures the Grafana source.
type Config struct {
	Path string `mapstructure:"path"`
	// Token (TokenConfig) is the contact point's "Authentication Header
	// Credentials" (Authorization: <scheme> <token>) or its basic auth
	// password.
	webhook.TokenConfig `mapstructure:",squash"`
	// Secret is the contact point's HMAC signature secret (hmacConfig).
	Secret configopaque.String `mapstructure:"secret"`
	// SignatureHeader is hmacConfig's header.
	SignatureHeader string `mapstructure:"signature_header"`
	// TimestampHeader is hmacConfig's timestamp header: when set, the
	// signature covers "<timestamp>:<body>" and deliveries without it are
	// refused.
	TimestampHeader string `mapstructure:"timestamp_header"`
	// MaxAge refuses deliveries whose signed timestamp is further than
	// this from their arrival; it needs secret and timestamp_header.
	MaxAge time.Duration `mapstructure:"max_age"`
	// ServiceLabels are the alert labels naming the service, first
	// non-empty wins. Alerts with none of them are not counted.
	ServiceLabels []string `mapstructure:"service_labels"`
	// Services maps a label value to the service name used in the
	// metrics; unmapped values are the name.
	Services map[string]string `mapstructure:"services"`
	// NamespaceLabel names the service's namespace (empty value allowed).
	NamespaceLabel string `mapstructure:"namespace_label"`
	// EnvironmentLabel names the environment; DefaultEnvironment applies
	// when the alert does not carry it.
	EnvironmentLabel   string `mapstructure:"environment_label"`
	DefaultEnvironment string `mapstructure:"default_environment"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		Path:               DefaultPath,
		SignatureHeader:    DefaultSignatureHeader,
		ServiceLabels:      []string{"service", "app", "app_kubernetes_io_name", "job"},
		NamespaceLabel:     "namespace",
		EnvironmentLabel:   "environment",
		DefaultEnvironment: "production",
	}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path: %q must start with /", c.Path))
	}
	if c.Token == "" && c.Secret == "" && !c.InsecureSkipVerify {
		errs = append(errs, errors.New("token or secret: required to authenticate deliveries (the contact point's Authorization header credentials or basic auth password as token, its HMAC signature secret as secret; set insecure_skip_verify: true to accept unauthenticated deliveries)"))
	}
	if c.Secret != "" && len(webhook.Key(c.Secret)) == 0 {
		errs = append(errs, errors.New("secret: is only whitespace (is the secret file empty?)"))
	}
	if c.Secret != "" && strings.TrimSpace(c.SignatureHeader) == "" {
		errs = append(errs, errors.New("signature_header: must not be empty with a secret"))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: %s is negative (0 disables the check)", c.MaxAge))
	}
	if c.MaxAge > 0 && (c.Secret == "" || c.TimestampHeader == "") {
		errs = append(errs, errors.New("max_age: needs secret and timestamp_header (only a signed timestamp tells when a delivery was sent)"))
	}
	if len(c.ServiceLabels) == 0 {
		errs = append(errs, errors.New("service_labels: at least one label name is required"))
	}
	for i, l := range c.ServiceLabels {
		if strings.TrimSpace(l) == "" {
			errs = append(errs, fmt.Errorf("service_labels[%d]: empty label name", i))
		}
	}
	for k, v := range c.Services {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, errors.New("services: empty label value"))
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

// Insecure reports whether deliveries are accepted unauthenticated.
func (c *Config) Insecure() bool { return c.InsecureSkipVerify && c.Token == "" && c.Secret == "" }

// Credential is the configured secret, else the token (its length is
// checked at start).
func (c *Config) Credential() configopaque.String {
	if c.Secret != "" {
		return c.Secret
	}
	return c.Token
}

// Notification is the part of the contact point's body the source uses.
// Each alert carries its own status; the notification's status, state,
// title, message, group labels and the rest are not needed.
type Notification struct {
	Alerts []Alert `json:"alerts"`
}

// Alert is one alert of a notification.
type Alert struct {
	Status   string            `json:"status"`
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	// EndsAt is the zero time ("0001-01-01T00:00:00Z") while it fires.
	EndsAt      time.Time `json:"endsAt"`
	Fingerprint string    `json:"fingerprint"`
}

// Provider implements webhook.Provider for Grafana's webhook contact point.
type Provider struct {
	cfg  Config
	hmac *webhook.HMACSHA256
}

// New returns the provider for cfg.
func New(cfg Config) *Provider {
	p := &Provider{cfg: cfg}
	if cfg.Secret != "" {
		p.hmac = webhook.NewHMACSHA256(cfg.Secret)
	}
	return p
}

func (p *Provider) Name() string { return Source }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// Parse verifies one notification and turns it into an event per alert
// that names a service.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if err := p.authenticate(req); err != nil {
		return webhook.Result{}, err
	}
	var n Notification
	if err := webhook.DecodeJSON(req.Body, &n); err != nil {
		return webhook.Result{}, err
	}
	if n.Alerts == nil {
		return webhook.Result{}, webhook.BadRequest(`missing required field "alerts" (is this a Grafana webhook contact point notification?)`)
	}
	if len(n.Alerts) == 0 {
		return webhook.Result{Ignored: "the notification carries no alerts"}, nil
	}
	var res webhook.Result
	noService := 0
	for i := range n.Alerts {
		ev, ok, err := p.toEvent(&n.Alerts[i])
		if err != nil {
			return webhook.Result{}, webhook.BadRequest("alerts[%d]: %s", i, err.Error())
		}
		if !ok {
			noService++
			continue
		}
		res.Events = append(res.Events, ev)
	}
	if len(res.Events) == 0 {
		res.Ignored = fmt.Sprintf("no usable alert: %d alert(s) carry none of the service labels %v", noService, p.cfg.ServiceLabels)
	}
	res.WithoutService = noService
	return res, nil
}

// authenticate checks what is configured: the token, the signature, or
// both (each one configured must pass).
func (p *Provider) authenticate(req *webhook.Request) error {
	if p.cfg.Token != "" {
		if err := p.cfg.CheckAuthorization(req.Header, "", "set the contact point's Authentication Header Credentials, or its basic auth password, to the token"); err != nil {
			return err
		}
	}
	if p.hmac != nil {
		return p.verifySignature(req)
	}
	return nil
}

// verifySignature checks Grafana's hmacConfig signature: the hex
// HMAC-SHA256 of the body, or of "<timestamp>:<body>" when the timestamp
// header is configured.
func (p *Provider) verifySignature(req *webhook.Request) error {
	sig := strings.TrimSpace(req.Header.Get(p.cfg.SignatureHeader))
	if sig == "" {
		return webhook.Unauthorized("missing %s header (the contact point's HMAC signature; set its secret to this source's secret)", p.cfg.SignatureHeader)
	}
	if p.cfg.TimestampHeader == "" {
		if !p.hmac.Valid(req.Body, sig) {
			return webhook.Unauthorized("the %s signature does not match the body", p.cfg.SignatureHeader)
		}
		return nil
	}
	ts := strings.TrimSpace(req.Header.Get(p.cfg.TimestampHeader))
	if ts == "" {
		return webhook.Unauthorized("missing %s header (the contact point's HMAC timestamp header)", p.cfg.TimestampHeader)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return webhook.Unauthorized("the %s header %q is not Unix seconds", p.cfg.TimestampHeader, ts)
	}
	signed := make([]byte, 0, len(ts)+1+len(req.Body))
	signed = append(append(append(signed, ts...), ':'), req.Body...)
	if !p.hmac.Valid(signed, sig) {
		return webhook.Unauthorized("the %s signature does not match the timestamp and body", p.cfg.SignatureHeader)
	}
	// The timestamp is signed: a replayed copy cannot move it.
	return webhook.CheckAge(p.cfg.TimestampHeader, time.Unix(secs, 0).UTC(), req.Received, p.cfg.MaxAge)
}

func (p *Provider) toEvent(a *Alert) (event.Event, bool, error) {
	var kind event.Kind
	var at time.Time
	switch a.Status {
	case "firing":
		kind, at = event.IncidentOpened, a.StartsAt
	case "resolved":
		kind, at = event.IncidentResolved, a.EndsAt
		if at.IsZero() {
			return event.Event{}, false, errors.New(`resolved alert without "endsAt"`)
		}
	case "":
		return event.Event{}, false, errors.New(`missing required field "status"`)
	default:
		return event.Event{}, false, fmt.Errorf(`field "status": %q is not one of firing, resolved`, a.Status)
	}
	if a.StartsAt.IsZero() {
		return event.Event{}, false, errors.New(`missing required field "startsAt"`)
	}
	fp := strings.TrimSpace(a.Fingerprint)
	if fp == "" {
		return event.Event{}, false, errors.New(`missing required field "fingerprint"`)
	}
	name := ""
	for _, l := range p.cfg.ServiceLabels {
		if v := strings.TrimSpace(a.Labels[l]); v != "" {
			name = v
			break
		}
	}
	if name == "" {
		// Counted apart (the answer says how many), never guessed.
		return event.Event{}, false, nil
	}
	if mapped, ok := p.cfg.Services[name]; ok {
		name = mapped
	}
	env := ""
	if p.cfg.EnvironmentLabel != "" {
		env = strings.TrimSpace(a.Labels[p.cfg.EnvironmentLabel])
	}
	if env == "" {
		env = p.cfg.DefaultEnvironment
	}
	ns := ""
	if p.cfg.NamespaceLabel != "" {
		ns = strings.TrimSpace(a.Labels[p.cfg.NamespaceLabel])
	}
	// A new firing of the same series after it resolved has a new
	// startsAt: a new incident. Repeated notifications of one firing, and
	// Grafana's retries, keep startsAt and so the ids.
	incident := Source + "/" + fp + "/" + strconv.FormatInt(a.StartsAt.Unix(), 10)
	return event.Event{
		Kind:       kind,
		Source:     Source,
		ID:         incident + "/" + a.Status,
		Time:       at.UTC(),
		Service:    event.Service{Namespace: ns, Name: name, Environment: env},
		IncidentID: incident,
	}, true, nil
}

var _ webhook.Provider = (*Provider)(nil)
