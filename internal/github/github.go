// Package github is the source for GitHub repository and organization
// webhooks: pushes (changes committed), merged pull requests, deployments
// and their statuses, completed runs of deployment workflows, and issues
// labelled as incidents.
//
// Deliveries are verified with X-Hub-Signature-256 (HMAC-SHA256 of the body
// under the webhook secret); the SHA-1 X-Hub-Signature is never accepted.
// Event IDs are built from X-GitHub-Delivery, which GitHub keeps on a
// redelivery, so a redelivered event is counted once.
package github

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

// Delivery headers set by GitHub.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
	SignatureHeader = "X-Hub-Signature-256"
	// EventHeader names the event type (push, pull_request, ...).
	EventHeader = "X-GitHub-Event"
	// DeliveryHeader is the delivery's GUID; a redelivery keeps it.
	DeliveryHeader = "X-GitHub-Delivery"
)

// The headers' canonical forms: Header.Get allocates to canonicalize
// GitHub's spelling on every call.
var (
	eventKey    = http.CanonicalHeaderKey(EventHeader)
	deliveryKey = http.CanonicalHeaderKey(DeliveryHeader)
)

// DefaultPath is the URL path the source listens on unless configured.
const DefaultPath = "/webhooks/github"

// Config configures the GitHub source.
type Config struct {
	// Path is the URL path GitHub posts to.
	Path string `mapstructure:"path"`
	// Secret is the webhook secret; required unless insecure_skip_verify.
	webhook.SecretConfig `mapstructure:",squash"`
	// DeploymentWorkflows names the GitHub Actions workflows whose completed
	// runs are deployments, by file name ("deploy.yml"), workflow path
	// (".github/workflows/deploy.yml") or workflow name ("Deploy"). Empty:
	// workflow_run events are ignored.
	DeploymentWorkflows []string `mapstructure:"deployment_workflows"`
	// WorkflowEnvironment is the environment of deployments reported by
	// deployment workflows (workflow runs do not name one).
	WorkflowEnvironment string `mapstructure:"workflow_environment"`
	// IncidentLabel is the issue label that makes an issue an incident.
	IncidentLabel string `mapstructure:"incident_label"`
	// Reverts and hotfixes in pushes and merged pull requests:
	// revert_patterns, hotfix_labels, hotfix_branches.
	gitpush.ChangeSignalsConfig `mapstructure:",squash"`
	// ReleaseDeployments makes the published releases or the tag pushes
	// of matching repositories deployments.
	ReleaseDeployments []gitpush.ReleaseDeployment `mapstructure:"release_deployments"`
	// History imports the repositories' past deployments, commits, pull
	// requests and incidents through GitHub's REST API (history.go).
	History HistoryConfig `mapstructure:"history"`
}

// pullRequestRevertPattern matches GitHub's revert pull requests: the
// Revert button titles them `Revert "<title>"` and writes "Reverts
// owner/repo#N" as their body. (Not anchored to the title's start, so that
// its literal prefix lets most texts be ruled out cheaply.)
const pullRequestRevertPattern = `(?s)Revert ".*\bReverts ((?:[\w.-]+/[\w.-]+)?#[0-9]+)`

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		Path:                DefaultPath,
		WorkflowEnvironment: "production",
		IncidentLabel:       "incident",
		ChangeSignalsConfig: gitpush.ChangeSignalsConfig{
			RevertPatterns: []string{gitpush.GitRevertPattern, pullRequestRevertPattern},
		},
		History: DefaultHistoryConfig(),
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
	for i, w := range c.DeploymentWorkflows {
		if strings.TrimSpace(w) == "" {
			errs = append(errs, fmt.Errorf("deployment_workflows[%d]: empty workflow name", i))
		}
	}
	if strings.TrimSpace(c.WorkflowEnvironment) == "" {
		errs = append(errs, errors.New("workflow_environment: must not be empty"))
	}
	if strings.TrimSpace(c.IncidentLabel) == "" {
		errs = append(errs, errors.New("incident_label: must not be empty"))
	}
	if err := c.ChangeSignalsConfig.Check(); err != nil {
		errs = append(errs, err)
	}
	if err := gitpush.CheckReleaseDeployments("release_deployments", c.ReleaseDeployments); err != nil {
		errs = append(errs, err)
	}
	if err := c.History.Check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Provider implements webhook.Provider for GitHub webhooks.
type Provider struct {
	cfg       Config
	mac       *webhook.HMACSHA256
	workflows map[string]struct{}
	signals   gitpush.ChangeSignals
	// tags remembers the commits of pushed tags for the releases that
	// name only a branch.
	tags *gitpush.TagMemory
}

// New returns the provider for cfg. cfg should have passed Validate.
func New(cfg Config) *Provider {
	p := &Provider{cfg: cfg, mac: webhook.NewHMACSHA256(cfg.Secret), workflows: map[string]struct{}{}, signals: gitpush.NewChangeSignals(cfg.ChangeSignalsConfig), tags: gitpush.NewTagMemory(tagMemorySize)}
	for _, w := range cfg.DeploymentWorkflows {
		if w = strings.TrimSpace(w); w != "" {
			p.workflows[w] = struct{}{}
		}
	}
	return p
}

func (p *Provider) Name() string { return event.SourceGitHub }

// ContentTypes accepts only JSON: the webhook's content type must be
// application/json (form-encoded deliveries are refused with 415).
func (p *Provider) ContentTypes() []string { return contentTypes }

var contentTypes = []string{"application/json"}

// ContentTypeHint is added to the 415 answer, which GitHub shows in the
// webhook's Recent Deliveries: a new webhook's Content type defaults to
// application/x-www-form-urlencoded.
func (p *Provider) ContentTypeHint() string {
	return "set the webhook's Content type to application/json (Settings > Webhooks > Edit; GitHub's default, application/x-www-form-urlencoded, is not read)"
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
	if kind == "ping" {
		return webhook.Result{Ignored: "ping"}, nil
	}
	id := strings.TrimSpace(req.Header.Get(deliveryKey))
	if id == "" {
		return webhook.Result{}, webhook.BadRequest("missing %s header", DeliveryHeader)
	}
	d := delivery{id: id, body: req.Body, received: req.Received}
	switch kind {
	case "push":
		return p.push(d)
	case "pull_request":
		return p.pullRequest(d)
	case "deployment":
		return p.deployment(d)
	case "deployment_status":
		return p.deploymentStatus(d)
	case "workflow_run":
		return p.workflowRun(d)
	case "issues":
		return p.issues(d)
	case "release":
		if len(p.cfg.ReleaseDeployments) > 0 {
			return p.release(d)
		}
		return webhook.Result{Ignored: fmt.Sprintf("GitHub event %q is not used", kind)}, nil
	default:
		return webhook.Result{Ignored: fmt.Sprintf("GitHub event %q is not used", kind)}, nil
	}
}

// verify checks X-Hub-Signature-256 unless verification is off.
func (p *Provider) verify(req *webhook.Request) error {
	if !p.cfg.Verify() {
		return nil
	}
	header := req.Header.Get(SignatureHeader)
	if header == "" {
		if req.Header.Get("X-Hub-Signature") != "" {
			return webhook.Unauthorized("missing %s header: the SHA-1 X-Hub-Signature is not accepted; set a secret on the webhook so GitHub sends both", SignatureHeader)
		}
		return webhook.Unauthorized("missing %s header (sha256=<hex HMAC-SHA256 of the body>); set the webhook secret", SignatureHeader)
	}
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return webhook.Unauthorized("%s must start with sha256=", SignatureHeader)
	}
	if !p.mac.Valid(req.Body, sig) {
		return webhook.Unauthorized("%s does not match the body; check that the webhook secret equals the configured secret", SignatureHeader)
	}
	return nil
}

// changeID names a pull request as ChangeMerged and RevertsChange do.
func changeID(repo string, number int64) string {
	return "github/" + repo + "/pull/" + strconv.FormatInt(number, 10)
}

// isDeploymentWorkflow reports whether a workflow run belongs to one of the
// configured deployment workflows.
func (p *Provider) isDeploymentWorkflow(name, workflowPath string) bool {
	if len(p.workflows) == 0 {
		return false
	}
	// A path may carry the ref it was loaded from ("...yml@refs/heads/main").
	if i := strings.IndexByte(workflowPath, '@'); i >= 0 {
		workflowPath = workflowPath[:i]
	}
	for _, candidate := range []string{name, workflowPath, path.Base(workflowPath)} {
		if candidate == "" || candidate == "." || candidate == "/" {
			continue
		}
		if _, ok := p.workflows[candidate]; ok {
			return true
		}
	}
	return false
}

var _ webhook.Provider = (*Provider)(nil)
