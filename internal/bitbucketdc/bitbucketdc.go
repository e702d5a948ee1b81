// Package bitbucketdc is the source for Bitbucket Data Center (Bitbucket
// Server) webhooks: pushes (repo:refs_changed: changes committed) and
// merged pull requests (pr:merged).
//
// Deliveries are verified with X-Hub-Signature ("sha256=" and the hex
// HMAC-SHA256 of the body under the webhook's secret). Event IDs are built
// from X-Request-Id, which a retry keeps; without it (older versions),
// from the SHA-256 of the body, which a retry also keeps.
//
// Commit times: Bitbucket Data Center 8.x and later list the pushed
// commits (at most 100) with their committer timestamps in
// repo:refs_changed, and those are used. Older versions send only each
// ref's fromHash and toHash: the tip commit is then recorded at the time of
// the push (the payload's date, else the delivery's arrival), an
// approximation that shortens lead times by the time between the commit
// and the push, and the commits between fromHash and toHash are not seen.
// docs/sources/bitbucket-dc.md says how to tell.
package bitbucketdc

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Delivery headers set by Bitbucket Data Center.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
	SignatureHeader = "X-Hub-Signature"
	// EventHeader names the event (repo:refs_changed, pr:merged, ...).
	EventHeader = "X-Event-Key"
	// DeliveryHeader is the request's id; a retry keeps it.
	DeliveryHeader = "X-Request-Id"
)

var (
	eventKey     = http.CanonicalHeaderKey(EventHeader)
	deliveryKey  = http.CanonicalHeaderKey(DeliveryHeader)
	signatureKey = http.CanonicalHeaderKey(SignatureHeader)
)

// DefaultPath is the URL path the source listens on unless configured.
const DefaultPath = "/webhooks/bitbucket-dc"

// Config configures the Bitbucket Data Center source.
type Config struct {
	// Path is the URL path Bitbucket posts to.
	Path string `mapstructure:"path"`
	// Secret is the webhook's secret; required unless insecure_skip_verify.
	webhook.SecretConfig `mapstructure:",squash"`
	// MaxAge refuses deliveries whose date (inside the signed body) is
	// more than this before or after their arrival: replay protection. 0
	// (the default) is off.
	MaxAge time.Duration `mapstructure:"max_age"`
	// Reverts and hotfixes in pushes and merged pull requests:
	// revert_patterns, hotfix_branches (hotfix_labels is unused).
	gitpush.ChangeSignalsConfig `mapstructure:",squash"`
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
	if err := c.SecretConfig.Check(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: %s is negative (0 disables the check)", c.MaxAge))
	}
	if c.MaxAge > 0 && c.Secret == "" {
		errs = append(errs, errors.New("max_age: needs secret (the date is trusted only in a signed body)"))
	}
	if err := c.ChangeSignalsConfig.Check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Provider implements webhook.Provider for Bitbucket Data Center webhooks.
type Provider struct {
	cfg     Config
	mac     *webhook.HMACSHA256
	signals gitpush.ChangeSignals
}

// New returns the provider for cfg. cfg should have passed Validate.
func New(cfg Config) *Provider {
	return &Provider{cfg: cfg, mac: webhook.NewHMACSHA256(cfg.Secret), signals: gitpush.NewChangeSignals(cfg.ChangeSignalsConfig)}
}

func (p *Provider) Name() string { return event.SourceBitbucketDC }

// ContentTypes accepts JSON, the only type Bitbucket sends.
func (p *Provider) ContentTypes() []string { return contentTypes }

var contentTypes = []string{"application/json"}

type delivery struct {
	id       string
	body     []byte
	received time.Time
	maxAge   time.Duration
}

// checkAge applies max_age to the payload's date, when it has one.
func (d delivery) checkAge(date []byte) error {
	if d.maxAge <= 0 || len(date) == 0 {
		return nil
	}
	at, err := parseTime("date", date)
	if err != nil {
		return err
	}
	return webhook.CheckAge("date", at, d.received, d.maxAge)
}

// maxDeliveryID bounds X-Request-Id: the event IDs are built from it.
const maxDeliveryID = 128

// Parse verifies one delivery and turns it into events.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if err := p.verify(req); err != nil {
		return webhook.Result{}, err
	}
	kind := strings.TrimSpace(req.Header.Get(eventKey))
	switch kind {
	case "":
		return webhook.Result{}, webhook.BadRequest("missing %s header", EventHeader)
	case "diagnostics:ping":
		return webhook.Result{Ignored: "ping"}, nil
	}
	id := strings.TrimSpace(req.Header.Get(deliveryKey))
	if len(id) > maxDeliveryID {
		return webhook.Result{}, webhook.BadRequest("%s: %d bytes, above the limit of %d", DeliveryHeader, len(id), maxDeliveryID)
	}
	d := delivery{id: id, body: req.Body, received: req.Received, maxAge: p.cfg.MaxAge}
	if d.id == "" {
		// A retry sends the same bytes.
		sum := sha256.Sum256(req.Body)
		d.id = "sha256:" + hex.EncodeToString(sum[:])
	}
	switch kind {
	case "repo:refs_changed":
		return p.refsChanged(d)
	case "pr:merged":
		return p.pullRequestMerged(d)
	default:
		return webhook.Result{Ignored: fmt.Sprintf("Bitbucket Data Center event %q is not used", kind)}, nil
	}
}

// verify checks X-Hub-Signature unless verification is off.
func (p *Provider) verify(req *webhook.Request) error {
	if !p.cfg.Verify() {
		return nil
	}
	header := req.Header.Get(signatureKey)
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
	return "bitbucket_dc/" + repo + "/pull/" + strconv.FormatInt(number, 10)
}

// repoName is a repository as Bitbucket Data Center names it in URLs and
// clone paths: PROJECT/slug.
func repoName(projectKey, slug string) (string, error) {
	if err := webhook.Required("repository.project.key", projectKey, "repository.slug", slug); err != nil {
		return "", err
	}
	return projectKey + "/" + slug, nil
}

// parseTime parses the times of Bitbucket Data Center payloads: ISO 8601
// with a numeric zone without a colon ("2019-03-01T10:37:14+0100"), or RFC
// 3339.
func parseTime(field string, v []byte) (time.Time, error) {
	if len(v) == 0 {
		return time.Time{}, webhook.Required(field, "")
	}
	if t, err := time.Parse("2006-01-02T15:04:05-0700", string(v)); err == nil {
		return t.UTC(), nil
	}
	t, ok := gitpush.ParseRFC3339(v)
	if !ok || t.IsZero() {
		return time.Time{}, webhook.BadRequest("field %q: %q is not an ISO 8601 time", field, v)
	}
	return t.UTC(), nil
}

// millis turns epoch milliseconds into a time; 0 and negative are unset.
func millis(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

var _ webhook.Provider = (*Provider)(nil)
