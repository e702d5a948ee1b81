// Package argocd is the source for Argo CD notifications: the webhook
// service of argocd-notifications posts the body a template renders, and
// this source defines that body (docs/sources/argocd.md and
// testdata/argocd-notifications-cm.yaml hold the argocd-notifications-cm
// snippet that renders it).
//
// A successful sync is a successful deployment; a failed sync, and an
// application that turns Degraded right after a successful sync, are a
// failed deployment (the latter for the same deployment id, so that the
// engine counts the deployment once and its failure once).
//
// Argo CD does not sign webhook bodies; its webhook service sends the
// configured headers, so deliveries carry "Authorization: Bearer <token>",
// checked in constant time against the configured token.
package argocd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// DefaultPath is the URL path the source listens on unless configured.
const DefaultPath = "/webhooks/argocd"

// The values of the body's "event" field, one per template.
const (
	EventSyncSucceeded  = "sync-succeeded"
	EventSyncFailed     = "sync-failed"
	EventHealthDegraded = "health-degraded"
)

// Failure reasons of the events this source emits.
const (
	ReasonSyncFailed     = "SyncFailed"
	ReasonHealthDegraded = "HealthDegraded"
)

// Config configures the Argo CD source.
type Config struct {
	// Path is the URL path of service.webhook.dora's url.
	Path string `mapstructure:"path"`
	// Token (TokenConfig) is the bearer token the webhook service sends in its
	// Authorization header. Required unless insecure_skip_verify.
	webhook.TokenConfig `mapstructure:",squash"`
	// DefaultEnvironment applies when the application has no environment
	// label (the body's "environment" is empty).
	DefaultEnvironment string `mapstructure:"default_environment"`
	// History imports the Applications' status.history (history.go).
	History HistoryConfig `mapstructure:"history"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, DefaultEnvironment: "production", History: DefaultHistoryConfig()}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path: %q must start with /", c.Path))
	}
	if err := c.TokenConfig.Check("the bearer token of service.webhook.dora's Authorization header"); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.DefaultEnvironment) == "" {
		errs = append(errs, errors.New("default_environment: must not be empty"))
	}
	if err := c.History.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("history::%w", err))
	}
	return errors.Join(errs...)
}

// Payload is the body rendered by the app-*-dora templates. Every field is
// a string: the templates render absent values as null (toJson), and
// hand-written templates may render them as Go's "<no value>"; both read
// as empty.
type Payload struct {
	Event       string `json:"event"`
	App         string `json:"app"`
	Namespace   string `json:"namespace"`
	Project     string `json:"project"`
	Revision    string `json:"revision"`
	Repo        string `json:"repo"`
	Environment string `json:"environment"`
	Phase       string `json:"phase"`
	StartedAt   string `json:"startedAt"`
	FinishedAt  string `json:"finishedAt"`
	Health      string `json:"health"`
	// HealthChangedAt is when the health status last changed: for
	// health-degraded, when the application degraded.
	HealthChangedAt string `json:"healthChangedAt"`
	Message         string `json:"message"`
}

// Provider implements webhook.Provider for Argo CD notifications.
type Provider struct{ cfg Config }

// New returns the provider for cfg.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

func (p *Provider) Name() string { return event.SourceArgoCD }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// ContentTypeHint is added to the 415 answer: Argo CD's webhook service
// sends no Content-Type unless its headers name one.
func (p *Provider) ContentTypeHint() string {
	return "add the header Content-Type: application/json to the webhook service's headers (service.webhook.<name> in argocd-notifications-cm)"
}

// Parse turns one notification into one deployment event.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		token := webhook.BearerToken(req.Header.Get("Authorization"))
		if token == "" {
			return webhook.Result{}, webhook.Unauthorized("missing Authorization: Bearer <token> header (set it in service.webhook.dora's headers)")
		}
		if !p.cfg.Equal(token) {
			return webhook.Result{}, webhook.Unauthorized("the bearer token does not match the configured token")
		}
	}
	var pl Payload
	if err := webhook.DecodeJSON(req.Body, &pl); err != nil {
		return webhook.Result{}, err
	}
	pl.clean()
	ev, err := p.toEvent(&pl)
	if err != nil {
		return webhook.Result{}, err
	}
	return webhook.Result{Events: []event.Event{ev}}, nil
}

// clean trims every field and empties the placeholders of absent values.
func (pl *Payload) clean() {
	for _, f := range []*string{&pl.Event, &pl.App, &pl.Namespace, &pl.Project, &pl.Revision, &pl.Repo,
		&pl.Environment, &pl.Phase, &pl.StartedAt, &pl.FinishedAt, &pl.Health, &pl.HealthChangedAt, &pl.Message} {
		*f = strings.TrimSpace(*f)
		if *f == "<no value>" || *f == "<nil>" || *f == "null" {
			*f = ""
		}
	}
}

func (p *Provider) toEvent(pl *Payload) (event.Event, error) {
	if err := webhook.Required("event", pl.Event, "app", pl.App, "startedAt", pl.StartedAt); err != nil {
		return event.Event{}, err
	}
	started, err := parseTime("startedAt", pl.StartedAt)
	if err != nil {
		return event.Event{}, err
	}
	finished, err := parseTime("finishedAt", pl.FinishedAt)
	if err != nil {
		return event.Event{}, err
	}
	healthChanged, err := parseTime("healthChangedAt", pl.HealthChangedAt)
	if err != nil {
		return event.Event{}, err
	}

	ev := event.Event{
		Source:  event.SourceArgoCD,
		Service: event.Service{Namespace: pl.Namespace, Name: pl.App, Environment: pl.Environment},
	}
	if ev.Service.Environment == "" {
		ev.Service.Environment = p.cfg.DefaultEnvironment
	}
	rev := strings.ToLower(pl.Revision)
	if isCommitSHA(rev) {
		ev.Revision = rev
		// Git sources only: a Helm chart source's revision is a chart
		// version and its repoURL a chart repository.
		ev.Repository = repositoryFromURL(pl.Repo)
	}

	switch pl.Event {
	case EventSyncSucceeded:
		if pl.Phase != "" && pl.Phase != "Succeeded" {
			return ev, webhook.BadRequest(`field "phase": %q contradicts event %q (expected Succeeded; check the trigger that sends app-sync-succeeded-dora)`, pl.Phase, pl.Event)
		}
		ev.Kind = event.DeploymentSucceeded
	case EventSyncFailed:
		if pl.Phase != "" && pl.Phase != "Failed" && pl.Phase != "Error" {
			return ev, webhook.BadRequest(`field "phase": %q contradicts event %q (expected Failed or Error; check the trigger that sends app-sync-failed-dora)`, pl.Phase, pl.Event)
		}
		ev.Kind = event.DeploymentFailed
		ev.Reason = ReasonSyncFailed
	case EventHealthDegraded:
		if pl.Health != "" && pl.Health != "Degraded" {
			return ev, webhook.BadRequest(`field "health": %q contradicts event %q (expected Degraded; check the trigger that sends app-health-degraded-dora)`, pl.Health, pl.Event)
		}
		ev.Kind = event.DeploymentFailed
		ev.Reason = ReasonHealthDegraded
	default:
		return ev, webhook.BadRequest(`field "event": %q is not one of %s, %s, %s`, pl.Event, EventSyncSucceeded, EventSyncFailed, EventHealthDegraded)
	}

	ev.DeploymentID = deploymentID(pl.App, rev, pl.StartedAt)
	ev.ID = ev.DeploymentID + "/" + pl.Event
	switch {
	case pl.Event == EventHealthDegraded && !healthChanged.IsZero() && !healthChanged.Before(finished) && !healthChanged.Before(started):
		// When it degraded: after the sync, so that the engine sees the
		// deployment succeed before it fails, whatever the delivery order.
		ev.Time = healthChanged
	case !finished.IsZero():
		ev.Time = finished
	default: // startedAt is required
		ev.Time = started
	}
	return ev, nil
}

// deploymentID names one sync operation: its revision (lower case, empty
// for a multi-source application) and start time, as the notification
// renders them (operationState.startedAt, RFC 3339 in UTC), identify it in
// every notification about it and in the Application's history.
func deploymentID(app, rev, startedAt string) string {
	if rev == "" {
		return "argocd/" + app + "/" + startedAt
	}
	return "argocd/" + app + "/" + rev + "/" + startedAt
}

// parseTime parses an RFC 3339 time; empty is the zero time.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, webhook.BadRequest("field %q: %q is not an RFC 3339 time", field, s)
	}
	return t, nil
}

// isCommitSHA reports whether s is a full lower-case hex SHA-1 or SHA-256.
func isCommitSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// repositoryFromURL returns the repository's full name ("org/repo",
// "group/sub/project") from a Git URL in any of its forms:
// https://host/org/repo.git, ssh://git@host:22/org/repo.git,
// git@host:org/repo.git. It returns "" when there is no path.
func repositoryFromURL(u string) string {
	u = strings.TrimSpace(u)
	if u == "" {
		return ""
	}
	if i := strings.Index(u, "://"); i >= 0 {
		if scheme := strings.ToLower(u[:i]); scheme == "oci" {
			return "" // a Helm OCI registry, not a Git repository
		}
		u = u[i+3:]
		// host[:port]/path
		j := strings.IndexByte(u, '/')
		if j < 0 {
			return ""
		}
		u = u[j+1:]
	} else if at := strings.IndexByte(u, '@'); at >= 0 && strings.IndexByte(u[at:], ':') > 0 {
		// scp-like: git@host:org/repo.git
		u = u[at+1:]
		u = u[strings.IndexByte(u, ':')+1:]
	} else if j := strings.IndexByte(u, '/'); j >= 0 {
		// host/org/repo without a scheme
		u = u[j+1:]
	} else {
		return ""
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	u = strings.Trim(u, "/")
	u = strings.TrimSuffix(u, ".git")
	u = strings.Trim(u, "/")
	return u
}

var _ webhook.Provider = (*Provider)(nil)
