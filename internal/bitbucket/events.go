package bitbucket

import (
	"fmt"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

type repository struct {
	FullName string `json:"full_name"`
}

type commitRef struct {
	Hash string `json:"hash"`
}

type pullRequestPayload struct {
	PullRequest struct {
		ID          int64     `json:"id"`
		Title       string    `json:"title"`
		Description string    `json:"description"`
		State       string    `json:"state"`
		MergeCommit commitRef `json:"merge_commit"`
		ClosedOn    string    `json:"closed_on"`
		UpdatedOn   string    `json:"updated_on"`
		Source      struct {
			Branch struct {
				Name string `json:"name"`
			} `json:"branch"`
		} `json:"source"`
	} `json:"pullrequest"`
	Repository repository `json:"repository"`
}

// pullRequestFulfilled yields ChangeMerged for a merged pull request when
// the payload gives the merge commit's full hash. Bitbucket Cloud gives an
// abbreviated one (12 characters), which cannot be matched to deployments:
// the merge is then told by the push of its merge commit (see push), and
// this event is answered as ignored.
func (p *Provider) pullRequestFulfilled(d delivery) (webhook.Result, error) {
	var pl pullRequestPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	pr := &pl.PullRequest
	if pr.State != "" && pr.State != "MERGED" {
		return webhook.Result{Ignored: fmt.Sprintf("pull request in state %q, not merged", pr.State)}, nil
	}
	repo := pl.Repository.FullName
	if err := webhook.Required("repository.full_name", repo, "pullrequest.merge_commit.hash", pr.MergeCommit.Hash); err != nil {
		return webhook.Result{}, err
	}
	if pr.ID <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "pullrequest.id"`)
	}
	if !gitpush.IsSHA(pr.MergeCommit.Hash) {
		if isHex(pr.MergeCommit.Hash) && len(pr.MergeCommit.Hash) < 40 {
			return webhook.Result{Ignored: fmt.Sprintf("pullrequest.merge_commit.hash %q is abbreviated: the merge is counted from the push of its merge commit (repo:push)", pr.MergeCommit.Hash)}, nil
		}
		return webhook.Result{}, webhook.BadRequest("field %q: %q is not a commit SHA", "pullrequest.merge_commit.hash", pr.MergeCommit.Hash)
	}
	at, field := pr.ClosedOn, "pullrequest.closed_on"
	if at == "" {
		at, field = pr.UpdatedOn, "pullrequest.updated_on"
	}
	t, err := parseTime(field, at)
	if err != nil {
		return webhook.Result{}, err
	}
	ev := event.Event{
		Kind:       event.ChangeMerged,
		Source:     event.SourceBitbucket,
		ID:         d.id,
		Time:       t,
		Repository: repo,
		Revision:   strings.ToLower(pr.MergeCommit.Hash),
		ChangeID:   changeID(repo, pr.ID),
		Hotfix:     p.signals.HotfixBranch(pr.Source.Branch.Name),
	}
	if p.signals.ReadsReverts() {
		ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted([]byte(pr.Title+"\n\n"+pr.Description)), '#', changeID)
	}
	return webhook.Result{Events: []event.Event{ev}}, nil
}

type commitStatusPayload struct {
	CommitStatus struct {
		Key       string    `json:"key"`
		Name      string    `json:"name"`
		State     string    `json:"state"`
		Type      string    `json:"type"`
		CreatedOn string    `json:"created_on"`
		UpdatedOn string    `json:"updated_on"`
		Commit    commitRef `json:"commit"`
		Links     struct {
			Commit struct {
				Href string `json:"href"`
			} `json:"commit"`
		} `json:"links"`
	} `json:"commit_status"`
	Repository repository `json:"repository"`
}

// maxStatusKey bounds a commit status's key, which is part of the
// deployment id (Bitbucket limits keys to 40 characters).
const maxStatusKey = 255

// commitStatus turns the status of a deployment pipeline's commit into the
// deployment's start or outcome. Bitbucket Pipelines reports each pipeline
// run as a commit status (repo:commit_status_created when it starts,
// repo:commit_status_updated when it ends); a status that matches
// deployment_statuses is a deployment to deployment_environment.
func (p *Provider) commitStatus(d delivery) (webhook.Result, error) {
	var pl commitStatusPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	cs := &pl.CommitStatus
	if !p.isDeploymentStatus(cs.Key, cs.Name) {
		return webhook.Result{Ignored: fmt.Sprintf("commit status %q (%s) is not one of deployment_statuses", cs.Name, cs.Key)}, nil
	}
	var kind event.Kind
	reason := ""
	at, field := cs.UpdatedOn, "commit_status.updated_on"
	switch cs.State {
	case "SUCCESSFUL":
		kind = event.DeploymentSucceeded
	case "FAILED":
		kind, reason = event.DeploymentFailed, "failed"
	case "INPROGRESS":
		kind = event.DeploymentStarted
		at, field = cs.CreatedOn, "commit_status.created_on"
	case "":
		return webhook.Result{}, webhook.Required("commit_status.state", "")
	default: // STOPPED: stopped by hand, not an outcome of the change
		return webhook.Result{Ignored: fmt.Sprintf("commit status state %q is not a deployment outcome", cs.State)}, nil
	}
	repo := pl.Repository.FullName
	if err := webhook.Required("repository.full_name", repo, "commit_status.key", cs.Key); err != nil {
		return webhook.Result{}, err
	}
	if len(cs.Key) > maxStatusKey {
		return webhook.Result{}, webhook.BadRequest("field %q: %d bytes, above the limit of %d", "commit_status.key", len(cs.Key), maxStatusKey)
	}
	sha, shaField := cs.Commit.Hash, "commit_status.commit.hash"
	if sha == "" {
		// The documented payload names the commit only in its link,
		// .../commit/<hash>.
		href := cs.Links.Commit.Href
		sha, shaField = href[strings.LastIndexByte(href, '/')+1:], "commit_status.links.commit.href"
	}
	rev, err := gitpush.CommitSHA(shaField, sha)
	if err != nil {
		return webhook.Result{}, err
	}
	t, err := parseTime(field, at)
	if err != nil {
		return webhook.Result{}, err
	}
	return webhook.Result{Events: []event.Event{{
		Kind:         kind,
		Source:       event.SourceBitbucket,
		ID:           d.id,
		Time:         t,
		Service:      event.Service{Environment: p.cfg.DeploymentEnvironment},
		Repository:   repo,
		DeploymentID: "bitbucket/" + repo + "/commit_status/" + cs.Key + "/" + rev,
		Revision:     rev,
		Reason:       reason,
	}}}, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// parseTime parses Bitbucket's ISO 8601 times (with microseconds), into UTC.
func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, webhook.Required(field, v)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.IsZero() {
		return time.Time{}, webhook.BadRequest("field %q: %q is not an RFC 3339 time", field, v)
	}
	return t.UTC(), nil
}
