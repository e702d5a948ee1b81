// Package generic is the source for an in-house platform API: a documented
// JSON form (schema/generic-event.schema.json) for deployments, changes and
// incidents, signed like GitHub deliveries (X-Signature-256: sha256=HMAC).
//
// A sender that also sets X-Dora-Timestamp (Unix seconds) signs
// "<timestamp>.<body>" instead of the body alone, so the time is covered
// by the signature and max_age can refuse replayed copies.
package generic

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body,
// or of "<timestamp>.<body>" when TimestampHeader is set.
const SignatureHeader = "X-Signature-256"

// TimestampHeader is when the sender signed the delivery, in Unix seconds.
const TimestampHeader = "X-Dora-Timestamp"

// maxUnixSeconds (year 5138) is past any timestamp in seconds a sender
// writes; milliseconds since 1970 passed it in 1973.
const maxUnixSeconds = 100_000_000_000

// Config configures the generic source.
type Config struct {
	Path                 string `mapstructure:"path"`
	webhook.SecretConfig `mapstructure:",squash"`
	// MaxAge refuses deliveries signed (X-Dora-Timestamp) longer ago than
	// this when they arrive, and deliveries without a signed timestamp;
	// 0 disables the check and accepts body-only signatures.
	MaxAge time.Duration `mapstructure:"max_age"`
	// History imports the window's events from the platform's history
	// endpoint when history::endpoint is set (history.go).
	History history.SourceConfig `mapstructure:"history"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config { return Config{Path: "/events", History: history.DefaultSourceConfig()} }

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if err := c.SecretConfig.Check(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: %s is negative (0 disables the check)", c.MaxAge))
	}
	if err := c.History.Validate("history::"); err != nil {
		errs = append(errs, err)
	}
	if c.MaxAge > 0 && c.Secret == "" {
		errs = append(errs, errors.New("max_age: needs a secret (only a signed timestamp can be trusted)"))
	}
	return errors.Join(errs...)
}

// Payload is one event of the generic form. The JSON schema in
// schema/generic-event.schema.json describes the same fields. Encoding
// leaves out the fields that are not set.
type Payload struct {
	Type           string    `json:"type"`
	ID             string    `json:"id"`
	Time           time.Time `json:"time"`
	Service        string    `json:"service,omitzero"`
	Namespace      string    `json:"namespace,omitzero"`
	Environment    string    `json:"environment,omitzero"`
	Repository     string    `json:"repository,omitzero"`
	Status         string    `json:"status,omitzero"`
	DeploymentID   string    `json:"deployment_id,omitzero"`
	Revision       string    `json:"revision,omitzero"`
	ParentRevision string    `json:"parent_revision,omitzero"`
	CommitTime     time.Time `json:"commit_time,omitzero"`
	Reason         string    `json:"reason,omitzero"`
	IncidentID     string    `json:"incident_id,omitzero"`
	State          string    `json:"state,omitzero"`
	Hotfix         bool      `json:"hotfix,omitzero"`
	// PreviousDeploymentID is the deployment a rollback (status
	// rolled_back) abandons.
	PreviousDeploymentID string `json:"previous_deployment_id,omitzero"`
	// Reverts is the revision that Revision reverts (changes, merges and
	// deployments of a revert commit).
	Reverts string `json:"reverts,omitzero"`
	// ChangeID names a pull or merge request across its pr_opened and
	// merge events.
	ChangeID string `json:"change_id,omitzero"`
	// Paths are the files a change's commit touched, relative to the
	// repository root (monorepos: they decide which services it belongs to).
	Paths []string `json:"paths,omitzero"`
}

// Provider implements webhook.Provider for the generic form.
type Provider struct{ cfg Config }

// New returns the provider for cfg.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

func (p *Provider) Name() string { return event.SourceGeneric }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// Parse accepts one event object or an array of them.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		if err := p.verify(req); err != nil {
			return webhook.Result{}, err
		}
	}
	var payloads []Payload
	if trimmed := bytes.TrimSpace(req.Body); len(trimmed) > 0 && trimmed[0] == '[' {
		if err := webhook.DecodeJSON(req.Body, &payloads); err != nil {
			return webhook.Result{}, err
		}
	} else {
		var one Payload
		if err := webhook.DecodeJSON(req.Body, &one); err != nil {
			return webhook.Result{}, err
		}
		payloads = []Payload{one}
	}
	res := webhook.Result{Events: make([]event.Event, 0, len(payloads))}
	for i, pl := range payloads {
		ev, err := pl.toEvent()
		if err != nil {
			if len(payloads) > 1 {
				return webhook.Result{}, webhook.BadRequest("event %d: %v", i, err)
			}
			return webhook.Result{}, err
		}
		res.Events = append(res.Events, ev)
	}
	return res, nil
}

// verify checks the signature, over "<timestamp>.<body>" when the
// delivery has a timestamp, then the timestamp's age. The age is checked
// after the signature so that only the secret's holder learns about it.
func (p *Provider) verify(req *webhook.Request) error {
	sig, ok := strings.CutPrefix(req.Header.Get(SignatureHeader), "sha256=")
	if !ok {
		return webhook.Unauthorized("missing %s header (sha256=<hex HMAC-SHA256 of the body, or of \"<%s>.<body>\">)", SignatureHeader, TimestampHeader)
	}
	stamp := strings.TrimSpace(req.Header.Get(TimestampHeader))
	if stamp == "" {
		if p.cfg.MaxAge > 0 {
			return webhook.Unauthorized("missing %s header: max_age is set, so deliveries must carry their Unix time in %s and sign \"<timestamp>.<body>\"", TimestampHeader, TimestampHeader)
		}
		if !webhook.ValidHMACSHA256(p.cfg.Secret, req.Body, sig) {
			return webhook.Unauthorized("%s does not match the body", SignatureHeader)
		}
		return nil
	}
	if !webhook.ValidHMACSHA256(p.cfg.Secret, SignedContent(stamp, req.Body), sig) {
		return webhook.Unauthorized("%s does not match \"<%s>.<body>\"", SignatureHeader, TimestampHeader)
	}
	secs, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return webhook.BadRequest("%s: %q is not a Unix time in seconds", TimestampHeader, stamp)
	}
	if secs >= maxUnixSeconds || secs <= -maxUnixSeconds {
		// Refused whatever max_age: a sender that writes milliseconds
		// would otherwise go on without replay protection.
		return webhook.BadRequest("%s: %d looks like milliseconds (or finer), not Unix seconds: as seconds it is past the year 5000; send the Unix time in seconds", TimestampHeader, secs)
	}
	return webhook.CheckAge(TimestampHeader, time.Unix(secs, 0).UTC(), req.Received, p.cfg.MaxAge)
}

// SignedContent is what a delivery with a timestamp signs:
// "<timestamp>.<body>".
func SignedContent(timestamp string, body []byte) []byte {
	out := make([]byte, 0, len(timestamp)+1+len(body))
	out = append(out, timestamp...)
	out = append(out, '.')
	return append(out, body...)
}

func (pl *Payload) toEvent() (event.Event, error) {
	if err := webhook.Required("type", pl.Type, "id", pl.ID); err != nil {
		return event.Event{}, err
	}
	if pl.Time.IsZero() {
		return event.Event{}, webhook.BadRequest(`missing required field "time" (RFC 3339)`)
	}
	ev := event.Event{
		Source:       event.SourceGeneric,
		ID:           pl.ID,
		Time:         pl.Time,
		Service:      event.Service{Namespace: pl.Namespace, Name: pl.Service, Environment: pl.Environment},
		Repository:   pl.Repository,
		DeploymentID: pl.DeploymentID,
		Revision:     strings.ToLower(pl.Revision),
		CommitTime:   pl.CommitTime,
		Reason:       pl.Reason,
		IncidentID:   pl.IncidentID,
		Hotfix:       pl.Hotfix,
		Reverts:      strings.ToLower(pl.Reverts),
		ChangeID:     pl.ChangeID,
		Paths:        pl.Paths,
	}
	switch pl.Type {
	case "deployment":
		if pl.Service == "" && pl.Repository == "" {
			return ev, webhook.BadRequest(`deployment: one of "service" or "repository" is required`)
		}
		if err := webhook.Required("environment", pl.Environment, "status", pl.Status); err != nil {
			return ev, err
		}
		if ev.DeploymentID == "" && ev.Revision == "" {
			return ev, webhook.BadRequest(`deployment: one of "deployment_id" or "revision" is required`)
		}
		switch pl.Status {
		case "started":
			ev.Kind = event.DeploymentStarted
		case "success":
			ev.Kind = event.DeploymentSucceeded
		case "failure":
			ev.Kind = event.DeploymentFailed
		case "rolled_back":
			ev.Kind = event.DeploymentRolledBack
			ev.PreviousDeploymentID = pl.PreviousDeploymentID
		default:
			return ev, webhook.BadRequest(`field "status": %q is not one of started, success, failure, rolled_back`, pl.Status)
		}
	case "change":
		if err := webhook.Required("revision", pl.Revision); err != nil {
			return ev, err
		}
		ev.Kind = event.ChangeCommitted
		ev.ParentRevision = strings.ToLower(pl.ParentRevision)
	case "merge":
		if err := webhook.Required("revision", pl.Revision); err != nil {
			return ev, err
		}
		ev.Kind = event.ChangeMerged
	case "pr_opened":
		if err := webhook.Required("change_id", pl.ChangeID); err != nil {
			return ev, err
		}
		ev.Kind = event.ChangeOpened
	case "incident":
		if pl.Service == "" && pl.Repository == "" {
			return ev, webhook.BadRequest(`incident: one of "service" or "repository" is required`)
		}
		if err := webhook.Required("incident_id", pl.IncidentID); err != nil {
			return ev, err
		}
		if ev.Service.Environment == "" {
			// Incidents are about production unless they say otherwise, as
			// in the other incident sources.
			ev.Service.Environment = "production"
		}
		switch pl.State {
		case "opened":
			ev.Kind = event.IncidentOpened
		case "resolved":
			ev.Kind = event.IncidentResolved
		default:
			return ev, webhook.BadRequest(`field "state": %q is not one of opened, resolved`, pl.State)
		}
	default:
		return ev, webhook.BadRequest(`field "type": %q is not one of deployment, change, merge, pr_opened, incident`, pl.Type)
	}
	return ev, nil
}

var _ webhook.Provider = (*Provider)(nil)
