package cdevents

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Tekton Pipelines' own CloudEvents (the tektonv1 format of its
// tekton-events-controller, tektoncd/pipeline
// pkg/reconciler/events/cloudevent): binary mode, ce-type
// dev.tekton.event.<pipelinerun|taskrun|customrun>.<state>.v1, the body
// {"pipelineRun": {...}} or {"taskRun": {...}}, the whole run object
// (metadata, spec, status) as v1beta1. They go to the same sink as the
// CDEvents a Tekton installation or its pipelines send, so they arrive
// on this source's path and are told apart by their type.
const tektonTypePrefix = "dev.tekton.event."

// Failure reasons of Tekton runs that are deployments.
const (
	ReasonTektonFailed  = "PipelineFailed"
	ReasonTektonTimeout = "PipelineTimeout"
)

// DeploymentTask makes the finished TaskRuns of the pipeline tasks (or
// tasks) whose name matches Task (a path.Match glob) deployments.
type DeploymentTask struct {
	Task        string `mapstructure:"task"`
	Service     string `mapstructure:"service"`
	Namespace   string `mapstructure:"namespace"`
	Environment string `mapstructure:"environment"`
}

// TektonConfig configures the reading of Tekton's native CloudEvents.
// Pipelines are the source's deployment_pipelines (matched against the
// PipelineRun's pipeline name).
type TektonConfig struct {
	// DeploymentTasks lists the tasks whose TaskRuns are deployments,
	// matched against the pipeline task name (tekton.dev/pipelineTask),
	// then the task name (tekton.dev/task, spec.taskRef.name).
	DeploymentTasks []DeploymentTask `mapstructure:"deployment_tasks"`
	// RevisionNames are the result names, then the param names, whose
	// value is the deployed commit (a full SHA; anything else is skipped).
	RevisionNames []string `mapstructure:"revision_names"`
	// CommitTimeNames are the result names whose value is the commit's
	// time (Unix seconds, as the catalog git-clone task's committer-date,
	// or RFC 3339).
	CommitTimeNames []string `mapstructure:"commit_time_names"`
	// RepositoryNames are the result names, then the param names, whose
	// value is the repository URL (git-clone's url result and param).
	RepositoryNames []string `mapstructure:"repository_names"`
}

// DefaultTektonConfig names what the catalog's git-clone task and common
// pipelines call them.
func DefaultTektonConfig() TektonConfig {
	return TektonConfig{
		RevisionNames:   []string{"commit", "revision", "git-revision", "commit-sha"},
		CommitTimeNames: []string{"committer-date"},
		RepositoryNames: []string{"url", "repo-url", "git-url"},
	}
}

func (c *TektonConfig) validate() []error {
	var errs []error
	for i, dt := range c.DeploymentTasks {
		if strings.TrimSpace(dt.Task) == "" {
			errs = append(errs, fmt.Errorf("tekton::deployment_tasks[%d].task: must not be empty", i))
		} else if _, err := path.Match(dt.Task, ""); err != nil {
			errs = append(errs, fmt.Errorf("tekton::deployment_tasks[%d].task: %q is not a valid glob: %v", i, dt.Task, err))
		}
	}
	return errs
}

// tektonData is the body of a Tekton CloudEvent.
type tektonData struct {
	PipelineRun *tektonRun `json:"pipelineRun"`
	TaskRun     *tektonRun `json:"taskRun"`
	CustomRun   *tektonRun `json:"customRun"`
}

type tektonRun struct {
	Metadata struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		UID             string            `json:"uid"`
		Labels          map[string]string `json:"labels"`
		OwnerReferences []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		Params      []tektonValue `json:"params"`
		PipelineRef *struct {
			Name string `json:"name"`
		} `json:"pipelineRef"`
		TaskRef *struct {
			Name string `json:"name"`
		} `json:"taskRef"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Reason string `json:"reason"`
		} `json:"conditions"`
		StartTime      string `json:"startTime"`
		CompletionTime string `json:"completionTime"`
		// v1beta1 (what the events carry): pipelineResults, taskResults;
		// v1: results.
		PipelineResults []tektonValue `json:"pipelineResults"`
		TaskResults     []tektonValue `json:"taskResults"`
		Results         []tektonValue `json:"results"`
	} `json:"status"`
}

// tektonValue is a param or a result: its value a string, an array or an
// object; only strings are read.
type tektonValue struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

func (v tektonValue) str() string {
	raw := bytes.TrimSpace(v.Value)
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

func lookup(names []string, lists ...[]tektonValue) string {
	for _, list := range lists {
		for _, n := range names {
			for _, v := range list {
				if strings.EqualFold(v.Name, n) {
					if s := v.str(); s != "" {
						return s
					}
				}
			}
		}
	}
	return ""
}

// parseTekton maps one Tekton CloudEvent; it says why when the event is
// ignored.
func (p *Provider) parseTekton(env envelope, received time.Time) ([]event.Event, skipped, error) {
	rest := strings.TrimPrefix(env.ce.Type, tektonTypePrefix)
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[2] != "v1" {
		return nil, skip("Tekton event type %q is not used", env.ce.Type), nil
	}
	resource, state := parts[0], parts[1]
	if resource != "pipelinerun" && resource != "taskrun" {
		return nil, skip("Tekton %s events are not used", resource), nil
	}
	var kind event.Kind
	switch state {
	case "started":
		kind = event.DeploymentStarted
	case "successful":
		kind = event.DeploymentSucceeded
	case "failed":
		kind = event.DeploymentFailed
	default:
		// queued, running and unknown repeat what started said.
		return nil, skip("Tekton %s.%s events are not used", resource, state), nil
	}
	var data tektonData
	if err := webhook.DecodeJSON(env.data, &data); err != nil {
		return nil, skipped{}, err
	}
	run, field := data.PipelineRun, "pipelineRun"
	if resource == "taskrun" {
		run, field = data.TaskRun, "taskRun"
	}
	if run == nil {
		return nil, skipped{}, webhook.BadRequest("missing required field %q for type %q", field, env.ce.Type)
	}
	md := &run.Metadata
	if err := webhook.Required(field+".metadata.name", md.Name); err != nil {
		return nil, skipped{}, err
	}

	// What the run is, and whether it deploys.
	var svc event.Service
	var name string
	if resource == "pipelinerun" {
		name = md.Labels["tekton.dev/pipeline"]
		if name == "" && run.Spec.PipelineRef != nil {
			name = run.Spec.PipelineRef.Name
		}
		dp, ok := p.deploymentPipeline(name)
		if !ok {
			return nil, skip("pipeline %q is not a deployment pipeline (see deployment_pipelines)", name), nil
		}
		svc = event.Service{Namespace: dp.Namespace, Name: dp.Service, Environment: dp.Environment}
	} else {
		names := []string{md.Labels["tekton.dev/pipelineTask"], md.Labels["tekton.dev/task"]}
		if run.Spec.TaskRef != nil {
			names = append(names, run.Spec.TaskRef.Name)
		}
		dt, n, ok := p.deploymentTask(names)
		if !ok {
			return nil, skip("task %q is not a deployment task (see tekton::deployment_tasks)", strings.Join(nonEmpty(names), "/")), nil
		}
		name = n
		svc = event.Service{Namespace: dt.Namespace, Name: dt.Service, Environment: dt.Environment}
	}
	if svc.Environment == "" {
		svc.Environment = p.cfg.DefaultEnvironment
	}

	results := run.Status.PipelineResults
	if resource == "taskrun" {
		results = run.Status.TaskResults
	}
	tc := &p.cfg.Tekton
	ev := event.Event{Kind: kind, Source: event.SourceCDEvents, Service: svc}
	ev.Revision = commitSHA(lookup(tc.RevisionNames, results, run.Status.Results, run.Spec.Params))
	if ev.Revision != "" {
		ev.CommitTime = tektonTime(lookup(tc.CommitTimeNames, results, run.Status.Results))
	}
	ev.Repository = repoFromURL(lookup(tc.RepositoryNames, results, run.Status.Results, run.Spec.Params))
	if ev.Service.Name == "" && ev.Repository == "" {
		// With a repository the receiver's services mapping names the
		// service (else the repository's last element), as it does for
		// the repository's pushes; a pipeline's name ("deploy-api")
		// rarely is one.
		ev.Service.Name = name
	}

	// The run's identity: its uid (unique for every run, unlike a name a
	// later run may reuse), else namespace/name. Tekton gives every send a
	// new CloudEvent id, also when it re-sends after a restart: the id is
	// the run's and the state's, so a re-sent state counts once.
	self := runKey(resource, md.Namespace, md.Name, md.UID)
	ev.ID = "tekton/" + self + "/" + state
	ev.DeploymentID = "tekton/" + self
	if resource == "taskrun" {
		// A deploy task of a deployment pipeline is that pipeline run's
		// deployment.
		for _, o := range md.OwnerReferences {
			if o.Kind == "PipelineRun" && (o.UID != "" || o.Name != "") {
				ev.DeploymentID = "tekton/" + runKey("pipelinerun", md.Namespace, o.Name, o.UID)
			}
		}
	}

	var err error
	at := received
	stamp := run.Status.CompletionTime
	if kind == event.DeploymentStarted {
		stamp = run.Status.StartTime
	}
	if stamp == "" {
		stamp = env.ce.Time
	}
	if stamp != "" {
		if at, err = time.Parse(time.RFC3339Nano, stamp); err != nil {
			return nil, skipped{}, webhook.BadRequest("field %q: %q is not an RFC 3339 time", field+".status.completionTime", stamp)
		}
	}
	ev.Time = at.UTC()

	if kind == event.DeploymentFailed {
		reason := ""
		for _, c := range run.Status.Conditions {
			if c.Type == "Succeeded" {
				reason = c.Reason
			}
		}
		switch {
		case strings.Contains(reason, "Cancelled") || strings.HasPrefix(reason, "Stopped"):
			// Cancelled by a user (Cancelled, PipelineRunCancelled,
			// TaskRunCancelled, CancelledRunFinally, StoppedRunFinally):
			// not a failed deployment.
			return nil, skip("%s %s was cancelled (%s)", resource, md.Name, reason), nil
		case strings.Contains(reason, "Timeout"):
			ev.Reason = ReasonTektonTimeout
		default:
			ev.Reason = ReasonTektonFailed
		}
	}
	return []event.Event{ev}, skipped{}, nil
}

func runKey(resource, namespace, name, uid string) string {
	if uid != "" {
		return resource + "/" + uid
	}
	return resource + "/" + namespace + "/" + name
}

func nonEmpty(ss []string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// deploymentTask returns the first tekton::deployment_tasks entry that
// matches one of names (in order), and the name it matched.
func (p *Provider) deploymentTask(names []string) (DeploymentTask, string, bool) {
	for _, dt := range p.cfg.Tekton.DeploymentTasks {
		for _, n := range names {
			if n == "" {
				continue
			}
			if ok, _ := path.Match(dt.Task, n); ok {
				return dt, n, true
			}
		}
	}
	return DeploymentTask{}, "", false
}

// commitSHA returns s in lower case when it is a full SHA-1 or SHA-256.
func commitSHA(s string) string {
	s = strings.ToLower(s)
	if len(s) != 40 && len(s) != 64 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return s
}

// tektonTime reads a commit time: Unix seconds (git-clone's
// committer-date) or RFC 3339.
func tektonTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < secondsAsMillis {
		return time.Unix(n, 0).UTC()
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	return time.Time{}
}

// secondsAsMillis is the start of year 10000: a larger number is not Unix
// seconds.
const secondsAsMillis = 253_402_300_800

// repoFromURL is the org/repo path of a Git URL (https, ssh or scp-like
// git@host:org/repo.git), or "".
func repoFromURL(u string) string {
	if u == "" {
		return ""
	}
	p := ""
	if parsed, err := url.Parse(u); err == nil && parsed.Host != "" {
		p = parsed.Path
	} else if at := strings.Index(u, "@"); at >= 0 {
		if _, after, ok := strings.Cut(u[at:], ":"); ok {
			p = after
		}
	}
	p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
	if !strings.Contains(p, "/") {
		return ""
	}
	return p
}
