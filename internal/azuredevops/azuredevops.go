// Package azuredevops is the source for Azure DevOps service hooks (the
// "Web Hooks" consumer): pushes (git.push: changes committed), completed
// pull requests (git.pullrequest.merged), runs and stages of YAML pipelines
// (ms.vss-pipelines.run-state-changed-event,
// ms.vss-pipelines.stage-state-changed-event) and deployments of classic
// releases (ms.vss-release.deployment-completed-event) as deployments with
// their outcome.
//
// Service hooks sign nothing: a subscription sends either basic
// authentication (a user name and a password) or HTTP headers of one's
// choosing. The source takes the token as the basic-authentication
// password (any user name), or, with header set, as that header's value;
// both are compared in constant time. Event IDs are the notification's id,
// which Azure DevOps keeps when it retries a delivery, so a retried event
// is counted once.
package azuredevops

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// DefaultPath is the URL path the source listens on unless configured.
const DefaultPath = "/webhooks/azuredevops"

// Config configures the Azure DevOps source.
type Config struct {
	// Path is the URL path the service hook posts to.
	Path string `mapstructure:"path"`
	// Token is the basic-authentication password of the subscription (or
	// the value of header); required unless insecure_skip_verify.
	webhook.TokenConfig `mapstructure:",squash"`
	// Header names an HTTP header that carries the token, for
	// subscriptions set up with "HTTP headers" (X-Dora-Token: <token>)
	// instead of basic authentication. Empty: basic authentication only.
	Header string `mapstructure:"header"`
	// Pipelines are the YAML pipelines whose runs or stages are
	// deployments. Classic releases are deployments without configuration.
	Pipelines []PipelineConfig `mapstructure:"pipelines"`
	// Reverts and hotfixes in pushes and completed pull requests:
	// revert_patterns, hotfix_branches (hotfix_labels is unused).
	gitpush.ChangeSignalsConfig `mapstructure:",squash"`
}

// PipelineConfig names a pipeline that deploys.
type PipelineConfig struct {
	// Name is a shell glob on the pipeline's name.
	Name string `mapstructure:"name"`
	// Stages are shell globs on stage names: the matching stages are the
	// deployments (ms.vss-pipelines.stage-state-changed-event). Empty: the
	// whole run is the deployment (ms.vss-pipelines.run-state-changed-event).
	Stages []string `mapstructure:"stages"`
	// Environment is the environment deployed to. Empty: the stage's name
	// (for stages), else production.
	Environment string `mapstructure:"environment"`
	// Repository is the repository the pipeline deploys (project/repo), for
	// the services and teams settings. Empty: the service is the pipeline's
	// name.
	Repository string `mapstructure:"repository"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		Path: DefaultPath,
		ChangeSignalsConfig: gitpush.ChangeSignalsConfig{
			RevertPatterns: []string{gitpush.GitRevertPattern},
		},
	}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path: %q must start with /", c.Path))
	}
	if err := c.TokenConfig.Check("the subscription's basic-authentication password, or the value of header"); err != nil {
		errs = append(errs, err)
	}
	if c.Header != "" && (strings.ContainsAny(c.Header, " :\t\r\n") || strings.EqualFold(c.Header, "Authorization")) {
		errs = append(errs, fmt.Errorf("header: %q is not a header name for a token (Authorization is basic authentication: leave header empty)", c.Header))
	}
	for i, pc := range c.Pipelines {
		if strings.TrimSpace(pc.Name) == "" {
			errs = append(errs, fmt.Errorf("pipelines[%d]::name: must not be empty", i))
		} else if _, err := path.Match(pc.Name, ""); err != nil {
			errs = append(errs, fmt.Errorf("pipelines[%d]::name: %q is not a valid pattern: %w", i, pc.Name, err))
		}
		for j, s := range pc.Stages {
			if _, err := path.Match(s, ""); err != nil || strings.TrimSpace(s) == "" {
				errs = append(errs, fmt.Errorf("pipelines[%d]::stages[%d]: %q is not a valid pattern", i, j, s))
			}
		}
	}
	if err := c.ChangeSignalsConfig.Check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Provider implements webhook.Provider for Azure DevOps service hooks.
type Provider struct {
	cfg       Config
	headerKey string
	signals   gitpush.ChangeSignals
}

// New returns the provider for cfg. cfg should have passed Validate.
func New(cfg Config) *Provider {
	p := &Provider{cfg: cfg, signals: gitpush.NewChangeSignals(cfg.ChangeSignalsConfig)}
	if cfg.Header != "" {
		p.headerKey = http.CanonicalHeaderKey(cfg.Header)
	}
	return p
}

func (p *Provider) Name() string { return event.SourceAzureDevOps }

// ContentTypes accepts JSON; service hooks send application/json with a
// charset.
func (p *Provider) ContentTypes() []string { return contentTypes }

var contentTypes = []string{"application/json"}

var authorizationKey = http.CanonicalHeaderKey("Authorization")

// verify checks the token: in the configured header, or as the password
// of basic authentication.
func (p *Provider) verify(req *webhook.Request) error {
	if !p.cfg.Verify() {
		return nil
	}
	if p.headerKey != "" {
		if v := req.Header.Get(p.headerKey); v != "" {
			if p.cfg.Equal(strings.TrimSpace(v)) {
				return nil
			}
			return webhook.Unauthorized("%s does not match the configured token", p.cfg.Header)
		}
	}
	auth := req.Header.Get(authorizationKey)
	if auth == "" {
		if p.headerKey != "" {
			return webhook.Unauthorized("missing %s header or basic authentication; set it on the service hook subscription", p.cfg.Header)
		}
		return webhook.Unauthorized("missing basic authentication; set the service hook subscription's password to the configured token")
	}
	const prefix = "basic "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return webhook.Unauthorized("Authorization must be Basic (the service hook subscription's user name and password)")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth[len(prefix):]))
	if err != nil {
		return webhook.Unauthorized("Authorization: malformed basic credentials")
	}
	_, password, _ := strings.Cut(string(raw), ":")
	if !p.cfg.Equal(password) {
		return webhook.Unauthorized("the basic-authentication password does not match the configured token")
	}
	return nil
}

// envelope is what every service hook notification carries.
type envelope struct {
	id        string
	eventType string
	created   []byte
	project   string // resourceContainers.project.id
}

// maxNotificationID bounds the notification id: event IDs are built from it.
const maxNotificationID = 128

// readEnvelope reads the notification's id, type, time and project
// without decoding its resource.
func readEnvelope(s *jsonscan.Scanner, body []byte) (envelope, error) {
	var e envelope
	s.Reset(body)
	if s.Object("") {
		for s.NextKey() {
			switch {
			case s.KeyIs("id"):
				e.id = s.String("id")
			case s.KeyIs("eventType"):
				e.eventType = s.String("eventType")
			case s.KeyIs("createdDate"):
				e.created, _ = s.StringBytes("createdDate")
			case s.KeyIs("resourceContainers"):
				if s.Object("resourceContainers") {
					for s.NextKey() {
						if !s.KeyIs("project") {
							s.Skip()
							continue
						}
						if s.Object("resourceContainers.project") {
							for s.NextKey() {
								if s.KeyIs("id") {
									e.project = s.String("resourceContainers.project.id")
								} else {
									s.Skip()
								}
							}
						}
					}
				}
			default:
				s.Skip()
			}
		}
	}
	if err := s.Err(); err != nil {
		return e, err
	}
	if err := webhook.Required("eventType", e.eventType, "id", e.id); err != nil {
		return e, err
	}
	if len(e.id) > maxNotificationID {
		return e, webhook.BadRequest("field %q: %d bytes, above the limit of %d", "id", len(e.id), maxNotificationID)
	}
	return e, nil
}

// Parse verifies one delivery and turns it into events.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if err := p.verify(req); err != nil {
		return webhook.Result{}, err
	}
	ps := pushScratchPool.Get().(*pushScratch)
	defer ps.release()
	env, err := readEnvelope(&ps.scan, req.Body)
	if err != nil {
		return webhook.Result{}, err
	}
	switch env.eventType {
	case "git.push":
		return p.push(ps, env, req.Body)
	case "git.pullrequest.merged":
		return p.pullRequestMerged(env, req.Body)
	case "ms.vss-pipelines.run-state-changed-event":
		return p.runStateChanged(env, req.Body)
	case "ms.vss-pipelines.stage-state-changed-event":
		return p.stageStateChanged(env, req.Body)
	case "ms.vss-release.deployment-completed-event":
		return p.releaseDeploymentCompleted(env, req.Body)
	default:
		return webhook.Result{Ignored: fmt.Sprintf("Azure DevOps event %q is not used", env.eventType)}, nil
	}
}

// changeID names a pull request as ChangeMerged and RevertsChange do.
func changeID(repo string, number int64) string {
	return "azure_devops/" + repo + "/pullrequest/" + strconv.FormatInt(number, 10)
}

// parseTime parses Azure DevOps times (RFC 3339 with up to 7 fractional
// digits), into UTC.
func parseTime(field string, v []byte) (time.Time, error) {
	if len(v) == 0 {
		return time.Time{}, webhook.Required(field, "")
	}
	t, ok := gitpush.ParseRFC3339(v)
	if !ok || t.IsZero() {
		return time.Time{}, webhook.BadRequest("field %q: %q is not an RFC 3339 time", field, v)
	}
	return t.UTC(), nil
}

var _ webhook.Provider = (*Provider)(nil)
