// Package cdevents is the source for CDEvents (cdevents.dev, spec v0.4)
// delivered over the CloudEvents HTTP binding, in every form a producer
// uses:
//
//   - structured mode: Content-Type application/cloudevents+json, the body
//     a CloudEvent whose data is the CDEvent;
//   - batched structured mode: application/cloudevents-batch+json, an array
//     of such CloudEvents;
//   - binary mode: the ce-specversion, ce-id, ce-source, ce-type and
//     ce-time headers, the CDEvent as the body (application/json or
//     application/cdevents+json);
//   - a plain CDEvent POSTed as application/json without ce- headers.
//
// Event types are matched without their version
// (dev.cdevents.service.deployed.0.2.0 is service.deployed):
// service.deployed and service.upgraded are successful deployments,
// service.rolledback a rollback, change.merged a merged change,
// incident.detected / incident.reported and incident.resolved incidents,
// and pipelinerun.finished a deployment when its pipeline is configured as
// a deployment pipeline. Other types are ignored.
//
// CloudEvents are not signed; deliveries carry "Authorization: Bearer
// <token>", checked in constant time against the configured token.
package cdevents

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// DefaultPath is the URL path the source listens on unless configured.
const DefaultPath = "/webhooks/cdevents"

// Media types of the CloudEvents HTTP binding.
const (
	MediaTypeStructured = "application/cloudevents+json"
	MediaTypeBatch      = "application/cloudevents-batch+json"
	MediaTypeCDEvents   = "application/cdevents+json"
)

// Failure reasons of pipeline runs that are deployments.
const (
	ReasonPipelineFailed = "PipelineFailed"
	ReasonPipelineError  = "PipelineError"
)

// DeploymentPipeline makes the finished runs of the pipelines whose
// pipelineName matches Pipeline (a path.Match glob) deployments of a
// service.
type DeploymentPipeline struct {
	Pipeline string `mapstructure:"pipeline"`
	// Service is the deployed service; empty: the pipeline name.
	Service   string `mapstructure:"service"`
	Namespace string `mapstructure:"namespace"`
	// Environment is where the pipeline deploys; empty: default_environment.
	Environment string `mapstructure:"environment"`
}

// Config configures the CDEvents source.
type Config struct {
	// Path is the URL path producers post to.
	Path string `mapstructure:"path"`
	// Token (TokenConfig) is the bearer token of the deliveries' Authorization header.
	// Required unless insecure_skip_verify.
	webhook.TokenConfig `mapstructure:",squash"`
	// DefaultEnvironment applies to events that name no environment.
	DefaultEnvironment string `mapstructure:"default_environment"`
	// DeploymentPipelines lists the pipelines whose finished runs are
	// deployments; the first match wins. Empty: pipelinerun events are
	// ignored.
	DeploymentPipelines []DeploymentPipeline `mapstructure:"deployment_pipelines"`
	// Tekton configures Tekton Pipelines' native CloudEvents
	// (dev.tekton.event.*), read on the same path.
	Tekton TektonConfig `mapstructure:"tekton"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, DefaultEnvironment: "production", Tekton: DefaultTektonConfig()}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path: %q must start with /", c.Path))
	}
	if err := c.TokenConfig.Check("sent as Authorization: Bearer <token>"); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.DefaultEnvironment) == "" {
		errs = append(errs, errors.New("default_environment: must not be empty"))
	}
	for i, dp := range c.DeploymentPipelines {
		if strings.TrimSpace(dp.Pipeline) == "" {
			errs = append(errs, fmt.Errorf("deployment_pipelines[%d].pipeline: must not be empty", i))
		} else if _, err := path.Match(dp.Pipeline, ""); err != nil {
			errs = append(errs, fmt.Errorf("deployment_pipelines[%d].pipeline: %q is not a valid glob: %v", i, dp.Pipeline, err))
		}
	}
	errs = append(errs, c.Tekton.validate()...)
	return errors.Join(errs...)
}

// CloudEvent is a CloudEvent in the JSON format (structured mode).
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	DataBase64      string          `json:"data_base64"`
}

// CDEvent is the part of a CDEvent the source uses. The content of the
// subject depends on the type and is decoded once the type is known.
type CDEvent struct {
	Context Context `json:"context"`
	Subject Subject `json:"subject"`
}

// Context is a CDEvent's context ("version" up to spec v0.4,
// "specversion" from v0.5).
type Context struct {
	Version     string `json:"version"`
	SpecVersion string `json:"specversion"`
	ID          string `json:"id"`
	Source      string `json:"source"`
	Type        string `json:"type"`
	Timestamp   string `json:"timestamp"`
}

// Subject is a CDEvent's subject.
type Subject struct {
	ID      string          `json:"id"`
	Source  string          `json:"source"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// Reference is a reference to another subject ({id, source}); the
// repository of a change may also carry name, owner and url.
type Reference struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Name   string `json:"name"`
	Owner  string `json:"owner"`
	URL    string `json:"url"`
}

// serviceContent is the content of service.deployed, service.upgraded and
// service.rolledback.
type serviceContent struct {
	Environment Reference `json:"environment"`
	ArtifactID  string    `json:"artifactId"`
}

// incidentContent is the content of incident.detected, incident.reported
// and incident.resolved.
type incidentContent struct {
	Description string    `json:"description"`
	Environment Reference `json:"environment"`
	Service     Reference `json:"service"`
	ArtifactID  string    `json:"artifactId"`
}

// changeContent is the content of change.merged.
type changeContent struct {
	Repository Reference `json:"repository"`
}

// pipelineRunContent is the content of pipelinerun.finished.
type pipelineRunContent struct {
	PipelineName string `json:"pipelineName"`
	URL          string `json:"url"`
	Outcome      string `json:"outcome"`
	Errors       string `json:"errors"`
}

// Provider implements webhook.Provider for CDEvents.
type Provider struct{ cfg Config }

// New returns the provider for cfg.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

func (p *Provider) Name() string { return event.SourceCDEvents }

func (p *Provider) ContentTypes() []string {
	return []string{"application/json", MediaTypeStructured, MediaTypeBatch, MediaTypeCDEvents}
}

// envelope is one CDEvent with the CloudEvents attributes it came with.
type envelope struct {
	ce   CloudEvent // attributes only; empty for a plain CDEvent
	data []byte     // the CDEvent
}

// Parse turns one delivery (one CloudEvent, a batch, or a plain CDEvent)
// into events.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		token := webhook.BearerToken(req.Header.Get("Authorization"))
		if token == "" {
			// Senders that cannot set headers (Tekton's events
			// controller takes a sink URL only) put the token in the
			// URL, as RFC 6750 section 2.3 allows.
			token = queryToken(req.RawQuery)
		}
		if token == "" {
			return webhook.Result{}, webhook.Unauthorized("missing Authorization: Bearer <token> header (or access_token URL parameter)")
		}
		if !p.cfg.Equal(token) {
			return webhook.Result{}, webhook.Unauthorized("the bearer token does not match the configured token")
		}
	}
	envs, err := envelopes(req)
	if err != nil {
		return webhook.Result{}, err
	}
	var res webhook.Result
	var ignored []string
	for i, env := range envs {
		evs, skip, err := p.parseOne(env, req.Received)
		if err != nil {
			if len(envs) > 1 {
				var herr *webhook.Error
				if errors.As(err, &herr) {
					return webhook.Result{}, &webhook.Error{Status: herr.Status, Message: fmt.Sprintf("event %d: %s", i, herr.Message)}
				}
			}
			return webhook.Result{}, err
		}
		if skip.why != "" {
			ignored = append(ignored, skip.why)
			if skip.noService {
				res.WithoutService++
			}
		}
		res.Events = append(res.Events, evs...)
	}
	if len(res.Events) == 0 {
		res.Ignored = strings.Join(ignored, "; ")
		if res.Ignored == "" {
			res.Ignored = "empty batch"
		}
	}
	return res, nil
}

// skipped says why a CDEvent is not used; noService marks an incident that
// names no service, counted apart (webhook.Result.WithoutService).
type skipped struct {
	why       string
	noService bool
}

// skip is the reason an event is not used.
func skip(format string, args ...any) skipped { return skipped{why: fmt.Sprintf(format, args...)} }

// envelopes splits a delivery into CDEvents according to its content mode.
func envelopes(req *webhook.Request) ([]envelope, error) {
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	switch {
	case mt == MediaTypeBatch:
		var batch []json.RawMessage
		if err := webhook.DecodeJSON(req.Body, &batch); err != nil {
			return nil, err
		}
		envs := make([]envelope, 0, len(batch))
		for i, raw := range batch {
			env, err := structured(raw)
			if err != nil {
				var herr *webhook.Error
				if errors.As(err, &herr) {
					return nil, &webhook.Error{Status: herr.Status, Message: fmt.Sprintf("event %d: %s", i, herr.Message)}
				}
				return nil, err
			}
			envs = append(envs, env)
		}
		return envs, nil
	case mt == MediaTypeStructured:
		env, err := structured(req.Body)
		return []envelope{env}, err
	case req.Header.Get("Ce-Specversion") != "":
		// Binary mode: the attributes are headers, the body the CDEvent.
		ce := CloudEvent{
			SpecVersion: req.Header.Get("Ce-Specversion"),
			ID:          req.Header.Get("Ce-Id"),
			Source:      req.Header.Get("Ce-Source"),
			Type:        req.Header.Get("Ce-Type"),
			Subject:     req.Header.Get("Ce-Subject"),
			Time:        req.Header.Get("Ce-Time"),
		}
		return []envelope{{ce: ce, data: req.Body}}, nil
	default:
		// A plain CDEvent, or a structured CloudEvent sent as
		// application/json.
		var probe struct {
			SpecVersion string          `json:"specversion"`
			Context     json.RawMessage `json:"context"`
		}
		if err := webhook.DecodeJSON(req.Body, &probe); err != nil {
			return nil, err
		}
		if probe.SpecVersion != "" && len(probe.Context) == 0 {
			env, err := structured(req.Body)
			return []envelope{env}, err
		}
		return []envelope{{data: req.Body}}, nil
	}
}

// structured decodes a CloudEvent in the JSON format and extracts its data.
func structured(body []byte) (envelope, error) {
	var ce CloudEvent
	if err := webhook.DecodeJSON(body, &ce); err != nil {
		return envelope{}, err
	}
	data := bytes.TrimSpace(ce.Data)
	switch {
	case len(data) > 0 && !bytes.Equal(data, []byte("null")):
		if data[0] == '"' {
			// JSON text carried as a string.
			var s string
			if err := json.Unmarshal(data, &s); err != nil {
				return envelope{}, webhook.BadRequest("field %q: %v", "data", err)
			}
			data = []byte(s)
		}
	case ce.DataBase64 != "":
		b, err := base64.StdEncoding.DecodeString(ce.DataBase64)
		if err != nil {
			return envelope{}, webhook.BadRequest("field %q: not base64: %v", "data_base64", err)
		}
		data = b
	default:
		return envelope{}, webhook.BadRequest(`missing required field "data" (the CDEvent)`)
	}
	ce.Data, ce.DataBase64 = nil, ""
	return envelope{ce: ce, data: data}, nil
}

// queryToken is the access_token parameter of a URL query, or "".
func queryToken(rawQuery string) string {
	if !strings.Contains(rawQuery, "access_token=") {
		return ""
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return ""
	}
	return q.Get("access_token")
}

// parseOne maps one CDEvent; it says why when the event is not used.
func (p *Provider) parseOne(env envelope, received time.Time) ([]event.Event, skipped, error) {
	if strings.HasPrefix(env.ce.Type, tektonTypePrefix) {
		return p.parseTekton(env, received)
	}
	var cd CDEvent
	if err := webhook.DecodeJSON(env.data, &cd); err != nil {
		return nil, skipped{}, err
	}
	ctx := &cd.Context
	// The CloudEvents attributes repeat the CDEvent's context; the context
	// wins, the attributes fill what it lacks.
	if ctx.Type == "" {
		ctx.Type = env.ce.Type
	} else if env.ce.Type != "" && env.ce.Type != ctx.Type {
		return nil, skipped{}, webhook.BadRequest("CloudEvent type %q does not match the CDEvent's context.type %q", env.ce.Type, ctx.Type)
	}
	if ctx.ID == "" {
		ctx.ID = env.ce.ID
	}
	if ctx.Source == "" {
		ctx.Source = env.ce.Source
	}
	if ctx.Timestamp == "" {
		ctx.Timestamp = env.ce.Time
	}
	if err := webhook.Required("context.type", ctx.Type, "context.id", ctx.ID); err != nil {
		return nil, skipped{}, err
	}
	at := received
	if ctx.Timestamp != "" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, ctx.Timestamp); err != nil {
			return nil, skipped{}, webhook.BadRequest("field %q: %q is not an RFC 3339 time", "context.timestamp", ctx.Timestamp)
		}
	}
	kind, ok := typeKey(ctx.Type)
	if !ok {
		return nil, skip("type %q is not a CDEvents type", ctx.Type), nil
	}
	base := event.Event{Source: event.SourceCDEvents, ID: scoped(ctx.Source, ctx.ID), Time: at}
	subjectSource := cd.Subject.Source
	if subjectSource == "" {
		subjectSource = ctx.Source
	}

	switch kind {
	case "service.deployed", "service.upgraded", "service.rolledback":
		var c serviceContent
		if err := decodeContent(cd.Subject.Content, &c); err != nil {
			return nil, skipped{}, err
		}
		if err := webhook.Required("subject.id", cd.Subject.ID); err != nil {
			return nil, skipped{}, err
		}
		ev := base
		ev.Service = event.Service{Name: serviceName(cd.Subject.ID), Environment: p.environment(c.Environment.ID)}
		if ev.Service.Name == "" {
			return nil, skipped{}, webhook.BadRequest("field %q: %q names no service", "subject.id", cd.Subject.ID)
		}
		ev.Revision, ev.Repository = fromArtifact(c.ArtifactID)
		ev.DeploymentID = "cdevents/" + scoped(ev.Service.Environment+"/"+ev.Service.Name, ctx.ID)
		if kind != "service.rolledback" {
			ev.Kind = event.DeploymentSucceeded
			return []event.Event{ev}, skipped{}, nil
		}
		// CDEvents reports a rollback once it is done: it began (and
		// abandons the deployment it replaces) and it succeeded.
		rolled, done := ev, ev
		rolled.Kind, rolled.ID = event.DeploymentRolledBack, ev.ID+"/rolledback"
		done.Kind, done.ID = event.DeploymentSucceeded, ev.ID+"/succeeded"
		return []event.Event{rolled, done}, skipped{}, nil

	case "incident.detected", "incident.reported", "incident.resolved":
		var c incidentContent
		if err := decodeContent(cd.Subject.Content, &c); err != nil {
			return nil, skipped{}, err
		}
		if err := webhook.Required("subject.id", cd.Subject.ID); err != nil {
			return nil, skipped{}, err
		}
		ev := base
		ev.IncidentID = cd.Subject.ID
		ev.Service = event.Service{Name: serviceName(c.Service.ID), Environment: p.environment(c.Environment.ID)}
		if ev.Service.Name == "" {
			return nil, skipped{why: kind + " " + cd.Subject.ID + " names no service (subject.content.service.id)", noService: true}, nil
		}
		ev.Kind = event.IncidentOpened
		if kind == "incident.resolved" {
			ev.Kind = event.IncidentResolved
		}
		return []event.Event{ev}, skipped{}, nil

	case "change.merged":
		var c changeContent
		if err := decodeContent(cd.Subject.Content, &c); err != nil {
			return nil, skipped{}, err
		}
		rev := strings.ToLower(strings.TrimSpace(cd.Subject.ID))
		if !isCommitSHA(rev) {
			return nil, skip("change.merged %q: subject.id is not the merge commit SHA, and CDEvents v0.4 has no other field for it", cd.Subject.ID), nil
		}
		ev := base
		ev.Kind = event.ChangeMerged
		ev.Revision = rev
		ev.Repository = repositoryName(c.Repository)
		return []event.Event{ev}, skipped{}, nil

	case "pipelinerun.finished":
		var c pipelineRunContent
		if err := decodeContent(cd.Subject.Content, &c); err != nil {
			return nil, skipped{}, err
		}
		dp, ok := p.deploymentPipeline(c.PipelineName)
		if !ok {
			return nil, skip("pipeline %q is not a deployment pipeline (see deployment_pipelines)", c.PipelineName), nil
		}
		if err := webhook.Required("subject.id", cd.Subject.ID); err != nil {
			return nil, skipped{}, err
		}
		ev := base
		ev.Service = event.Service{Namespace: dp.Namespace, Name: dp.Service, Environment: dp.Environment}
		if ev.Service.Name == "" {
			ev.Service.Name = c.PipelineName
		}
		if ev.Service.Environment == "" {
			ev.Service.Environment = p.cfg.DefaultEnvironment
		}
		ev.DeploymentID = "cdevents/pipelinerun/" + scoped(subjectSource, cd.Subject.ID)
		switch c.Outcome {
		case "success":
			ev.Kind = event.DeploymentSucceeded
		case "failure":
			ev.Kind, ev.Reason = event.DeploymentFailed, ReasonPipelineFailed
		case "error":
			ev.Kind, ev.Reason = event.DeploymentFailed, ReasonPipelineError
		default:
			return nil, skip("pipeline run %s: outcome %q is not success, failure or error", cd.Subject.ID, c.Outcome), nil
		}
		return []event.Event{ev}, skipped{}, nil
	}
	return nil, skip("%s events are not used", kind), nil
}

// decodeContent decodes subject.content (absent is empty).
func decodeContent(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	if err := webhook.DecodeJSON(raw, v); err != nil {
		var herr *webhook.Error
		if errors.As(err, &herr) {
			return webhook.BadRequest("subject.content: %s", herr.Message)
		}
		return err
	}
	return nil
}

// typeKey returns "<subject>.<predicate>" of a CDEvents type
// ("dev.cdevents.service.deployed.0.2.0" is "service.deployed").
func typeKey(t string) (string, bool) {
	rest, ok := strings.CutPrefix(t, "dev.cdevents.")
	if !ok {
		return "", false
	}
	parts := strings.SplitN(rest, ".", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", false
	}
	return parts[0] + "." + parts[1], true
}

// scoped joins a source and an id ("/staging/tekton" and "abc" give
// "staging/tekton/abc"): ids are unique within their source.
func scoped(source, id string) string {
	source = strings.Trim(source, "/")
	if source == "" {
		return id
	}
	return source + "/" + id
}

// serviceName is the last segment of a service subject id ("myapp" of
// "service/myapp" or "/namespace/myapp").
func serviceName(id string) string {
	id = strings.Trim(strings.TrimSpace(id), "/")
	if i := strings.LastIndex(id, "/"); i >= 0 {
		id = id[i+1:]
	}
	return id
}

// environment is the event's environment id, else DefaultEnvironment.
func (p *Provider) environment(id string) string {
	if id = strings.TrimSpace(id); id != "" {
		return id
	}
	return p.cfg.DefaultEnvironment
}

// deploymentPipeline returns the first DeploymentPipelines entry matching
// name.
func (p *Provider) deploymentPipeline(name string) (DeploymentPipeline, bool) {
	if name == "" {
		return DeploymentPipeline{}, false
	}
	for _, dp := range p.cfg.DeploymentPipelines {
		if ok, _ := path.Match(dp.Pipeline, name); ok {
			return dp, true
		}
	}
	return DeploymentPipeline{}, false
}

// repositoryName is a change's repository as "org/repo": its id when it is
// one, else owner/name, else the path of its url.
func repositoryName(r Reference) string {
	id := strings.Trim(strings.TrimSpace(r.ID), "/")
	switch {
	case strings.Contains(id, "/"):
		return id
	case r.Owner != "" && r.Name != "":
		return strings.Trim(r.Owner, "/") + "/" + strings.Trim(r.Name, "/")
	case r.URL != "":
		if u, err := url.Parse(r.URL); err == nil && strings.Trim(u.Path, "/") != "" {
			return strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
		}
	}
	if id != "" {
		return id
	}
	return strings.TrimSpace(r.Name)
}

// fromArtifact reads a package URL (purl) artifact id: the commit is the
// "tag" qualifier or the version when either is a full commit SHA
// (pkg:oci/api@sha256%3A...?tag=<sha>, pkg:github/acme/api@<sha>); the
// repository is known for the Git hosting types (pkg:github/acme/api).
func fromArtifact(purl string) (revision, repository string) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(purl), "pkg:")
	if !ok {
		return "", ""
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	var qualifiers url.Values
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		qualifiers, _ = url.ParseQuery(rest[i+1:])
		rest = rest[:i]
	}
	var version string
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		version, _ = url.PathUnescape(rest[i+1:])
		rest = rest[:i]
	}
	typ, name, _ := strings.Cut(strings.Trim(rest, "/"), "/")
	switch strings.ToLower(typ) {
	case "github", "gitlab", "bitbucket":
		if n, err := url.PathUnescape(strings.Trim(name, "/")); err == nil && strings.Contains(n, "/") {
			repository = n
		}
	}
	for _, candidate := range []string{qualifiers.Get("tag"), version} {
		if c := strings.ToLower(strings.TrimSpace(candidate)); isCommitSHA(c) {
			return c, repository
		}
	}
	return "", repository
}

// isCommitSHA reports whether s is a full lower-case hex SHA-1.
func isCommitSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

var _ webhook.Provider = (*Provider)(nil)
