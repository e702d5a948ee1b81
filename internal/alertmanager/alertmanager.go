// Package alertmanager is the source for Prometheus Alertmanager's webhook
// receiver (webhook_configs, payload version "4"): every alert of a
// notification is an incident, opened when it fires and resolved when it
// resolves.
//
// Alertmanager does not sign its notifications. Its http_config sends an
// Authorization header instead (a bearer token, or basic auth), which this
// source checks in constant time against the configured token.
package alertmanager

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// DefaultPath is where Alertmanager's webhook_configs url points by default.
const DefaultPath = "/webhooks/alertmanager"

// Config configures the Alertmanager source.
type Config struct {
	Path string `mapstructure:"path"`
	// Token (TokenConfig) is what Alertmanager's http_config sends: the credentials of
	// "authorization" (Authorization: Bearer <token>) or the password of
	// "basic_auth". Required unless insecure_skip_verify.
	webhook.TokenConfig `mapstructure:",squash"`
	// ServiceLabels are the alert labels naming the service, first
	// non-empty wins. Alerts with none of them are skipped.
	ServiceLabels []string `mapstructure:"service_labels"`
	// NamespaceLabel names the service's namespace (empty value allowed).
	NamespaceLabel string `mapstructure:"namespace_label"`
	// EnvironmentLabel names the environment; DefaultEnvironment applies
	// when the alert does not carry it.
	EnvironmentLabel   string `mapstructure:"environment_label"`
	DefaultEnvironment string `mapstructure:"default_environment"`
	// Severities, when set, keeps only alerts whose "severity" label is one
	// of them (compared case-insensitively).
	Severities []string `mapstructure:"severities"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		Path:               DefaultPath,
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
	if err := c.TokenConfig.Check("the credentials Alertmanager's http_config sends"); err != nil {
		errs = append(errs, err)
	}
	if len(c.ServiceLabels) == 0 {
		errs = append(errs, errors.New("service_labels: at least one label name is required"))
	}
	for i, l := range c.ServiceLabels {
		if strings.TrimSpace(l) == "" {
			errs = append(errs, fmt.Errorf("service_labels[%d]: empty label name", i))
		}
	}
	if strings.TrimSpace(c.DefaultEnvironment) == "" {
		errs = append(errs, errors.New("default_environment: must not be empty"))
	}
	for i, s := range c.Severities {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, fmt.Errorf("severities[%d]: empty severity", i))
		}
	}
	return errors.Join(errs...)
}

// Notification is the part of Alertmanager's webhook body (version "4")
// that the source uses. Each alert carries its own status, so the
// notification's version, status, groupKey, receiver, groupLabels,
// commonLabels, externalURL and the rest are not needed.
type Notification struct {
	Alerts []Alert `json:"alerts"`
}

// Alert is one alert of a notification.
type Alert struct {
	Status   string            `json:"status"`
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	// EndsAt is the zero time ("0001-01-01T00:00:00Z") while the alert fires.
	EndsAt      time.Time `json:"endsAt"`
	Fingerprint string    `json:"fingerprint"`
}

// Provider implements webhook.Provider for Alertmanager.
type Provider struct{ cfg Config }

// New returns the provider for cfg.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

func (p *Provider) Name() string { return event.SourceAlertmanager }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// Parse turns one notification into an event per usable alert.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		if err := p.authenticate(req.Header.Get("Authorization")); err != nil {
			return webhook.Result{}, err
		}
	}
	var n Notification
	if err := webhook.DecodeJSON(req.Body, &n); err != nil {
		return webhook.Result{}, err
	}
	if n.Alerts == nil {
		return webhook.Result{}, webhook.BadRequest(`missing required field "alerts" (is this an Alertmanager webhook notification?)`)
	}
	if len(n.Alerts) == 0 {
		return webhook.Result{Ignored: "the notification carries no alerts"}, nil
	}
	var res webhook.Result
	var noService, filtered int
	for i := range n.Alerts {
		a := &n.Alerts[i]
		ev, skip, err := p.toEvent(a)
		if err != nil {
			return webhook.Result{}, webhook.BadRequest("alerts[%d]: %s", i, err.Error())
		}
		switch skip {
		case skipNoService:
			noService++
			continue
		case skipSeverity:
			filtered++
			continue
		}
		res.Events = append(res.Events, ev)
	}
	if len(res.Events) == 0 {
		var why []string
		if noService > 0 {
			why = append(why, fmt.Sprintf("%d alert(s) carry none of the service labels %v", noService, p.cfg.ServiceLabels))
		}
		if filtered > 0 {
			why = append(why, fmt.Sprintf("%d alert(s) have a severity outside %v", filtered, p.cfg.Severities))
		}
		res.Ignored = "no usable alert: " + strings.Join(why, "; ")
	}
	res.WithoutService = noService
	return res, nil
}

// authenticate checks the Authorization header Alertmanager's http_config
// sends: "Bearer <token>" (authorization.credentials, or the older
// bearer_token) or "Basic" with the token as password (basic_auth).
func (p *Provider) authenticate(header string) error {
	if header == "" {
		return webhook.Unauthorized("missing Authorization header (configure http_config.authorization.credentials in Alertmanager's webhook_configs)")
	}
	if tok := webhook.BearerToken(header); tok != "" {
		if p.cfg.Equal(tok) {
			return nil
		}
		return webhook.Unauthorized("the bearer token in the Authorization header is not the configured token")
	}
	const basic = "basic "
	if len(header) > len(basic) && strings.EqualFold(header[:len(basic)], basic) {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len(basic):]))
		if err != nil {
			return webhook.Unauthorized("the Authorization header's basic credentials are not base64")
		}
		_, password, ok := strings.Cut(string(raw), ":")
		if ok && p.cfg.Equal(password) {
			return nil
		}
		return webhook.Unauthorized("the basic auth password in the Authorization header is not the configured token")
	}
	return webhook.Unauthorized("the Authorization header is neither Bearer nor Basic")
}

type skipReason int

const (
	keep skipReason = iota
	skipNoService
	skipSeverity
)

func (p *Provider) toEvent(a *Alert) (event.Event, skipReason, error) {
	var kind event.Kind
	var at time.Time
	switch a.Status {
	case "firing":
		kind, at = event.IncidentOpened, a.StartsAt
	case "resolved":
		kind, at = event.IncidentResolved, a.EndsAt
		if at.IsZero() {
			return event.Event{}, keep, errors.New(`resolved alert without "endsAt"`)
		}
	case "":
		return event.Event{}, keep, errors.New(`missing required field "status"`)
	default:
		return event.Event{}, keep, fmt.Errorf(`field "status": %q is not one of firing, resolved`, a.Status)
	}
	if a.StartsAt.IsZero() {
		return event.Event{}, keep, errors.New(`missing required field "startsAt"`)
	}
	if len(a.Labels) == 0 {
		return event.Event{}, keep, errors.New(`missing required field "labels"`)
	}
	if len(p.cfg.Severities) > 0 && !slices.ContainsFunc(p.cfg.Severities, func(s string) bool {
		return strings.EqualFold(s, a.Labels["severity"])
	}) {
		return event.Event{}, skipSeverity, nil
	}
	name := ""
	for _, l := range p.cfg.ServiceLabels {
		if v := strings.TrimSpace(a.Labels[l]); v != "" {
			name = v
			break
		}
	}
	if name == "" {
		return event.Event{}, skipNoService, nil
	}
	env := strings.TrimSpace(a.Labels[p.cfg.EnvironmentLabel])
	if p.cfg.EnvironmentLabel == "" || env == "" {
		env = p.cfg.DefaultEnvironment
	}
	ns := ""
	if p.cfg.NamespaceLabel != "" {
		ns = strings.TrimSpace(a.Labels[p.cfg.NamespaceLabel])
	}
	fp := strings.TrimSpace(a.Fingerprint)
	if fp == "" {
		// Alertmanager always sends it; other senders of this shape may not.
		fp = Fingerprint(a.Labels)
	}
	// A new firing of the same series (after it resolved) has a new
	// startsAt, so it is a new incident; repeated notifications of one
	// firing keep startsAt and so the incident id.
	incident := "alertmanager/" + fp + "/" + strconv.FormatInt(a.StartsAt.Unix(), 10)
	return event.Event{
		Kind:       kind,
		Source:     event.SourceAlertmanager,
		ID:         incident + "/" + a.Status,
		Time:       at,
		Service:    event.Service{Namespace: ns, Name: name, Environment: env},
		IncidentID: incident,
	}, keep, nil
}

// Fingerprint is Alertmanager's (Prometheus') fingerprint of a label set:
// FNV-1a 64 over the labels sorted by name, each name and value followed by
// a 0xff byte, as 16 hex digits. It stands in for a missing "fingerprint".
func Fingerprint(labels map[string]string) string {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
		sep      = 0xff
	)
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	h := uint64(offset64)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= prime64
		}
		h ^= sep
		h *= prime64
	}
	for _, k := range names {
		add(k)
		add(labels[k])
	}
	return fmt.Sprintf("%016x", h)
}

var _ webhook.Provider = (*Provider)(nil)
