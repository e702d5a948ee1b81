package gitlab

import (
	"fmt"
	"strings"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Releases and tags as deployments (release_deployments): for teams whose
// "deploy" is a release. The deployed revision is the tagged commit, so the
// commits pushed before it on its branch get their lead times from it.
// GitLab sends no delivery id that a redelivery keeps: the ids are the
// release's or the tag's (with its commit), so a redelivery counts once.

type releaseHook struct {
	Action    string  `json:"action"`
	Tag       string  `json:"tag"`
	CreatedAt string  `json:"created_at"`
	Project   project `json:"project"`
	Commit    struct {
		ID string `json:"id"`
	} `json:"commit"`
}

// release maps a created release of a repository configured with trigger
// release (updates and deletions are not deployments). Its time is the
// release's creation: released_at may be in the future (an upcoming
// release) or the past (a historical one).
func (p *Provider) release(body []byte) (webhook.Result, error) {
	var h releaseHook
	if err := webhook.DecodeJSON(body, &h); err != nil {
		return webhook.Result{}, err
	}
	if h.Action != "create" {
		return webhook.Result{Ignored: fmt.Sprintf("release action %q", h.Action)}, nil
	}
	repo, err := h.Project.name()
	if err != nil {
		return webhook.Result{}, err
	}
	if err := webhook.Required("tag", h.Tag); err != nil {
		return webhook.Result{}, err
	}
	rd, ok := gitpush.MatchRelease(p.cfg.ReleaseDeployments, gitpush.TriggerRelease, repo, h.Tag)
	if !ok {
		return webhook.Result{Ignored: fmt.Sprintf("releases of %s (tag %s) are not deployments (see release_deployments)", repo, h.Tag)}, nil
	}
	rev, err := gitpush.CommitSHA("commit.id", strings.ToLower(h.Commit.ID))
	if err != nil {
		return webhook.Result{}, err
	}
	at, err := parseTime("created_at", h.CreatedAt)
	if err != nil {
		return webhook.Result{}, err
	}
	id := "gitlab/" + repo + "/release/" + h.Tag
	return webhook.Result{Events: []event.Event{{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitLab,
		ID:           id,
		Time:         at,
		Service:      event.Service{Environment: rd.Environment},
		Repository:   repo,
		DeploymentID: id,
		Revision:     rev,
	}}}, nil
}

type tagPushHook struct {
	Ref         string  `json:"ref"`
	CheckoutSHA *string `json:"checkout_sha"`
	Project     project `json:"project"`
}

// tagPush maps the push of a tag matching a trigger-tag entry: its
// checkout_sha is the tagged commit. A Tag Push Hook carries no time: the
// deployment is when it arrived.
func (p *Provider) tagPush(req *webhook.Request) (webhook.Result, error) {
	var h tagPushHook
	if err := webhook.DecodeJSON(req.Body, &h); err != nil {
		return webhook.Result{}, err
	}
	tag := strings.TrimPrefix(h.Ref, "refs/tags/")
	if h.CheckoutSHA == nil || *h.CheckoutSHA == "" || gitpush.IsZeroSHA(*h.CheckoutSHA) {
		return webhook.Result{Ignored: "tag " + tag + " deleted"}, nil
	}
	repo, err := h.Project.name()
	if err != nil {
		return webhook.Result{}, err
	}
	rd, ok := gitpush.MatchRelease(p.cfg.ReleaseDeployments, gitpush.TriggerTag, repo, tag)
	if !ok {
		return webhook.Result{Ignored: "tag push"}, nil
	}
	rev, err := gitpush.CommitSHA("checkout_sha", strings.ToLower(*h.CheckoutSHA))
	if err != nil {
		return webhook.Result{}, err
	}
	return webhook.Result{Events: []event.Event{{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitLab,
		ID:           "gitlab/" + repo + "/tag/" + tag + "/" + rev,
		Time:         req.Received.UTC(),
		Service:      event.Service{Environment: rd.Environment},
		Repository:   repo,
		DeploymentID: "gitlab/" + repo + "/tag/" + tag,
		Revision:     rev,
	}}}, nil
}
