package gitlab

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// The payload types below decode only the fields the source uses; GitLab's
// payloads carry many more, which are ignored.

type project struct {
	PathWithNamespace string `json:"path_with_namespace"`
}

func (p project) name() (string, error) {
	if err := webhook.Required("project.path_with_namespace", p.PathWithNamespace); err != nil {
		return "", err
	}
	return p.PathWithNamespace, nil
}

type mergeRequestPayload struct {
	Project          project `json:"project"`
	ObjectAttributes struct {
		IID            int64   `json:"iid"`
		Action         string  `json:"action"`
		State          string  `json:"state"`
		MergeCommitSHA string  `json:"merge_commit_sha"`
		UpdatedAt      string  `json:"updated_at"`
		Title          string  `json:"title"`
		Description    string  `json:"description"`
		SourceBranch   string  `json:"source_branch"`
		Labels         []label `json:"labels"`
	} `json:"object_attributes"`
	Labels []label `json:"labels"`
}

// mergeRequest yields ChangeMerged when a merge request is merged. Its
// payload has no merge time; updated_at is the time of the merge update.
// A revert merge request (revert_patterns on its title and description)
// names the change or commit it reverts; a hotfix label or a hotfix source
// branch makes it a hotfix.
func (p *Provider) mergeRequest(body []byte) (webhook.Result, error) {
	var pl mergeRequestPayload
	if err := webhook.DecodeJSON(body, &pl); err != nil {
		return webhook.Result{}, err
	}
	mr := pl.ObjectAttributes
	if mr.Action != "merge" {
		return webhook.Result{Ignored: fmt.Sprintf("merge request action %q", mr.Action)}, nil
	}
	if mr.MergeCommitSHA == "" {
		return webhook.Result{Ignored: "merge request merged without a merge commit (fast-forward merge); its commits arrive as a push"}, nil
	}
	repo, err := pl.Project.name()
	if err != nil {
		return webhook.Result{}, err
	}
	if mr.IID <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "object_attributes.iid"`)
	}
	rev, err := gitpush.CommitSHA("object_attributes.merge_commit_sha", mr.MergeCommitSHA)
	if err != nil {
		return webhook.Result{}, err
	}
	at, err := parseTime("object_attributes.updated_at", mr.UpdatedAt)
	if err != nil {
		return webhook.Result{}, err
	}
	return one(p.mergedEvent(repo, mr.IID, rev, at, mr.Title, mr.Description, mr.SourceBranch, titles(append(mr.Labels, pl.Labels...)))), nil
}

// mergedEvent is the ChangeMerged of merge request iid of repo, merged as
// rev at at, for the webhook and the history import alike (one identity):
// revert_patterns on its title and description, hotfix labels and
// branches.
func (p *Provider) mergedEvent(repo string, iid int64, rev string, at time.Time, title, description, sourceBranch string, labels []string) event.Event {
	ev := event.Event{
		Kind:       event.ChangeMerged,
		Source:     event.SourceGitLab,
		ID:         changeID(repo, iid) + "/merged",
		Time:       at,
		Repository: repo,
		Revision:   rev,
		ChangeID:   changeID(repo, iid),
	}
	if p.signals.ReadsReverts() {
		ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted([]byte(title+"\n\n"+description)), '!', changeID)
	}
	ev.Hotfix = p.signals.HotfixBranch(sourceBranch)
	for _, l := range labels {
		ev.Hotfix = ev.Hotfix || p.signals.HotfixLabel(l)
	}
	return ev
}

// titles are the labels' titles.
func titles(labels []label) []string {
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = l.Title
	}
	return out
}

type deploymentPayload struct {
	Status          string  `json:"status"`
	StatusChangedAt string  `json:"status_changed_at"`
	DeploymentID    int64   `json:"deployment_id"`
	Environment     string  `json:"environment"`
	ShortSHA        string  `json:"short_sha"`
	CommitURL       string  `json:"commit_url"`
	Project         project `json:"project"`
}

// deployment maps a deployment's status: running, success, failed;
// canceled (and any other) is not an outcome.
func (p *Provider) deployment(body []byte) (webhook.Result, error) {
	var pl deploymentPayload
	if err := webhook.DecodeJSON(body, &pl); err != nil {
		return webhook.Result{}, err
	}
	switch pl.Status {
	case "running", "success", "failed":
	case "":
		return webhook.Result{}, webhook.Required("status", pl.Status)
	default:
		return webhook.Result{Ignored: fmt.Sprintf("deployment status %q is not an outcome", pl.Status)}, nil
	}
	repo, err := pl.Project.name()
	if err != nil {
		return webhook.Result{}, err
	}
	if pl.DeploymentID <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "deployment_id"`)
	}
	if err := webhook.Required("environment", pl.Environment); err != nil {
		return webhook.Result{}, err
	}
	at, err := parseTime("status_changed_at", pl.StatusChangedAt)
	if err != nil {
		return webhook.Result{}, err
	}
	return one(deploymentEvent(repo, pl.DeploymentID, pl.Status, pl.Environment, commitFromURL(pl.CommitURL, pl.ShortSHA), at)), nil
}

// deploymentEvent is the event of deployment id of repo reaching status
// (running, success or failed) at at, for the webhook and the history
// import alike: one identity, gitlab/<project>/deployment/<id>/<status>.
func deploymentEvent(repo string, id int64, status, environment, rev string, at time.Time) event.Event {
	deploymentID := fmt.Sprintf("gitlab/%s/deployment/%d", repo, id)
	ev := event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitLab,
		ID:           deploymentID + "/" + status,
		Time:         at,
		Service:      event.Service{Environment: environment},
		Repository:   repo,
		DeploymentID: deploymentID,
		Revision:     rev,
	}
	switch status {
	case "running":
		ev.Kind = event.DeploymentStarted
	case "failed":
		ev.Kind, ev.Reason = event.DeploymentFailed, "failed"
	}
	return ev
}

// commitFromURL returns the full SHA that ends a commit URL
// (https://gitlab.example/group/project/-/commit/<sha>), when it is one and
// agrees with the short SHA; the deployment hook carries no other full SHA.
func commitFromURL(url, short string) string {
	url, _, _ = strings.Cut(url, "?")
	url, _, _ = strings.Cut(url, "#")
	url = strings.TrimSuffix(url, "/")
	sha := url[strings.LastIndexByte(url, '/')+1:]
	if !gitpush.IsSHA(sha) {
		return ""
	}
	sha = strings.ToLower(sha)
	if short != "" && !strings.HasPrefix(sha, strings.ToLower(short)) {
		return ""
	}
	return sha
}

type build struct {
	Stage       string `json:"stage"`
	Status      string `json:"status"`
	FinishedAt  string `json:"finished_at"`
	Environment *struct {
		Name string `json:"name"`
	} `json:"environment"`
}

type pipelinePayload struct {
	ObjectAttributes struct {
		ID         int64  `json:"id"`
		Ref        string `json:"ref"`
		SHA        string `json:"sha"`
		Status     string `json:"status"`
		FinishedAt string `json:"finished_at"`
	} `json:"object_attributes"`
	Project project `json:"project"`
	Builds  []build `json:"builds"`
}

// pipeline yields the outcome of a finished pipeline of a deployment ref
// whose deployment-stage jobs ran: failed if one of them failed (whether
// or not it was allowed to fail), succeeded if they succeeded. A pipeline that failed before its deploy jobs ran
// deployed nothing and is ignored.
func (p *Provider) pipeline(req *webhook.Request) (webhook.Result, error) {
	if len(p.cfg.DeploymentRefs) == 0 {
		return webhook.Result{Ignored: "pipeline events are not used (deployment_refs is empty)"}, nil
	}
	var pl pipelinePayload
	if err := webhook.DecodeJSON(req.Body, &pl); err != nil {
		return webhook.Result{}, err
	}
	oa := pl.ObjectAttributes
	if oa.Ref == "" {
		return webhook.Result{}, webhook.Required("object_attributes.ref", oa.Ref)
	}
	if !p.deploymentRef(oa.Ref) {
		return webhook.Result{Ignored: fmt.Sprintf("pipeline of ref %q, which is not one of deployment_refs", oa.Ref)}, nil
	}
	if oa.Status != "success" && oa.Status != "failed" {
		return webhook.Result{Ignored: fmt.Sprintf("pipeline status %q is not an outcome", oa.Status)}, nil
	}
	var ran []build
	failed := false
	for _, b := range pl.Builds {
		if _, ok := p.stages[b.Stage]; !ok {
			continue
		}
		switch b.Status {
		case "success":
		case "failed":
			// Also with allow_failure: true, where the pipeline passes
			// (with warnings) but this deployment did not happen.
			failed = true
		default: // skipped, manual, canceled, created: did not deploy
			continue
		}
		ran = append(ran, b)
	}
	if len(ran) == 0 {
		return webhook.Result{Ignored: fmt.Sprintf("no job of the deployment stages (%s) ran", strings.Join(p.cfg.DeploymentStages, ", "))}, nil
	}
	repo, err := pl.Project.name()
	if err != nil {
		return webhook.Result{}, err
	}
	if oa.ID <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "object_attributes.id"`)
	}
	rev, err := gitpush.CommitSHA("object_attributes.sha", oa.SHA)
	if err != nil {
		return webhook.Result{}, err
	}
	env := p.cfg.PipelineEnvironment
	for _, b := range ran {
		if b.Environment != nil && b.Environment.Name != "" {
			env = b.Environment.Name
			break
		}
	}
	at, err := p.pipelineTime(req, oa.FinishedAt, ran)
	if err != nil {
		return webhook.Result{}, err
	}
	ev := event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceGitLab,
		Time:         at,
		Service:      event.Service{Environment: env},
		Repository:   repo,
		DeploymentID: fmt.Sprintf("gitlab/%s/pipeline/%d", repo, oa.ID),
		Revision:     rev,
	}
	outcome := "success"
	if failed {
		ev.Kind, ev.Reason = event.DeploymentFailed, "failed"
		outcome = "failed"
	}
	// The id names the deployment's outcome, not the pipeline's status: a
	// deploy job with allow_failure that failed leaves the pipeline
	// "success", and retrying that job makes a second "success" pipeline
	// event, the recovery, which must not look like a redelivery.
	ev.ID = ev.DeploymentID + "/" + outcome
	return one(ev), nil
}

// pipelineTime is when the pipeline finished, else when its last deploy job
// finished, else (no time in the payload) when it was received.
func (p *Provider) pipelineTime(req *webhook.Request, finishedAt string, ran []build) (time.Time, error) {
	if finishedAt != "" {
		return parseTime("object_attributes.finished_at", finishedAt)
	}
	var last time.Time
	for i, b := range ran {
		if b.FinishedAt == "" {
			continue
		}
		t, err := parseTime(fmt.Sprintf("builds[%d].finished_at", i), b.FinishedAt)
		if err != nil {
			return time.Time{}, err
		}
		if t.After(last) {
			last = t
		}
	}
	if last.IsZero() {
		return req.Received, nil
	}
	return last, nil
}

type label struct {
	Title string `json:"title"`
}

type issuePayload struct {
	Project          project `json:"project"`
	ObjectAttributes struct {
		IID       int64   `json:"iid"`
		Action    string  `json:"action"`
		State     string  `json:"state"`
		Type      string  `json:"type"`
		IssueType string  `json:"issue_type"`
		CreatedAt string  `json:"created_at"`
		UpdatedAt string  `json:"updated_at"`
		ClosedAt  string  `json:"closed_at"`
		Labels    []label `json:"labels"`
	} `json:"object_attributes"`
	Labels []label `json:"labels"`
	// Changes is an object in issue hooks; it is decoded only when it is.
	Changes rawObject `json:"changes"`
}

type labelChanges struct {
	Labels *struct {
		Previous []label `json:"previous"`
		Current  []label `json:"current"`
	} `json:"labels"`
	// Type and IssueType change when an issue is turned into an incident.
	Type      *typeChange `json:"type"`
	IssueType *typeChange `json:"issue_type"`
}

type typeChange struct {
	Previous *string `json:"previous"`
	Current  *string `json:"current"`
}

// toIncident reports whether the change made the issue an incident.
func (c *typeChange) toIncident() bool {
	return c != nil && c.Current != nil && strings.EqualFold(*c.Current, "incident") &&
		(c.Previous == nil || !strings.EqualFold(*c.Previous, "incident"))
}

// incidentEnvironment is the environment of incidents from issues: an
// incident is an outage of what users see.
const incidentEnvironment = "production"

// issue yields IncidentOpened and IncidentResolved for incidents: issues
// of type Incident (GitLab sends them as Issue Hook, with object_kind issue
// or work_item) and issues with the incident label.
//
// Opening the issue and adding the incident label to an open issue both
// open the incident at the issue's creation time and share one event ID;
// reopening opens it again; closing resolves it.
func (p *Provider) issue(body []byte) (webhook.Result, error) {
	var pl issuePayload
	if err := webhook.DecodeJSON(body, &pl); err != nil {
		return webhook.Result{}, err
	}
	oa := pl.ObjectAttributes
	labels := oa.Labels
	if len(labels) == 0 {
		labels = pl.Labels
	}
	typed := strings.EqualFold(oa.Type, "incident") || strings.EqualFold(oa.IssueType, "incident")
	incident := typed || hasLabel(labels, p.cfg.IncidentLabel)
	notIncident := webhook.Result{Ignored: fmt.Sprintf("issue is neither of type Incident nor labelled %q", p.cfg.IncidentLabel)}
	var kind event.Kind
	switch oa.Action {
	case "open", "reopen":
		kind = event.IncidentOpened
	case "close":
		kind = event.IncidentResolved
	case "update":
		added, err := p.incidentLabelAdded(pl.Changes)
		if err != nil {
			return webhook.Result{}, err
		}
		if !added {
			return webhook.Result{Ignored: fmt.Sprintf("issue update that neither adds the %q label nor makes it an incident", p.cfg.IncidentLabel)}, nil
		}
		incident = true // the change says so, whatever the attributes
		if oa.State != "opened" {
			return webhook.Result{Ignored: fmt.Sprintf("issue made an incident (the %q label or its type) while closed", p.cfg.IncidentLabel)}, nil
		}
		kind = event.IncidentOpened
	default:
		return webhook.Result{Ignored: fmt.Sprintf("issue action %q", oa.Action)}, nil
	}
	if !incident {
		return notIncident, nil
	}
	repo, err := pl.Project.name()
	if err != nil {
		return webhook.Result{}, err
	}
	if oa.IID <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "object_attributes.iid"`)
	}
	var at time.Time
	action := "opened"
	switch oa.Action {
	case "open", "update":
		at, err = parseTime("object_attributes.created_at", oa.CreatedAt)
	case "reopen":
		at, err = parseTime("object_attributes.updated_at", oa.UpdatedAt)
		action = "reopened"
	case "close":
		if oa.ClosedAt != "" {
			at, err = parseTime("object_attributes.closed_at", oa.ClosedAt)
		} else {
			at, err = parseTime("object_attributes.updated_at", oa.UpdatedAt)
		}
		action = "closed"
	}
	if err != nil {
		return webhook.Result{}, err
	}
	ev := p.incidentEvent(repo, oa.IID, action, at, titles(labels))
	ev.Kind = kind
	return one(ev), nil
}

// incidentEvent is the event of incident issue iid of repo being opened,
// reopened or closed (action) at at, for the webhook and the history
// import alike: one identity, gitlab/<project>/issues/<iid>/opened, or
// .../reopened/<unix time> and .../closed/<unix time> (an issue can be
// reopened and closed again).
func (p *Provider) incidentEvent(repo string, iid int64, action string, at time.Time, labels []string) event.Event {
	ev := event.Event{
		Kind:       event.IncidentOpened,
		Source:     event.SourceGitLab,
		Time:       at,
		Service:    event.Service{Name: p.incidentService(labels), Environment: incidentEnvironment},
		Repository: repo,
		IncidentID: fmt.Sprintf("gitlab/%s/issues/%d", repo, iid),
	}
	ev.ID = ev.IncidentID + "/" + action
	if action != "opened" {
		ev.ID += "/" + strconv.FormatInt(at.Unix(), 10)
	}
	if action == "closed" {
		ev.Kind = event.IncidentResolved
	}
	return ev
}

// incidentService is the service an incident's label names (the label
// after incident_service_label_prefix), or "": the repository's then.
func (p *Provider) incidentService(labels []string) string {
	if p.cfg.IncidentServiceLabelPrefix == "" {
		return ""
	}
	for _, l := range labels {
		if rest, ok := strings.CutPrefix(l, p.cfg.IncidentServiceLabelPrefix); ok && strings.TrimSpace(rest) != "" {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// incidentLabelAdded reports whether an issue update made it an incident:
// added the incident label (changes.labels.current has it,
// changes.labels.previous not), or changed its type to Incident.
func (p *Provider) incidentLabelAdded(changes rawObject) (bool, error) {
	if len(changes) == 0 {
		return false, nil
	}
	var c labelChanges
	if err := webhook.DecodeJSON(changes, &c); err != nil {
		var herr *webhook.Error
		if errors.As(err, &herr) {
			return false, webhook.BadRequest("field \"changes\": %s", herr.Message)
		}
		return false, err
	}
	if c.Type.toIncident() || c.IssueType.toIncident() {
		return true, nil
	}
	if c.Labels == nil {
		return false, nil
	}
	return hasLabel(c.Labels.Current, p.cfg.IncidentLabel) && !hasLabel(c.Labels.Previous, p.cfg.IncidentLabel), nil
}

// rawObject keeps a JSON object as it is and drops any other value (GitLab
// sends "changes": [] in some payloads).
type rawObject []byte

func (r *rawObject) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		*r = append((*r)[:0], t...)
	}
	return nil
}

func one(ev event.Event) webhook.Result { return webhook.Result{Events: []event.Event{ev}} }

func hasLabel(labels []label, want string) bool {
	for _, l := range labels {
		if strings.EqualFold(l.Title, want) {
			return true
		}
	}
	return false
}

// timeLayouts are the forms GitLab writes times in: RFC 3339 in newer
// payloads and commits, "2026-11-02 10:15:00 UTC" in pipeline and job
// hooks (and in many deliveries of the others), and
// "2026-11-02 11:15:00 +0100" in deployment hooks.
var timeLayouts = []string{
	time.RFC3339,
	"2006-01-02 15:04:05 UTC",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 -07:00",
}

// parseTime parses one of GitLab's time formats, into UTC.
func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, webhook.Required(field, v)
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, v); err == nil && !t.IsZero() {
			return t.UTC(), nil
		}
	}
	return time.Time{}, webhook.BadRequest(`field %q: %q is not a time (want RFC 3339 or "2006-01-02 15:04:05 UTC")`, field, v)
}
