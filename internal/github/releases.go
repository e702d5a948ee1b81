package github

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Releases and tags as deployments (release_deployments): for teams whose
// "deploy" is a release. The deployed revision is the tagged commit, so the
// commits pushed before it on its branch get their lead times from it.

// tagMemorySize bounds the tags remembered for releases (see release).
const tagMemorySize = 4096

type releasePayload struct {
	Action  string `json:"action"`
	Release struct {
		ID              int64  `json:"id"`
		TagName         string `json:"tag_name"`
		TargetCommitish string `json:"target_commitish"`
		Draft           bool   `json:"draft"`
		Prerelease      bool   `json:"prerelease"`
		PublishedAt     string `json:"published_at"`
	} `json:"release"`
	Repository repository `json:"repository"`
}

// release maps a published release of a repository configured with
// trigger release. Its revision is target_commitish when that is a commit
// SHA; else (a branch name, GitHub's default) the commit the tag's push
// named, when the receiver saw it; else none (a deployment without lead
// times).
func (p *Provider) release(d delivery) (webhook.Result, error) {
	var pl releasePayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	if pl.Action != "published" {
		return webhook.Result{Ignored: fmt.Sprintf("release action %q", pl.Action)}, nil
	}
	repo, err := pl.Repository.name()
	if err != nil {
		return webhook.Result{}, err
	}
	r := &pl.Release
	if err := webhook.Required("release.tag_name", r.TagName); err != nil {
		return webhook.Result{}, err
	}
	rd, ok := gitpush.MatchRelease(p.cfg.ReleaseDeployments, gitpush.TriggerRelease, repo, r.TagName)
	if !ok {
		return webhook.Result{Ignored: fmt.Sprintf("releases of %s (tag %s) are not deployments (see release_deployments)", repo, r.TagName)}, nil
	}
	if r.Draft || (r.Prerelease && !rd.Prereleases) {
		return webhook.Result{Ignored: fmt.Sprintf("release %s is a draft or a pre-release", r.TagName)}, nil
	}
	at, err := parseTime("release.published_at", r.PublishedAt)
	if err != nil {
		return webhook.Result{}, err
	}
	rev := strings.ToLower(strings.TrimSpace(r.TargetCommitish))
	if !gitpush.IsSHA(rev) {
		rev = p.tags.Commit(repo, r.TagName)
	}
	return one(event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitHub,
		ID:           d.id + "/release",
		Time:         at,
		Service:      event.Service{Environment: rd.Environment},
		Repository:   repo,
		DeploymentID: "github/" + repo + "/release/" + r.TagName,
		Revision:     rev,
	}), nil
}

type tagPushPayload struct {
	Ref        string `json:"ref"`
	Deleted    bool   `json:"deleted"`
	HeadCommit *struct {
		ID string `json:"id"`
	} `json:"head_commit"`
	Repository struct {
		FullName string          `json:"full_name"`
		PushedAt json.RawMessage `json:"pushed_at"`
	} `json:"repository"`
}

// tagPush handles the push of a tag: a deployment for repositories
// configured with trigger tag; for those with trigger release, the tag's
// commit is remembered for the release that follows. Tag pushes are rare:
// encoding/json, not the push scanner.
func (p *Provider) tagPush(d delivery) (webhook.Result, error) {
	var pl tagPushPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	tag := strings.TrimPrefix(pl.Ref, "refs/tags/")
	repo := pl.Repository.FullName
	if pl.Deleted || pl.HeadCommit == nil {
		return webhook.Result{Ignored: "tag " + tag + " deleted"}, nil
	}
	if err := webhook.Required("repository.full_name", repo); err != nil {
		return webhook.Result{}, err
	}
	// head_commit is the tagged commit (for an annotated tag, "after" is
	// the tag object, not a commit).
	rev, err := gitpush.CommitSHA("head_commit.id", pl.HeadCommit.ID)
	if err != nil {
		return webhook.Result{}, err
	}
	if _, ok := gitpush.MatchRelease(p.cfg.ReleaseDeployments, gitpush.TriggerRelease, repo, tag); ok {
		p.tags.Remember(repo, tag, rev)
	}
	rd, ok := gitpush.MatchRelease(p.cfg.ReleaseDeployments, gitpush.TriggerTag, repo, tag)
	if !ok {
		return webhook.Result{Ignored: "push of a tag (" + pl.Ref + ")"}, nil
	}
	at := d.received
	if n, err := pushedAt(pl.Repository.PushedAt); err != nil {
		return webhook.Result{}, err
	} else if !n.IsZero() {
		at = n
	}
	return one(event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitHub,
		ID:           d.id + "/tag",
		Time:         at,
		Service:      event.Service{Environment: rd.Environment},
		Repository:   repo,
		DeploymentID: "github/" + repo + "/tag/" + tag,
		Revision:     rev,
	}), nil
}

// pushedAt reads repository.pushed_at of a push: Unix seconds (what push
// payloads carry), or an RFC 3339 string (other events).
func pushedAt(raw json.RawMessage) (time.Time, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return time.Time{}, nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		if n <= 0 || n >= 253_402_300_800 {
			return time.Time{}, webhook.BadRequest("field %q: %d is not a time in Unix seconds", "repository.pushed_at", n)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return time.Time{}, webhook.BadRequest("field %q: not a number or a string", "repository.pushed_at")
	}
	return parseTime("repository.pushed_at", str)
}
