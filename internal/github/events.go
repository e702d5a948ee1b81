package github

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// The payload types below decode only the fields the source uses; GitHub's
// payloads carry many more, which are ignored.

// delivery is one verified delivery: its GUID and its body.
type delivery struct {
	id       string
	body     []byte
	received time.Time
}

type repository struct {
	FullName string `json:"full_name"`
}

func (r repository) name() (string, error) {
	if err := webhook.Required("repository.full_name", r.FullName); err != nil {
		return "", err
	}
	return r.FullName, nil
}

// maxPushFiles is how many changed files GitHub lists per commit of a push
// at most; a commit with that many may have more.
const maxPushFiles = 3000

type pullRequestPayload struct {
	Action      string `json:"action"`
	PullRequest struct {
		Number         int64   `json:"number"`
		Merged         bool    `json:"merged"`
		MergeCommitSHA string  `json:"merge_commit_sha"`
		MergedAt       string  `json:"merged_at"`
		Title          string  `json:"title"`
		Body           string  `json:"body"`
		Labels         []label `json:"labels"`
		Head           struct {
			Ref string `json:"ref"`
		} `json:"head"`
	} `json:"pull_request"`
	Repository repository `json:"repository"`
}

// pullRequest yields ChangeMerged when a pull request is merged. A revert
// pull request (revert_patterns on its title and body) names the change or
// commit it reverts; a hotfix label or a hotfix source branch makes it a
// hotfix.
func (p *Provider) pullRequest(d delivery) (webhook.Result, error) {
	var pl pullRequestPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	if pl.Action != "closed" {
		return webhook.Result{Ignored: fmt.Sprintf("pull_request action %q", pl.Action)}, nil
	}
	if !pl.PullRequest.Merged {
		return webhook.Result{Ignored: "pull request closed without merging"}, nil
	}
	repo, err := pl.Repository.name()
	if err != nil {
		return webhook.Result{}, err
	}
	rev, err := gitpush.CommitSHA("pull_request.merge_commit_sha", pl.PullRequest.MergeCommitSHA)
	if err != nil {
		return webhook.Result{}, err
	}
	at, err := parseTime("pull_request.merged_at", pl.PullRequest.MergedAt)
	if err != nil {
		return webhook.Result{}, err
	}
	pr := &pl.PullRequest
	labels := make([]string, len(pr.Labels))
	for i, l := range pr.Labels {
		labels[i] = l.Name
	}
	return one(p.changeMerged(d.id, repo, pr.Number, rev, at, pr.Title, pr.Body, pr.Head.Ref, labels)), nil
}

// changeMerged is the ChangeMerged event of a merged pull request, for
// the pull_request webhook and the history import alike: a revert pull
// request (revert_patterns on its title and body) names what it reverts;
// a hotfix label or source branch makes it a hotfix.
func (p *Provider) changeMerged(id, repo string, number int64, rev string, at time.Time, title, body, headRef string, labels []string) event.Event {
	ev := event.Event{
		Kind:       event.ChangeMerged,
		Source:     event.SourceGitHub,
		ID:         id,
		Time:       at,
		Repository: repo,
		Revision:   rev,
	}
	if number > 0 {
		ev.ChangeID = changeID(repo, number)
	}
	if p.signals.ReadsReverts() {
		ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted([]byte(title+"\n\n"+body)), '#', changeID)
	}
	ev.Hotfix = p.signals.HotfixBranch(headRef)
	for _, l := range labels {
		ev.Hotfix = ev.Hotfix || p.signals.HotfixLabel(l)
	}
	return ev
}

type deployment struct {
	ID          int64  `json:"id"`
	SHA         string `json:"sha"`
	Environment string `json:"environment"`
	CreatedAt   string `json:"created_at"`
}

// base returns the fields every event about this deployment shares.
func (dep deployment) base(d delivery, repo string) (event.Event, error) {
	if dep.ID <= 0 {
		return event.Event{}, webhook.BadRequest(`missing required field "deployment.id"`)
	}
	rev, err := gitpush.CommitSHA("deployment.sha", dep.SHA)
	if err != nil {
		return event.Event{}, err
	}
	return event.Event{
		Source:       event.SourceGitHub,
		ID:           d.id,
		Repository:   repo,
		DeploymentID: deploymentID(repo, dep.ID),
		Revision:     rev,
	}, nil
}

type deploymentPayload struct {
	Action     string     `json:"action"`
	Deployment deployment `json:"deployment"`
	Repository repository `json:"repository"`
}

// deployment yields DeploymentStarted when a deployment is created.
func (p *Provider) deployment(d delivery) (webhook.Result, error) {
	var pl deploymentPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	if pl.Action != "created" {
		return webhook.Result{Ignored: fmt.Sprintf("deployment action %q", pl.Action)}, nil
	}
	repo, err := pl.Repository.name()
	if err != nil {
		return webhook.Result{}, err
	}
	ev, err := pl.Deployment.base(d, repo)
	if err != nil {
		return webhook.Result{}, err
	}
	if err := webhook.Required("deployment.environment", pl.Deployment.Environment); err != nil {
		return webhook.Result{}, err
	}
	if ev.Time, err = parseTime("deployment.created_at", pl.Deployment.CreatedAt); err != nil {
		return webhook.Result{}, err
	}
	ev.Kind = event.DeploymentStarted
	ev.Service.Environment = pl.Deployment.Environment
	return one(ev), nil
}

type deploymentStatusPayload struct {
	Action           string `json:"action"`
	DeploymentStatus struct {
		State       string `json:"state"`
		Environment string `json:"environment"`
		CreatedAt   string `json:"created_at"`
	} `json:"deployment_status"`
	Deployment deployment `json:"deployment"`
	Repository repository `json:"repository"`
}

// deploymentStatus maps a deployment's status to its outcome. in_progress
// is a start (for senders that only subscribe to statuses, it is the only
// start they send; a second start of the same deployment changes nothing);
// queued, pending, waiting and inactive (superseded by a later deployment)
// are not outcomes.
func (p *Provider) deploymentStatus(d delivery) (webhook.Result, error) {
	var pl deploymentStatusPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	st := pl.DeploymentStatus.State
	if st == "" {
		return webhook.Result{}, webhook.Required("deployment_status.state", st)
	}
	kind, reason, ok := deploymentOutcome(st)
	if !ok {
		return webhook.Result{Ignored: fmt.Sprintf("deployment status %q is not an outcome", st)}, nil
	}
	repo, err := pl.Repository.name()
	if err != nil {
		return webhook.Result{}, err
	}
	ev, err := pl.Deployment.base(d, repo)
	if err != nil {
		return webhook.Result{}, err
	}
	env := pl.DeploymentStatus.Environment
	if env == "" {
		env = pl.Deployment.Environment
	}
	if env == "" {
		return webhook.Result{}, webhook.BadRequest(`missing required field "deployment_status.environment" (or "deployment.environment")`)
	}
	if ev.Time, err = parseTime("deployment_status.created_at", pl.DeploymentStatus.CreatedAt); err != nil {
		return webhook.Result{}, err
	}
	ev.Kind = kind
	ev.Reason = reason
	ev.Service.Environment = env
	return one(ev), nil
}

// deploymentID names a GitHub deployment across its webhooks and the
// history import.
func deploymentID(repo string, id int64) string {
	return "github/" + repo + "/deployment/" + strconv.FormatInt(id, 10)
}

// deploymentOutcome maps a deployment status's state to the event it
// makes (reason: the failed state), or false for a state that is not an
// outcome.
func deploymentOutcome(state string) (kind event.Kind, reason string, ok bool) {
	switch state {
	case "success":
		return event.DeploymentSucceeded, "", true
	case "failure", "error":
		return event.DeploymentFailed, state, true
	case "in_progress":
		return event.DeploymentStarted, "", true
	}
	return event.KindUnknown, "", false
}

type workflowRunPayload struct {
	Action      string `json:"action"`
	WorkflowRun struct {
		ID         int64  `json:"id"`
		Name       string `json:"name"`
		Path       string `json:"path"`
		HeadSHA    string `json:"head_sha"`
		Conclusion string `json:"conclusion"`
		RunAttempt int64  `json:"run_attempt"`
		UpdatedAt  string `json:"updated_at"`
	} `json:"workflow_run"`
	Workflow struct {
		Name string `json:"name"`
		Path string `json:"path"`
	} `json:"workflow"`
	Repository repository `json:"repository"`
}

// workflowRun yields the outcome of a completed run of a deployment workflow.
func (p *Provider) workflowRun(d delivery) (webhook.Result, error) {
	var pl workflowRunPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	run := pl.WorkflowRun
	name, wfPath := run.Name, run.Path
	if name == "" {
		name = pl.Workflow.Name
	}
	if wfPath == "" {
		wfPath = pl.Workflow.Path
	}
	if !p.isDeploymentWorkflow(name, wfPath) {
		return webhook.Result{Ignored: fmt.Sprintf("workflow %q (%s) is not one of deployment_workflows", name, wfPath)}, nil
	}
	if pl.Action != "completed" {
		return webhook.Result{Ignored: fmt.Sprintf("workflow_run action %q", pl.Action)}, nil
	}
	var kind event.Kind
	reason := ""
	switch run.Conclusion {
	case "success":
		kind = event.DeploymentSucceeded
	case "failure", "timed_out":
		kind, reason = event.DeploymentFailed, run.Conclusion
	case "":
		return webhook.Result{}, webhook.Required("workflow_run.conclusion", run.Conclusion)
	default:
		return webhook.Result{Ignored: fmt.Sprintf("workflow run concluded %q, not a deployment outcome", run.Conclusion)}, nil
	}
	repo, err := pl.Repository.name()
	if err != nil {
		return webhook.Result{}, err
	}
	if run.ID <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "workflow_run.id"`)
	}
	attempt := run.RunAttempt
	if attempt <= 0 {
		attempt = 1 // payloads from before run attempts existed
	}
	rev, err := gitpush.CommitSHA("workflow_run.head_sha", run.HeadSHA)
	if err != nil {
		return webhook.Result{}, err
	}
	at, err := parseTime("workflow_run.updated_at", run.UpdatedAt)
	if err != nil {
		return webhook.Result{}, err
	}
	return one(event.Event{
		Kind:         kind,
		Source:       event.SourceGitHub,
		ID:           d.id,
		Time:         at,
		Service:      event.Service{Environment: p.cfg.WorkflowEnvironment},
		Repository:   repo,
		DeploymentID: fmt.Sprintf("github/%s/workflow_run/%d/%d", repo, run.ID, attempt),
		Revision:     rev,
		Reason:       reason,
	}), nil
}

type label struct {
	Name string `json:"name"`
}

type issuesPayload struct {
	Action string `json:"action"`
	Issue  struct {
		Number    int64   `json:"number"`
		State     string  `json:"state"`
		Labels    []label `json:"labels"`
		CreatedAt string  `json:"created_at"`
		UpdatedAt string  `json:"updated_at"`
		ClosedAt  string  `json:"closed_at"`
	} `json:"issue"`
	Label      *label     `json:"label"`
	Repository repository `json:"repository"`
}

// incidentEnvironment is the environment of incidents from issues: an
// incident is an outage of what users see.
const incidentEnvironment = "production"

// issues yields IncidentOpened and IncidentResolved for issues carrying the
// incident label.
//
// GitHub sends both "opened" and "labeled" when an issue is created with
// labels, and "labeled" again if the label is removed and re-added; all of
// them open the same incident at the issue's creation time, so they share
// one event ID and count once. Reopening opens the incident again.
func (p *Provider) issues(d delivery) (webhook.Result, error) {
	var pl issuesPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	iss := pl.Issue
	labelled := hasLabel(iss.Labels, p.cfg.IncidentLabel)
	switch pl.Action {
	case "opened", "reopened", "closed":
		if !labelled {
			return webhook.Result{Ignored: fmt.Sprintf("issue without the %q label", p.cfg.IncidentLabel)}, nil
		}
	case "labeled":
		if pl.Label == nil || !strings.EqualFold(pl.Label.Name, p.cfg.IncidentLabel) {
			return webhook.Result{Ignored: fmt.Sprintf("label other than %q added", p.cfg.IncidentLabel)}, nil
		}
		if iss.State != "open" {
			return webhook.Result{Ignored: fmt.Sprintf("%q label added to a closed issue", p.cfg.IncidentLabel)}, nil
		}
	default:
		return webhook.Result{Ignored: fmt.Sprintf("issues action %q", pl.Action)}, nil
	}
	repo, err := pl.Repository.name()
	if err != nil {
		return webhook.Result{}, err
	}
	if iss.Number <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "issue.number"`)
	}
	ev := event.Event{
		Source:     event.SourceGitHub,
		ID:         d.id,
		Service:    event.Service{Environment: incidentEnvironment},
		Repository: repo,
		IncidentID: incidentID(repo, iss.Number),
	}
	switch pl.Action {
	case "opened", "labeled":
		ev.Kind = event.IncidentOpened
		ev.ID = ev.IncidentID + "/opened"
		ev.Time, err = parseTime("issue.created_at", iss.CreatedAt)
	case "reopened":
		ev.Kind = event.IncidentOpened
		ev.Time, err = parseTime("issue.updated_at", iss.UpdatedAt)
	case "closed":
		ev.Kind = event.IncidentResolved
		if iss.ClosedAt != "" {
			ev.Time, err = parseTime("issue.closed_at", iss.ClosedAt)
		} else {
			ev.Time, err = parseTime("issue.updated_at", iss.UpdatedAt)
		}
	}
	if err != nil {
		return webhook.Result{}, err
	}
	return one(ev), nil
}

// incidentID names the incident of an issue carrying the incident label.
func incidentID(repo string, number int64) string {
	return "github/" + repo + "/issues/" + strconv.FormatInt(number, 10)
}

func one(ev event.Event) webhook.Result { return webhook.Result{Events: []event.Event{ev}} }

func hasLabel(labels []label, want string) bool {
	for _, l := range labels {
		if strings.EqualFold(l.Name, want) {
			return true
		}
	}
	return false
}

// parseTime parses GitHub's ISO 8601 times, into UTC.
func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, webhook.Required(field, v)
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil || t.IsZero() {
		return time.Time{}, webhook.BadRequest("field %q: %q is not an RFC 3339 time", field, v)
	}
	return t.UTC(), nil
}
