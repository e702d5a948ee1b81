package azuredevops

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Pushes are read with jsonscan.Scanner (a second pass after the
// envelope's), keeping only
//
//	{resource{commits[{commitId, comment, committer{date}}], refUpdates[{name, oldObjectId, newObjectId}], repository{name, project{name}}}}
//
// A push's commits carry no parents: they are linked in the order the
// payload lists them, which is newest first (the first is the updated
// branch's new head); a list that ends with the new head is read the other
// way round.

type pushCommit struct {
	id, date, comment []byte
}

type refUpdate struct {
	name, oldID, newID []byte
}

type pushScratch struct {
	scan    jsonscan.Scanner
	commits []pushCommit
	refs    []refUpdate
	repo    string
	project string
	text    []byte
}

var pushScratchPool = sync.Pool{New: func() any { return new(pushScratch) }}

func (ps *pushScratch) reset() {
	clear(ps.commits)
	clear(ps.refs)
	ps.commits, ps.refs, ps.text, ps.repo, ps.project = ps.commits[:0], ps.refs[:0], ps.text[:0], "", ""
}

func (ps *pushScratch) release() {
	ps.reset()
	if cap(ps.commits) > 1024 || cap(ps.refs) > 1024 || cap(ps.text) > 1<<20 {
		return
	}
	ps.scan = jsonscan.Scanner{}
	pushScratchPool.Put(ps)
}

func (ps *pushScratch) decode(body []byte) error {
	ps.reset()
	s := &ps.scan
	s.Reset(body)
	if s.Object("") {
		for s.NextKey() {
			if !s.KeyIs("resource") {
				s.Skip()
				continue
			}
			if !s.Object("resource") {
				continue
			}
			for s.NextKey() {
				switch {
				case s.KeyIs("commits"):
					ps.commits = ps.commits[:0]
					if s.Array("resource.commits") {
						for s.NextElem() {
							ps.commits = append(ps.commits, ps.decodeCommit(s))
						}
					}
				case s.KeyIs("refUpdates"):
					ps.refs = ps.refs[:0]
					if s.Array("resource.refUpdates") {
						for s.NextElem() {
							ps.refs = append(ps.refs, decodeRef(s))
						}
					}
				case s.KeyIs("repository"):
					if s.Object("resource.repository") {
						for s.NextKey() {
							switch {
							case s.KeyIs("name"):
								ps.repo = s.String("resource.repository.name")
							case s.KeyIs("project"):
								if s.Object("resource.repository.project") {
									for s.NextKey() {
										if s.KeyIs("name") {
											ps.project = s.String("resource.repository.project.name")
										} else {
											s.Skip()
										}
									}
								}
							default:
								s.Skip()
							}
						}
					}
				default:
					s.Skip()
				}
			}
		}
	}
	return s.Err()
}

func (ps *pushScratch) decodeCommit(s *jsonscan.Scanner) pushCommit {
	var c pushCommit
	if !s.Object("resource.commits") {
		return c
	}
	for s.NextKey() {
		switch {
		case s.KeyIs("commitId"):
			c.id, _ = s.StringBytes("resource.commits.commitId")
		case s.KeyIs("comment"):
			var v []byte
			var ok bool
			if ps.text, v, ok = s.AppendString(ps.text, "resource.commits.comment"); ok {
				c.comment = v
			}
		case s.KeyIs("committer"):
			if s.Object("resource.commits.committer") {
				for s.NextKey() {
					if s.KeyIs("date") {
						c.date, _ = s.StringBytes("resource.commits.committer.date")
					} else {
						s.Skip()
					}
				}
			}
		default:
			s.Skip()
		}
	}
	return c
}

func decodeRef(s *jsonscan.Scanner) refUpdate {
	var r refUpdate
	if !s.Object("resource.refUpdates") {
		return r
	}
	for s.NextKey() {
		switch {
		case s.KeyIs("name"):
			r.name, _ = s.StringBytes("resource.refUpdates.name")
		case s.KeyIs("oldObjectId"):
			r.oldID, _ = s.StringBytes("resource.refUpdates.oldObjectId")
		case s.KeyIs("newObjectId"):
			r.newID, _ = s.StringBytes("resource.refUpdates.newObjectId")
		default:
			s.Skip()
		}
	}
	return r
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// push yields one ChangeCommitted per pushed commit, oldest first, each
// linked to the one before it; the oldest is linked to the branch's old
// head when one branch was updated.
func (p *Provider) push(ps *pushScratch, env envelope, body []byte) (webhook.Result, error) {
	if err := ps.decode(body); err != nil {
		return webhook.Result{}, err
	}
	var branch *refUpdate
	branches := 0
	for i := range ps.refs {
		r := &ps.refs[i]
		if hasPrefix(r.name, "refs/heads/") && len(r.newID) > 0 && !gitpush.IsZeroSHABytes(r.newID) {
			branches++
			branch = r
		}
	}
	switch {
	case len(ps.refs) == 0:
		return webhook.Result{}, webhook.Required("resource.refUpdates", "")
	case branches == 0:
		return webhook.Result{Ignored: "push without a branch created or updated (tags or deletions only)"}, nil
	case len(ps.commits) == 0:
		return webhook.Result{Ignored: "push without new commits"}, nil
	}
	if err := webhook.Required("resource.repository.project.name", ps.project, "resource.repository.name", ps.repo); err != nil {
		return webhook.Result{}, err
	}
	repo := ps.project + "/" + ps.repo
	// Oldest first: the list is newest first unless it ends with the head.
	n := len(ps.commits)
	newestFirst := true
	if branches == 1 && n > 1 && strings.EqualFold(string(ps.commits[n-1].id), string(branch.newID)) {
		newestFirst = false
	}
	parent := ""
	if branches == 1 && len(branch.oldID) > 0 && !gitpush.IsZeroSHABytes(branch.oldID) {
		var err error
		if parent, err = gitpush.CommitSHA("resource.refUpdates.oldObjectId", string(branch.oldID)); err != nil {
			return webhook.Result{}, err
		}
	}
	res := webhook.Result{Events: make([]event.Event, 0, n)}
	for k := range n {
		i := k
		if newestFirst {
			i = n - 1 - k
		}
		c := &ps.commits[i]
		field := "resource.commits[" + strconv.Itoa(i) + "]"
		id, rev, err := gitpush.CommitEventID(env.id, "/", i, c.id)
		if err != nil {
			return webhook.Result{}, webhook.BadRequest("field %q: %q is not a full commit SHA", field+".commitId", c.id)
		}
		at, err := parseTime(field+".committer.date", c.date)
		if err != nil {
			return webhook.Result{}, err
		}
		ev := event.Event{
			Kind:           event.ChangeCommitted,
			Source:         event.SourceAzureDevOps,
			ID:             id,
			Time:           at,
			Repository:     repo,
			Revision:       rev,
			ParentRevision: parent,
		}
		if len(c.comment) > 0 && p.signals.ReadsReverts() {
			ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted(c.comment), '!', changeID)
		}
		res.Events = append(res.Events, ev)
		parent = rev
	}
	return res, nil
}

type repository struct {
	Name    string `json:"name"`
	Project struct {
		Name string `json:"name"`
	} `json:"project"`
}

type commitRef struct {
	CommitID string `json:"commitId"`
}

type pullRequestPayload struct {
	Resource struct {
		PullRequestID   int64      `json:"pullRequestId"`
		Status          string     `json:"status"`
		MergeStatus     string     `json:"mergeStatus"`
		Title           string     `json:"title"`
		Description     string     `json:"description"`
		SourceRefName   string     `json:"sourceRefName"`
		ClosedDate      string     `json:"closedDate"`
		LastMergeCommit commitRef  `json:"lastMergeCommit"`
		Repository      repository `json:"repository"`
	} `json:"resource"`
}

// pullRequestMerged yields ChangeMerged for a completed pull request, at
// its merge commit. Azure DevOps also sends git.pullrequest.merged when it
// creates a merge commit to test an active pull request: those are
// ignored.
func (p *Provider) pullRequestMerged(env envelope, body []byte) (webhook.Result, error) {
	var pl pullRequestPayload
	if err := webhook.DecodeJSON(body, &pl); err != nil {
		return webhook.Result{}, err
	}
	r := &pl.Resource
	if r.Status != "completed" {
		return webhook.Result{Ignored: fmt.Sprintf("pull request %q, not completed", r.Status)}, nil
	}
	if r.MergeStatus != "" && r.MergeStatus != "succeeded" {
		return webhook.Result{Ignored: fmt.Sprintf("pull request merge status %q", r.MergeStatus)}, nil
	}
	if err := webhook.Required("resource.repository.project.name", r.Repository.Project.Name, "resource.repository.name", r.Repository.Name); err != nil {
		return webhook.Result{}, err
	}
	repo := r.Repository.Project.Name + "/" + r.Repository.Name
	if r.PullRequestID <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "resource.pullRequestId"`)
	}
	rev, err := gitpush.CommitSHA("resource.lastMergeCommit.commitId", r.LastMergeCommit.CommitID)
	if err != nil {
		return webhook.Result{}, err
	}
	at, err := parseTime("resource.closedDate", []byte(r.ClosedDate))
	if err != nil {
		return webhook.Result{}, err
	}
	ev := event.Event{
		Kind:       event.ChangeMerged,
		Source:     event.SourceAzureDevOps,
		ID:         env.id,
		Time:       at,
		Repository: repo,
		Revision:   rev,
		ChangeID:   changeID(repo, r.PullRequestID),
		Hotfix:     p.signals.HotfixBranch(strings.TrimPrefix(r.SourceRefName, "refs/heads/")),
	}
	if p.signals.ReadsReverts() {
		ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted([]byte(r.Title+"\n\n"+r.Description)), '!', changeID)
	}
	return webhook.Result{Events: []event.Event{ev}}, nil
}

type pipelineRef struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type run struct {
	ID           int64       `json:"id"`
	State        string      `json:"state"`
	Result       string      `json:"result"`
	CreatedDate  string      `json:"createdDate"`
	FinishedDate string      `json:"finishedDate"`
	Pipeline     pipelineRef `json:"pipeline"`
	Resources    struct {
		Repositories struct {
			Self struct {
				Version string `json:"version"`
			} `json:"self"`
		} `json:"repositories"`
	} `json:"resources"`
}

type runPayload struct {
	Resource struct {
		Run      run         `json:"run"`
		Pipeline pipelineRef `json:"pipeline"`
		Stage    struct {
			Name   string `json:"name"`
			State  string `json:"state"`
			Result string `json:"result"`
		} `json:"stage"`
	} `json:"resource"`
}

// pipeline returns the configured pipeline that name matches.
func (p *Provider) pipeline(name string) *PipelineConfig {
	for i := range p.cfg.Pipelines {
		if ok, _ := path.Match(p.cfg.Pipelines[i].Name, name); ok {
			return &p.cfg.Pipelines[i]
		}
	}
	return nil
}

// outcome maps a run's or stage's state and result to an event kind:
// inProgress (runs) or running (stages) is a start, completed is the
// outcome by its result. A canceled run or stage is not an outcome of the
// change; partiallySucceeded (a task failed and the run went on) is a
// failure.
func outcome(state, result string) (event.Kind, string, bool) {
	switch state {
	case "inProgress", "running":
		return event.DeploymentStarted, "", true
	case "completed":
		switch result {
		case "succeeded":
			return event.DeploymentSucceeded, "", true
		case "failed", "partiallySucceeded":
			return event.DeploymentFailed, result, true
		}
	}
	return event.KindUnknown, "", false
}

// deployment fills what run and stage events share.
func (p *Provider) deployment(env envelope, pc *PipelineConfig, r *run, pipelineName, environment string) (event.Event, error) {
	ev := event.Event{
		Source:      event.SourceAzureDevOps,
		ID:          env.id,
		Repository:  pc.Repository,
		Service:     event.Service{Environment: environment},
		ServiceHint: pipelineName,
	}
	if v := r.Resources.Repositories.Self.Version; v != "" {
		rev, err := gitpush.CommitSHA("resource.run.resources.repositories.self.version", v)
		if err != nil {
			return ev, err
		}
		ev.Revision = rev
	}
	if r.ID <= 0 {
		return ev, webhook.BadRequest(`missing required field "resource.run.id"`)
	}
	if err := webhook.Required("resourceContainers.project.id", env.project); err != nil {
		return ev, err
	}
	ev.DeploymentID = "azure_devops/" + env.project + "/run/" + strconv.FormatInt(r.ID, 10)
	return ev, nil
}

func pipelineName(pl *runPayload) string {
	if n := pl.Resource.Pipeline.Name; n != "" {
		return n
	}
	return pl.Resource.Run.Pipeline.Name
}

// runStateChanged: a run of a configured pipeline without stages is a
// deployment.
func (p *Provider) runStateChanged(env envelope, body []byte) (webhook.Result, error) {
	var pl runPayload
	if err := webhook.DecodeJSON(body, &pl); err != nil {
		return webhook.Result{}, err
	}
	name := pipelineName(&pl)
	pc := p.pipeline(name)
	if pc == nil || len(pc.Stages) > 0 {
		return webhook.Result{Ignored: fmt.Sprintf("runs of pipeline %q are not deployments (pipelines)", name)}, nil
	}
	r := &pl.Resource.Run
	kind, reason, ok := outcome(r.State, r.Result)
	if !ok {
		return webhook.Result{Ignored: fmt.Sprintf("run state %q, result %q is not a deployment's start or outcome", r.State, r.Result)}, nil
	}
	environment := pc.Environment
	if environment == "" {
		environment = "production"
	}
	ev, err := p.deployment(env, pc, r, name, environment)
	if err != nil {
		return webhook.Result{}, err
	}
	at, field := r.FinishedDate, "resource.run.finishedDate"
	if kind == event.DeploymentStarted {
		at, field = r.CreatedDate, "resource.run.createdDate"
	}
	if ev.Time, err = parseTime(field, []byte(at)); err != nil {
		return webhook.Result{}, err
	}
	ev.Kind, ev.Reason = kind, reason
	return webhook.Result{Events: []event.Event{ev}}, nil
}

// stageStateChanged: a configured stage of a configured pipeline is a
// deployment, to the pipeline's environment or the stage's name. The
// stage carries no time: the notification's is used.
func (p *Provider) stageStateChanged(env envelope, body []byte) (webhook.Result, error) {
	var pl runPayload
	if err := webhook.DecodeJSON(body, &pl); err != nil {
		return webhook.Result{}, err
	}
	name := pipelineName(&pl)
	st := &pl.Resource.Stage
	pc := p.pipeline(name)
	if pc == nil || !matchAny(pc.Stages, st.Name) {
		return webhook.Result{Ignored: fmt.Sprintf("stage %q of pipeline %q is not a deployment (pipelines)", st.Name, name)}, nil
	}
	kind, reason, ok := outcome(st.State, st.Result)
	if !ok {
		return webhook.Result{Ignored: fmt.Sprintf("stage state %q, result %q is not a deployment's start or outcome", st.State, st.Result)}, nil
	}
	environment := pc.Environment
	if environment == "" {
		environment = st.Name
	}
	ev, err := p.deployment(env, pc, &pl.Resource.Run, name, environment)
	if err != nil {
		return webhook.Result{}, err
	}
	ev.DeploymentID += "/stage/" + st.Name
	if ev.Time, err = parseTime("createdDate", env.created); err != nil {
		return webhook.Result{}, err
	}
	ev.Kind, ev.Reason = kind, reason
	return webhook.Result{Events: []event.Event{ev}}, nil
}

func matchAny(patterns []string, v string) bool {
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, v); ok && v != "" {
			return true
		}
	}
	return false
}

type releasePayload struct {
	Resource struct {
		Environment struct {
			ID                int64  `json:"id"`
			Name              string `json:"name"`
			Status            string `json:"status"`
			ReleaseDefinition struct {
				Name string `json:"name"`
			} `json:"releaseDefinition"`
			Release struct {
				ID   int64  `json:"id"`
				Name string `json:"name"`
			} `json:"release"`
		} `json:"environment"`
		Deployment struct {
			ReleaseDefinition struct {
				Name string `json:"name"`
			} `json:"releaseDefinition"`
			Release struct {
				Artifacts []struct {
					IsPrimary           bool `json:"isPrimary"`
					DefinitionReference struct {
						SourceVersion struct {
							ID string `json:"id"`
						} `json:"sourceVersion"`
					} `json:"definitionReference"`
				} `json:"artifacts"`
			} `json:"release"`
		} `json:"deployment"`
		Project struct {
			Name string `json:"name"`
		} `json:"project"`
	} `json:"resource"`
}

// releaseDeploymentCompleted: a classic release's deployment to a stage
// (its environment) is a deployment to the environment of that name, of
// the service named by the release definition. The notification's time is
// when it completed.
func (p *Provider) releaseDeploymentCompleted(env envelope, body []byte) (webhook.Result, error) {
	var pl releasePayload
	if err := webhook.DecodeJSON(body, &pl); err != nil {
		return webhook.Result{}, err
	}
	e := &pl.Resource.Environment
	var kind event.Kind
	reason := ""
	switch e.Status {
	case "succeeded":
		kind = event.DeploymentSucceeded
	case "failed", "rejected", "partiallySucceeded":
		kind, reason = event.DeploymentFailed, e.Status
	case "":
		return webhook.Result{}, webhook.Required("resource.environment.status", "")
	default: // canceled, notStarted, inProgress, queued, scheduled, undefined
		return webhook.Result{Ignored: fmt.Sprintf("release deployment status %q is not an outcome", e.Status)}, nil
	}
	if err := webhook.Required("resource.environment.name", e.Name, "resource.project.name", pl.Resource.Project.Name); err != nil {
		return webhook.Result{}, err
	}
	if e.Release.ID <= 0 {
		return webhook.Result{}, webhook.BadRequest(`missing required field "resource.environment.release.id"`)
	}
	service := e.ReleaseDefinition.Name
	if service == "" {
		service = pl.Resource.Deployment.ReleaseDefinition.Name
	}
	if service == "" {
		service = pl.Resource.Project.Name
	}
	at, err := parseTime("createdDate", env.created)
	if err != nil {
		return webhook.Result{}, err
	}
	ev := event.Event{
		Kind:         kind,
		Source:       event.SourceAzureDevOps,
		ID:           env.id,
		Time:         at,
		Service:      event.Service{Environment: e.Name},
		ServiceHint:  service,
		DeploymentID: fmt.Sprintf("azure_devops/%s/release/%d/environment/%d", pl.Resource.Project.Name, e.Release.ID, e.ID),
		Reason:       reason,
	}
	for _, a := range pl.Resource.Deployment.Release.Artifacts {
		if v := a.DefinitionReference.SourceVersion.ID; a.IsPrimary && gitpush.IsSHA(v) {
			ev.Revision = strings.ToLower(v)
		}
	}
	return webhook.Result{Events: []event.Event{ev}}, nil
}
