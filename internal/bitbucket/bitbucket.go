// Package bitbucket is the source for Bitbucket Cloud repository webhooks:
// pushes (changes committed, and the merges Bitbucket commits for pull
// requests), fulfilled (merged) pull requests, and the commit statuses of
// deployment pipelines (Bitbucket Pipelines, or any tool that reports a
// build status) as deployments with their outcome.
//
// Deliveries are verified with X-Hub-Signature ("sha256=" and the hex
// HMAC-SHA256 of the body under the webhook's secret). Event IDs are built
// from X-Request-UUID, which Bitbucket keeps when it retries a delivery
// (X-Attempt-Number counts the attempts), so a retried event is counted
// once.
package bitbucket

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Delivery headers set by Bitbucket Cloud.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
	SignatureHeader = "X-Hub-Signature"
	// EventHeader names the event (repo:push, pullrequest:fulfilled, ...).
	EventHeader = "X-Event-Key"
	// DeliveryHeader is the request's UUID; a retry keeps it.
	DeliveryHeader = "X-Request-UUID"
)

var (
	eventKey    = http.CanonicalHeaderKey(EventHeader)
	deliveryKey = http.CanonicalHeaderKey(DeliveryHeader)
	signatureKy = http.CanonicalHeaderKey(SignatureHeader)
)

// DefaultPath is the URL path the source listens on unless configured.
const DefaultPath = "/webhooks/bitbucket"

// Config configures the Bitbucket Cloud source.
type Config struct {
	// Path is the URL path Bitbucket posts to.
	Path string `mapstructure:"path"`
	// Secret is the webhook's secret; required unless insecure_skip_verify.
	webhook.SecretConfig `mapstructure:",squash"`
	// DeploymentStatuses are shell globs on a commit status's key or name
	// ("Pipeline #* for main", "deploy-*"): a matching commit status is a
	// deployment, and its state its outcome. Empty: commit statuses are
	// ignored.
	DeploymentStatuses []string `mapstructure:"deployment_statuses"`
	// DeploymentEnvironment is the environment of those deployments (a
	// commit status does not name one).
	DeploymentEnvironment string `mapstructure:"deployment_environment"`
	// Reverts and hotfixes in pushes and fulfilled pull requests:
	// revert_patterns, hotfix_labels (unused: Bitbucket has no labels),
	// hotfix_branches.
	gitpush.ChangeSignalsConfig `mapstructure:",squash"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		Path:                  DefaultPath,
		DeploymentEnvironment: "production",
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
	if err := c.SecretConfig.Check(); err != nil {
		errs = append(errs, err)
	}
	for i, s := range c.DeploymentStatuses {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, fmt.Errorf("deployment_statuses[%d]: empty pattern", i))
		} else if _, err := path.Match(s, ""); err != nil {
			errs = append(errs, fmt.Errorf("deployment_statuses[%d]: %q is not a valid pattern: %w", i, s, err))
		}
	}
	if strings.TrimSpace(c.DeploymentEnvironment) == "" {
		errs = append(errs, errors.New("deployment_environment: must not be empty"))
	}
	if err := c.ChangeSignalsConfig.Check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Provider implements webhook.Provider for Bitbucket Cloud webhooks.
type Provider struct {
	cfg     Config
	mac     *webhook.HMACSHA256
	signals gitpush.ChangeSignals
}

// New returns the provider for cfg. cfg should have passed Validate.
func New(cfg Config) *Provider {
	return &Provider{cfg: cfg, mac: webhook.NewHMACSHA256(cfg.Secret), signals: gitpush.NewChangeSignals(cfg.ChangeSignalsConfig)}
}

func (p *Provider) Name() string { return event.SourceBitbucket }

// ContentTypes accepts JSON, the only type Bitbucket Cloud sends.
func (p *Provider) ContentTypes() []string { return contentTypes }

var contentTypes = []string{"application/json"}

// delivery is one verified delivery: its request UUID and its body.
type delivery struct {
	id   string
	body []byte
}

// Parse verifies one delivery and turns it into events.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if err := p.verify(req); err != nil {
		return webhook.Result{}, err
	}
	kind := strings.TrimSpace(req.Header.Get(eventKey))
	if kind == "" {
		return webhook.Result{}, webhook.BadRequest("missing %s header", EventHeader)
	}
	id := strings.TrimSpace(req.Header.Get(deliveryKey))
	if id == "" {
		return webhook.Result{}, webhook.BadRequest("missing %s header", DeliveryHeader)
	}
	if len(id) > maxDeliveryID {
		return webhook.Result{}, webhook.BadRequest("%s: %d bytes, above the limit of %d", DeliveryHeader, len(id), maxDeliveryID)
	}
	d := delivery{id: id, body: req.Body}
	switch kind {
	case "repo:push":
		return p.push(d)
	case "pullrequest:fulfilled":
		return p.pullRequestFulfilled(d)
	case "repo:commit_status_created", "repo:commit_status_updated":
		return p.commitStatus(d)
	default:
		return webhook.Result{Ignored: fmt.Sprintf("Bitbucket event %q is not used", kind)}, nil
	}
}

// maxDeliveryID bounds X-Request-UUID (a UUID is 36 bytes): the event IDs
// are built from it.
const maxDeliveryID = 128

// verify checks X-Hub-Signature unless verification is off.
func (p *Provider) verify(req *webhook.Request) error {
	if !p.cfg.Verify() {
		return nil
	}
	header := req.Header.Get(signatureKy)
	if header == "" {
		return webhook.Unauthorized("missing %s header (sha256=<hex HMAC-SHA256 of the body>); set the webhook's Secret in Bitbucket", SignatureHeader)
	}
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return webhook.Unauthorized("%s must start with sha256=", SignatureHeader)
	}
	if !p.mac.Valid(req.Body, sig) {
		return webhook.Unauthorized("%s does not match the body; check that the webhook's secret equals the configured secret", SignatureHeader)
	}
	return nil
}

// changeID names a pull request as ChangeMerged and RevertsChange do.
func changeID(repo string, number int64) string {
	return "bitbucket/" + repo + "/pull/" + strconv.FormatInt(number, 10)
}

// isDeploymentStatus reports whether a commit status is one of the
// configured deployment statuses.
func (p *Provider) isDeploymentStatus(key, name string) bool {
	for _, pattern := range p.cfg.DeploymentStatuses {
		for _, candidate := range []string{key, name} {
			if candidate == "" {
				continue
			}
			if ok, _ := path.Match(pattern, candidate); ok {
				return true
			}
		}
	}
	return false
}

var _ webhook.Provider = (*Provider)(nil)
