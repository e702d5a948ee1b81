// Package gitlab is the source for GitLab project, group and system
// webhooks: pushes (changes committed), merged merge requests, deployments,
// pipelines of deployment refs, and incidents (issues of type Incident or
// with the incident label).
//
// Deliveries are authenticated by X-Gitlab-Token, the webhook's secret
// token, compared in constant time. GitLab signs nothing, so use HTTPS.
//
// Event IDs are derived from stable payload fields, not from GitLab's
// delivery headers: X-Gitlab-Webhook-UUID is new on every attempt, and
// X-Gitlab-Event-UUID is shared by all the hooks one request triggers and
// is not kept by a manual "Resend request". A payload key is the same for a
// resend, for a retry, and for the same event sent by a project and a group
// hook, and differs between events.
package gitlab

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Delivery headers set by GitLab.
const (
	// TokenHeader carries the webhook's secret token.
	TokenHeader = "X-Gitlab-Token"
	// EventHeader names the hook ("Push Hook", "Deployment Hook", ...).
	EventHeader = "X-Gitlab-Event"
)

// DefaultPath is the URL path the source listens on unless configured.
const DefaultPath = "/webhooks/gitlab"

// Config configures the GitLab source.
type Config struct {
	// Path is the URL path GitLab posts to.
	Path string `mapstructure:"path"`
	// Secret is the webhook's secret token (X-Gitlab-Token); required unless
	// insecure_skip_verify.
	webhook.SecretConfig `mapstructure:",squash"`
	// DeploymentRefs are the branches or tags whose pipelines deploy, as
	// exact names or shell patterns ("main", "v*"). Empty: pipeline events
	// are ignored (use deployment events instead).
	DeploymentRefs []string `mapstructure:"deployment_refs"`
	// DeploymentStages are the pipeline stages whose jobs deploy.
	DeploymentStages []string `mapstructure:"deployment_stages"`
	// PipelineEnvironment is the environment of a pipeline deployment whose
	// deploy job names none.
	PipelineEnvironment string `mapstructure:"pipeline_environment"`
	// IncidentLabel makes an issue an incident (issues of type Incident
	// always are).
	IncidentLabel string `mapstructure:"incident_label"`
	// IncidentServiceLabelPrefix: an incident's label that starts with it
	// names the service ("service::api", a scoped label); without one, the
	// project's repository does (the services setting).
	IncidentServiceLabelPrefix string `mapstructure:"incident_service_label_prefix"`
	// Reverts and hotfixes in pushes and merged merge requests:
	// revert_patterns, hotfix_labels, hotfix_branches.
	gitpush.ChangeSignalsConfig `mapstructure:",squash"`
	// ReleaseDeployments makes the created releases or the tag pushes of
	// matching projects deployments.
	ReleaseDeployments []gitpush.ReleaseDeployment `mapstructure:"release_deployments"`
	// History is the GitLab API access: the history import and the
	// completion of large pushes (history.go, pushcomplete.go).
	History HistoryConfig `mapstructure:"history"`
}

// mergeRequestRevertPattern matches what GitLab's Revert button writes
// into the revert commit's message and the revert merge request's
// description: "This reverts merge request !N".
const mergeRequestRevertPattern = `This reverts merge request ((?:[\w./-]+)?![0-9]+)`

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		Path:                       DefaultPath,
		DeploymentStages:           []string{"deploy"},
		PipelineEnvironment:        "production",
		IncidentLabel:              "incident",
		IncidentServiceLabelPrefix: "service::",
		ChangeSignalsConfig: gitpush.ChangeSignalsConfig{
			RevertPatterns: []string{gitpush.GitRevertPattern, mergeRequestRevertPattern},
		},
		History: defaultHistoryConfig(),
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
	for i, r := range c.DeploymentRefs {
		if strings.TrimSpace(r) == "" {
			errs = append(errs, fmt.Errorf("deployment_refs[%d]: empty ref", i))
		} else if _, err := path.Match(r, ""); err != nil {
			errs = append(errs, fmt.Errorf("deployment_refs[%d]: %q is not a valid pattern: %w", i, r, err))
		}
	}
	if len(c.DeploymentRefs) > 0 && len(c.DeploymentStages) == 0 {
		errs = append(errs, errors.New("deployment_stages: must name at least one stage when deployment_refs is set"))
	}
	for i, s := range c.DeploymentStages {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, fmt.Errorf("deployment_stages[%d]: empty stage", i))
		}
	}
	if strings.TrimSpace(c.PipelineEnvironment) == "" {
		errs = append(errs, errors.New("pipeline_environment: must not be empty"))
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
	if err := c.History.check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Provider implements webhook.Provider for GitLab webhooks.
type Provider struct {
	cfg     Config
	stages  map[string]struct{}
	signals gitpush.ChangeSignals
	// completer fetches the commits a push hook left out; nil: none.
	completer *PushCompleter
}

// CompletePushesWith makes the provider hand the pushes whose hook left
// commits out to c (pushcomplete.go). Call it before deliveries arrive.
func (p *Provider) CompletePushesWith(c *PushCompleter) { p.completer = c }

// New returns the provider for cfg. cfg should have passed Validate.
func New(cfg Config) *Provider {
	p := &Provider{cfg: cfg, stages: map[string]struct{}{}, signals: gitpush.NewChangeSignals(cfg.ChangeSignalsConfig)}
	for _, s := range cfg.DeploymentStages {
		p.stages[strings.TrimSpace(s)] = struct{}{}
	}
	return p
}

func (p *Provider) Name() string { return event.SourceGitLab }

// ContentTypes: GitLab always posts application/json.
func (p *Provider) ContentTypes() []string { return contentTypes }

var contentTypes = []string{"application/json"}

// hooks maps X-Gitlab-Event to the object_kind values its payload may have.
var hooks = map[string][]string{
	"Push Hook":               {"push"},
	"Tag Push Hook":           {"tag_push"},
	"Merge Request Hook":      {"merge_request"},
	"Deployment Hook":         {"deployment"},
	"Pipeline Hook":           {"pipeline"},
	"Release Hook":            {"release"},
	"Issue Hook":              {"issue", "work_item"},
	"Confidential Issue Hook": {"issue", "work_item"},
	// System hooks send pushes, tag pushes and merge requests in the same
	// shapes as project hooks.
	"System Hook": {"push", "tag_push", "merge_request"},
}

type envelope struct {
	ObjectKind string `json:"object_kind"`
}

// Parse authenticates one delivery and turns it into events.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		token := req.Header.Get(TokenHeader)
		if token == "" {
			return webhook.Result{}, webhook.Unauthorized("missing %s header; set the webhook's secret token", TokenHeader)
		}
		if !webhook.EqualToken(p.cfg.Secret, token) {
			return webhook.Result{}, webhook.Unauthorized("%s does not match the configured secret", TokenHeader)
		}
	}
	hook := strings.TrimSpace(req.Header.Get(EventHeader))
	if hook == "" {
		return webhook.Result{}, webhook.BadRequest("missing %s header", EventHeader)
	}
	kinds, known := hooks[hook]
	if hook == "Release Hook" && len(p.cfg.ReleaseDeployments) == 0 {
		known = false // releases are deployments only where configured
	}
	if !known {
		return webhook.Result{Ignored: fmt.Sprintf("GitLab event %q is not used", hook)}, nil
	}
	var env envelope
	var ps *pushScratch
	if slices.Contains(kinds, "push") {
		// Decoded in one pass with the push it may be.
		ps = pushScratchPool.Get().(*pushScratch)
		defer ps.release()
		ps.commits.Messages = p.signals.ReadsReverts()
		syntaxErr, typeErr := ps.decode(req.Body)
		switch {
		case syntaxErr != nil:
			return webhook.Result{}, syntaxErr
		case ps.kindErr != nil:
			return webhook.Result{}, ps.kindErr
		}
		env.ObjectKind = string(ps.objectKind)
		if env.ObjectKind == "push" && typeErr != nil {
			return webhook.Result{}, typeErr
		}
	} else if err := webhook.DecodeJSON(req.Body, &env); err != nil {
		return webhook.Result{}, err
	}
	if !slices.Contains(kinds, env.ObjectKind) {
		if hook == "System Hook" {
			return webhook.Result{Ignored: fmt.Sprintf("system hook event %q is not used", env.ObjectKind)}, nil
		}
		return webhook.Result{}, webhook.BadRequest("field \"object_kind\": %q does not match %s %q (want %s)", env.ObjectKind, EventHeader, hook, strings.Join(kinds, " or "))
	}
	switch env.ObjectKind {
	case "push":
		return p.push(ps)
	case "tag_push":
		if len(p.cfg.ReleaseDeployments) == 0 {
			return webhook.Result{Ignored: "tag push"}, nil
		}
		return p.tagPush(req)
	case "release":
		return p.release(req.Body)
	case "merge_request":
		return p.mergeRequest(req.Body)
	case "deployment":
		return p.deployment(req.Body)
	case "pipeline":
		return p.pipeline(req)
	default: // issue, work_item
		return p.issue(req.Body)
	}
}

// changeID names a merge request as ChangeMerged and RevertsChange do.
func changeID(repo string, iid int64) string {
	return fmt.Sprintf("gitlab/%s/merge_requests/%d", repo, iid)
}

// deploymentRef reports whether pipelines of ref deploy.
func (p *Provider) deploymentRef(ref string) bool {
	for _, pattern := range p.cfg.DeploymentRefs {
		if ok, _ := path.Match(pattern, ref); ok || pattern == ref {
			return true
		}
	}
	return false
}

var _ webhook.Provider = (*Provider)(nil)
