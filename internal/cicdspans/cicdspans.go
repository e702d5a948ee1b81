// Package cicdspans is the source for CI/CD spans sent over OTLP/HTTP
// (POST /v1/traces, protobuf or JSON): the traces that the collector-contrib
// GitHub and GitLab receivers make from workflow and pipeline webhooks, or
// that any OpenTelemetry-instrumented CI system exports. Pipeline-run and
// task spans that are deployments become DeploymentSucceeded and
// DeploymentFailed events; every other span is skipped.
//
// OTLP has no payload signature: senders are authenticated by an
// authenticator extension (the auth setting) before the body is read.
package cicdspans

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Media types of OTLP/HTTP. application/protobuf is accepted as an alias
// of application/x-protobuf.
const (
	ContentTypeProtobuf = "application/x-protobuf"
	ContentTypeJSON     = "application/json"
	contentTypeProtoAlt = "application/protobuf"
)

// Attribute names read from spans and resources. Names marked contrib are
// not (yet) semantic conventions but are what the collector-contrib GitHub
// and GitLab receivers emit.
const (
	attrServiceName       = "service.name"
	attrDeploymentEnv     = "deployment.environment.name"
	attrDeploymentEnvOld  = "deployment.environment" // deprecated semconv name
	attrK8sNamespace      = "k8s.namespace.name"
	attrK8sDeployment     = "k8s.deployment.name"
	attrPipelineName      = "cicd.pipeline.name"
	attrPipelineResult    = "cicd.pipeline.result"
	attrPipelineRunID     = "cicd.pipeline.run.id"
	attrPipelineRunURL    = "cicd.pipeline.run.url.full"
	attrPipelineRunStatus = "cicd.pipeline.run.status" // contrib githubreceiver
	attrTaskName          = "cicd.pipeline.task.name"
	attrTaskType          = "cicd.pipeline.task.type"
	attrTaskRunID         = "cicd.pipeline.task.run.id"
	attrTaskRunResult     = "cicd.pipeline.task.run.result"
	attrTaskRunURL        = "cicd.pipeline.task.run.url.full"
	attrTaskRunStatus     = "cicd.pipeline.run.task.status"           // contrib githubreceiver
	attrTaskEnvironment   = "cicd.pipeline.task.run.environment.name" // contrib gitlabreceiver
	attrGitLabEnvAction   = "gitlab.environment.action"               // contrib gitlabreceiver
	attrRepoName          = "vcs.repository.name"
	attrRepoURL           = "vcs.repository.url.full"
	attrOwnerName         = "vcs.owner.name"
	attrRepoOwner         = "vcs.repository.owner" // older contrib githubreceiver
	attrHeadRevision      = "vcs.ref.head.revision"
	attrHeadRevisionOld   = "vcs.repository.ref.revision"     // deprecated semconv name
	attrHeadRevisionTime  = "vcs.ref.head.revision.timestamp" // contrib gitlabreceiver
	gitlabTimeFormat      = "2006-01-02 15:04:05 UTC"

	// The Jenkins OpenTelemetry plugin (jenkinsci/opentelemetry-plugin,
	// semconv/ExtendedJenkinsAttributes.java): its spans carry the older
	// ci.pipeline.* names, not cicd.* (which it uses for metrics only).
	attrJenkinsPipelineID   = "ci.pipeline.id"         // job full name, root span
	attrJenkinsPipelineName = "ci.pipeline.name"       // job display name, root span
	attrJenkinsRunResult    = "ci.pipeline.run.result" // SUCCESS, UNSTABLE, FAILURE, NOT_BUILT, ABORTED
	attrJenkinsRunURL       = "ci.pipeline.run.url"
	attrJenkinsStepType     = "jenkins.pipeline.step.type"           // "stage" on stage spans
	attrJenkinsStepName     = "jenkins.pipeline.step.name"           // the stage name
	attrJenkinsStepResult   = "jenkins.pipeline.step.result"         // GenericStatus: SUCCESS, UNSTABLE, FAILURE, ABORTED, NOT_EXECUTED, ...
	attrJenkinsGitRepo      = "git.repository"                       // org/repo, on the checkout step's span
	attrJenkinsPluginVer    = "jenkins.opentelemetry.plugin.version" // resource
	jenkinsStageType        = "stage"
	taskTypeDeploy          = "deploy"
	defaultEnvironmentValue = "production"
)

// Config configures the OTLP spans source.
type Config struct {
	// Path is the URL path OTLP/HTTP exporters post traces to.
	Path string `mapstructure:"path"`
	// LogsPath is the URL path where dora agents' OTLP/HTTP exporters post
	// their event records (docs/agent-gateway.md), authenticated like
	// Path; the gRPC server serves the logs service too. Empty: off.
	LogsPath string `mapstructure:"logs_path"`
	// DeploymentPipelines are pipeline names (globs: * and ?, case
	// insensitive) whose runs are deployments (GitHub: workflow names).
	DeploymentPipelines []string `mapstructure:"deployment_pipelines"`
	// DeploymentTasks are task names (globs, case insensitive) whose runs
	// are deployments (GitHub and GitLab: job names).
	DeploymentTasks []string `mapstructure:"deployment_tasks"`
	// DefaultEnvironment is the environment of a deployment span that
	// names none.
	DefaultEnvironment string `mapstructure:"default_environment"`
	// Auth names a server authenticator extension (bearertokenauth, oidc)
	// that every export to this path must pass, before its body is read.
	// It applies to this path only: the server's own auth would also
	// refuse the webhook senders that cannot send credentials (GitHub).
	Auth configoptional.Optional[configauth.Config] `mapstructure:"auth"`
	// InsecureSkipVerify accepts exports without credentials. Without it
	// the source refuses to start unless auth, the server's auth or mutual
	// TLS authenticates its senders.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
	// GRPC, when the key is present, serves OTLP/gRPC trace exports
	// (TraceService/Export) on a gRPC server of its own, with the same
	// parsing and authentication rules (GRPCConfig).
	GRPC configoptional.Optional[configgrpc.ServerConfig] `mapstructure:"grpc"`
}

// Defaults of the gRPC server: the OTLP/gRPC port that SDKs and the Jenkins
// plugin use, and the HTTP path's default body limit
// (webhook.DefaultMaxBodySize) as the message limit, where gRPC's own
// default is 4 MiB.
const (
	DefaultGRPCEndpoint       = "localhost:4317"
	DefaultGRPCMaxRecvMsgSize = webhook.DefaultMaxBodySize >> 20
)

// DefaultGRPCConfig is the gRPC server's configuration when the user
// writes only `grpc:`.
func DefaultGRPCConfig() configgrpc.ServerConfig {
	sc := configgrpc.NewDefaultServerConfig()
	sc.NetAddr.Endpoint = DefaultGRPCEndpoint
	sc.MaxRecvMsgSizeMiB = DefaultGRPCMaxRecvMsgSize
	return sc
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{Path: "/v1/traces", LogsPath: "/v1/logs", DefaultEnvironment: defaultEnvironmentValue, GRPC: configoptional.Default(DefaultGRPCConfig())}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path: must not be empty"))
	}
	for i, p := range c.DeploymentPipelines {
		if strings.TrimSpace(p) == "" {
			errs = append(errs, fmt.Errorf("deployment_pipelines[%d]: empty pattern", i))
		}
	}
	for i, p := range c.DeploymentTasks {
		if strings.TrimSpace(p) == "" {
			errs = append(errs, fmt.Errorf("deployment_tasks[%d]: empty pattern", i))
		}
	}
	if strings.TrimSpace(c.DefaultEnvironment) == "" {
		errs = append(errs, errors.New("default_environment: must not be empty"))
	}
	if a := c.Auth.Get(); a != nil && a.AuthenticatorID.Type().String() == "" {
		errs = append(errs, errors.New("auth::authenticator: must name a server authenticator extension (for example bearertokenauth or oidc)"))
	}
	if g := c.GRPC.Get(); g != nil {
		if g.NetAddr.Endpoint == "" {
			errs = append(errs, errors.New("grpc::endpoint: must not be empty"))
		}
		if a := g.Auth.Get(); a != nil && a.AuthenticatorID.Type().String() == "" {
			errs = append(errs, errors.New("grpc::auth::authenticator: must name a server authenticator extension (for example bearertokenauth or oidc)"))
		}
	}
	return errors.Join(errs...)
}

// Provider implements webhook.Provider and webhook.SuccessWriter for
// OTLP/HTTP trace exports.
type Provider struct {
	cfg       Config
	pipelines []*regexp.Regexp
	tasks     []*regexp.Regexp
	// traces remembers the service of recent traces across exports.
	traces *traceMemory
}

// New returns the provider for cfg.
func New(cfg Config) *Provider {
	if cfg.DefaultEnvironment == "" {
		cfg.DefaultEnvironment = defaultEnvironmentValue
	}
	return &Provider{cfg: cfg, pipelines: globs(cfg.DeploymentPipelines), tasks: globs(cfg.DeploymentTasks), traces: newTraceMemory(traceMemorySize)}
}

func (p *Provider) Name() string { return event.SourceSpans }

func (p *Provider) ContentTypes() []string {
	return []string{ContentTypeProtobuf, contentTypeProtoAlt, ContentTypeJSON}
}

// Parse decodes one ExportTraceServiceRequest and returns an event per
// deployment span, in end-time order. The service of every event of a
// trace is the trace's (see identity).
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	td, err := decode(req)
	if err != nil {
		return webhook.Result{}, err
	}
	return p.ParseTraces(td, req.Received)
}

// ParseTraces is Parse for traces already decoded: an OTLP/gRPC export or
// the spans a dora connector takes from a traces pipeline. received is the
// time of a deployment span without start or end time. Its events copy
// what they keep: td may be reused once it returns.
func (p *Provider) ParseTraces(td ptrace.Traces, received time.Time) (webhook.Result, error) {
	var events []event.Event
	// What each trace of the export says about its service, from all its
	// spans, deployments or not (a deploy step may carry the workload).
	var traces []traceIdentity
	var eventTrace []int // the index in traces of each event's trace
	spans := 0
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j).Spans()
			for k := 0; k < ss.Len(); k++ {
				spans++
				span := ss.At(k)
				ti := traceIndex(&traces, span.TraceID())
				traces[ti].id.fill(attrs{span: span.Attributes(), res: res})
				ev, ok, err := p.spanEvent(res, span, received)
				if err != nil {
					return webhook.Result{}, err
				}
				if ok {
					traces[ti].deploys = true
					events = append(events, ev)
					eventTrace = append(eventTrace, ti)
				}
			}
		}
	}
	for i := range traces {
		t := &traces[i]
		t.id = p.traces.merge(t.trace, t.id, t.deploys)
	}
	for i := range events {
		traces[eventTrace[i]].id.apply(&events[i])
	}
	if len(events) == 0 {
		if spans == 0 {
			return webhook.Result{Ignored: "no spans in this export"}, nil
		}
		return webhook.Result{Ignored: fmt.Sprintf("none of the %d spans is a finished deployment (see deployment_pipelines, deployment_tasks)", spans)}, nil
	}
	// The engine applies events in order: a task that ended before its
	// pipeline run is applied first.
	sort.SliceStable(events, func(a, b int) bool { return events[a].Time.Before(events[b].Time) })
	return webhook.Result{Events: events}, nil
}

// WriteSuccess answers with an empty ExportTraceServiceResponse in the
// request's encoding, as OTLP/HTTP requires (status 200, same media type).
func (p *Provider) WriteSuccess(w http.ResponseWriter, req *webhook.Request, _ int) {
	resp := ptraceotlp.NewExportResponse()
	ct := mediaType(req)
	var body []byte
	var err error
	if ct == ContentTypeJSON {
		body, err = resp.MarshalJSON()
	} else {
		if ct != contentTypeProtoAlt {
			ct = ContentTypeProtobuf
		}
		body, err = resp.MarshalProto()
	}
	if err != nil {
		http.Error(w, "encoding the export response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// WriteError answers a refused export as OTLP/HTTP requires: the status
// with a google.rpc.Status body in the request's encoding (JSON for JSON
// requests, protobuf otherwise), its code mapped from the HTTP status as
// the collector's OTLP receiver does. The webhook handler calls it for
// every refused delivery on this source's path.
func (p *Provider) WriteError(w http.ResponseWriter, header http.Header, status int, message string) {
	WriteOTLPError(w, header, status, message)
}

// WriteOTLPError answers a refused OTLP/HTTP export (of any signal): the
// status with a google.rpc.Status body in the request's encoding.
func WriteOTLPError(w http.ResponseWriter, header http.Header, status int, message string) {
	code := grpcCode(status)
	var body []byte
	ct := ContentTypeProtobuf
	if mt, _, err := mime.ParseMediaType(header.Get("Content-Type")); err == nil && mt == ContentTypeJSON {
		ct = ContentTypeJSON
		body, _ = json.Marshal(struct {
			Code    int    `json:"code"`
			Message string `json:"message,omitempty"`
		}{code, message})
	} else {
		// google.rpc.Status{code: 1 (int32), message: 2 (string)}.
		body = binary.AppendUvarint(append(body, 0x08), uint64(code))
		if message != "" {
			body = binary.AppendUvarint(append(body, 0x12), uint64(len(message)))
			body = append(body, message...)
		}
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// grpcCode maps an HTTP status onto a gRPC status code like
// go.opentelemetry.io/collector/internal/statusutil.
func grpcCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return 3 // InvalidArgument
	case http.StatusUnauthorized:
		return 16 // Unauthenticated
	case http.StatusForbidden:
		return 7 // PermissionDenied
	case http.StatusNotFound:
		return 12 // Unimplemented
	case http.StatusTooManyRequests:
		return 8 // ResourceExhausted
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return 14 // Unavailable
	}
	return 2 // Unknown
}

func mediaType(req *webhook.Request) string {
	if req == nil {
		return ContentTypeProtobuf
	}
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil {
		return ContentTypeProtobuf
	}
	return mt
}

func decode(req *webhook.Request) (ptrace.Traces, error) {
	er := ptraceotlp.NewExportRequest()
	if mediaType(req) == ContentTypeJSON {
		if err := jsonscan.CheckDepth(req.Body, jsonscan.MaxDepth); err != nil {
			return ptrace.Traces{}, err
		}
		if err := er.UnmarshalJSON(req.Body); err != nil {
			return ptrace.Traces{}, webhook.BadRequest("malformed OTLP/JSON ExportTraceServiceRequest: %v", err)
		}
		return er.Traces(), nil
	}
	if err := er.UnmarshalProto(req.Body); err != nil {
		return ptrace.Traces{}, webhook.BadRequest("malformed OTLP/protobuf ExportTraceServiceRequest: %v", err)
	}
	return er.Traces(), nil
}

// attrs looks attributes up on the span first, then on its resource.
type attrs struct {
	span, res pcommon.Map
}

func str(m pcommon.Map, key string) string {
	v, ok := m.Get(key)
	if !ok {
		return ""
	}
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return strings.TrimSpace(v.Str())
	case pcommon.ValueTypeInt, pcommon.ValueTypeDouble, pcommon.ValueTypeBool:
		return v.AsString()
	}
	return ""
}

// get returns the first non-empty value of keys, span before resource for
// each key.
func (a attrs) get(keys ...string) string {
	for _, k := range keys {
		if v := str(a.span, k); v != "" {
			return v
		}
		if v := str(a.res, k); v != "" {
			return v
		}
	}
	return ""
}

func (a attrs) onSpan(keys ...string) string {
	for _, k := range keys {
		if v := str(a.span, k); v != "" {
			return v
		}
	}
	return ""
}

func (a attrs) onResource(keys ...string) string {
	for _, k := range keys {
		if v := str(a.res, k); v != "" {
			return v
		}
	}
	return ""
}

var taskKeys = []string{attrTaskName, attrTaskRunID, attrTaskType, attrTaskRunResult, attrTaskRunStatus}

// jenkinsStage reports whether a span is a stage of a Jenkins pipeline
// ("Stage: <name>", jenkins.pipeline.step.type = stage). Other step spans
// (sh, checkout, node) are never deployments.
func jenkinsStage(a attrs) bool {
	return strings.EqualFold(a.onSpan(attrJenkinsStepType), jenkinsStageType)
}

// spanEvent returns the deployment event of a span, if it is one.
func (p *Provider) spanEvent(res pcommon.Map, span ptrace.Span, received time.Time) (event.Event, bool, error) {
	a := attrs{span: span.Attributes(), res: res}
	root := span.ParentSpanID().IsEmpty()

	// A task span (a job or step) carries task attributes itself or on its
	// resource (the contrib GitHub receiver puts a job's on the resource);
	// a pipeline-run span is a root span, or one carrying run attributes.
	stage := jenkinsStage(a)
	isTask := stage || a.get(taskKeys...) != ""
	isRun := !isTask && (root || a.onSpan(attrPipelineRunID, attrPipelineResult, attrJenkinsRunResult) != "")
	if !isTask && !isRun {
		return event.Event{}, false, nil
	}

	env := a.onSpan(attrDeploymentEnv, attrDeploymentEnvOld)
	var deploy bool
	var result string
	if isTask {
		name := a.get(attrTaskName)
		if stage {
			name = a.onSpan(attrJenkinsStepName)
		}
		if name == "" {
			name = span.Name()
		}
		deploy = env != ""
		if jobEnv := a.onSpan(attrTaskEnvironment); jobEnv != "" {
			// GitLab: a job with an environment deploys to it unless
			// its action is prepare, verify, access or stop.
			action := strings.ToLower(a.onSpan(attrGitLabEnvAction))
			deploy = deploy || action == "" || action == "start"
			if env == "" {
				env = jobEnv
			}
		}
		deploy = deploy || strings.EqualFold(a.get(attrTaskType), taskTypeDeploy) || match(p.tasks, name)
		result = a.get(attrTaskRunResult, attrTaskRunStatus)
		if stage && result == "" {
			result = a.onSpan(attrJenkinsStepResult)
		}
		if result == "" {
			// The contrib GitHub receiver files a job's unusual
			// conclusions (timed_out, ...) under the run status key.
			result = a.onResource(attrPipelineRunStatus)
		}
	} else {
		name := a.get(attrPipelineName)
		if name == "" {
			name = span.Name()
		}
		if env == "" {
			env = a.onResource(attrDeploymentEnv, attrDeploymentEnvOld)
		}
		// Jenkins: the job's full name (folder/job) or its display name.
		deploy = env != "" || match(p.pipelines, name) ||
			match(p.pipelines, a.onSpan(attrJenkinsPipelineID)) || match(p.pipelines, a.onSpan(attrJenkinsPipelineName))
		result = a.get(attrPipelineResult, attrPipelineRunStatus)
		if result == "" {
			result = a.onSpan(attrJenkinsRunResult)
		}
	}
	if !deploy {
		return event.Event{}, false, nil
	}
	if env == "" {
		env = a.onResource(attrDeploymentEnv, attrDeploymentEnvOld)
	}
	if env == "" {
		env = p.cfg.DefaultEnvironment
	}

	var kind event.Kind
	reason := ""
	switch r := normalizeResult(result); r {
	case "success":
		kind = event.DeploymentSucceeded
	case "failure", "error", "timeout", "unstable":
		kind = event.DeploymentFailed
		reason = r
	default:
		// cancelled, skipped, still running or no result: not a
		// finished deployment.
		return event.Event{}, false, nil
	}

	traceID, spanID := span.TraceID(), span.SpanID()
	if traceID.IsEmpty() || spanID.IsEmpty() {
		return event.Event{}, false, webhook.BadRequest("deployment span %q: trace_id and span_id must not be empty", span.Name())
	}
	at := span.EndTimestamp().AsTime()
	if span.EndTimestamp() == 0 {
		at = span.StartTimestamp().AsTime()
		if span.StartTimestamp() == 0 {
			at = received
		}
	}

	id, deploymentID := spanEventID(traceID, spanID, kind)
	// The service and the repository are the trace's: Parse sets them.
	ev := event.Event{
		Kind:         kind,
		Source:       event.SourceSpans,
		ID:           id,
		Time:         at.UTC(),
		DeploymentID: deploymentID,
		Revision:     revision(a.get(attrHeadRevision, attrHeadRevisionOld)),
		Reason:       reason,
	}
	ev.Service.Environment = env
	if ev.Revision != "" {
		ev.CommitTime = commitTime(a.get(attrHeadRevisionTime))
	}
	return ev, true, nil
}

// spanEventID returns the event ID "otlp/<trace>/<span>/<kind>" and the
// deployment ID "otlp/<trace>", its prefix, in one allocation.
func spanEventID(traceID pcommon.TraceID, spanID pcommon.SpanID, kind event.Kind) (id, deploymentID string) {
	const prefix = "otlp/"
	k := kind.String()
	b := make([]byte, 0, len(prefix)+2*len(traceID)+1+2*len(spanID)+1+len(k))
	b = append(b, prefix...)
	b = hex.AppendEncode(b, traceID[:])
	n := len(b)
	b = append(b, '/')
	b = hex.AppendEncode(b, spanID[:])
	b = append(b, '/')
	b = append(b, k...)
	id = string(b)
	return id, id[:n]
}

// normalizeResult maps the semantic-convention result values and the raw
// GitHub conclusions and GitLab statuses that the contrib receivers pass
// through onto success, failure, error, timeout, cancellation and skip.
func normalizeResult(r string) string {
	switch strings.ToLower(strings.TrimSpace(r)) {
	case "success", "succeeded", "successful":
		return "success"
	case "failure", "failed":
		return "failure"
	case "unstable":
		// Jenkins: the run or stage completed but a check marked it
		// unstable (failed tests, unstable() after a smoke test): the
		// deployed change did not pass its checks.
		return "unstable"
	case "error", "startup_failure":
		return "error"
	case "timeout", "timed_out":
		return "timeout"
	case "cancellation", "cancelled", "canceled", "aborted":
		return "cancellation"
	case "skip", "skipped", "not_built", "not_executed":
		return "skip"
	}
	return ""
}

// revision returns a full commit SHA (40 or 64 hex digits) in lower case,
// or "" for anything else (a branch name, a short SHA, an SVN number).
func revision(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 40 && len(s) != 64 {
		return ""
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return s
}

// commitTime parses the head commit time that the contrib GitLab receiver
// sets (vcs.ref.head.revision.timestamp, "2006-01-02 15:04:05 UTC").
func commitTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	for _, layout := range []string{gitlabTimeFormat, time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// repository returns the repository's full name ("org/repo", GitLab
// "group/subgroup/project") and its short name, from the VCS attributes or
// the pipeline and task URLs.
func repository(a attrs) (full, name string) {
	name = a.get(attrRepoName)
	if p := urlPath(a.get(attrRepoURL), ""); p != "" {
		return p, name
	}
	if strings.Contains(name, "/") {
		return name, name
	}
	if r := strings.TrimSuffix(strings.Trim(a.onSpan(attrJenkinsGitRepo), "/"), ".git"); strings.Contains(r, "/") {
		// Jenkins: the checkout step's repository path (org/repo).
		return r, lastElem(r)
	}
	if owner := a.get(attrOwnerName, attrRepoOwner); owner != "" && name != "" {
		return owner + "/" + name, name
	}
	for _, u := range []string{a.get(attrPipelineRunURL), a.get(attrTaskRunURL)} {
		// GitHub: https://github.com/org/repo/actions/runs/1/job/2;
		// GitLab: https://gitlab.com/group/project/-/pipelines/1.
		p := urlPath(u, "/-/")
		if p == "" {
			p = urlPath(u, "/actions/")
		}
		if p != "" && (name == "" || strings.EqualFold(lastElem(p), name)) {
			return p, name
		}
	}
	return name, name
}

// urlPath returns the path of u before sep (the whole path when sep is
// ""), without slashes at the ends or a .git suffix.
func urlPath(u, sep string) string {
	if u == "" {
		return ""
	}
	parsed, err := url.Parse(u)
	if err != nil || parsed.Host == "" {
		return ""
	}
	p := parsed.Path
	if sep != "" {
		i := strings.Index(p, sep)
		if i < 0 {
			return ""
		}
		p = p[:i]
	}
	p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
	if !strings.Contains(p, "/") {
		return ""
	}
	return p
}

func lastElem(p string) string { return p[strings.LastIndex(p, "/")+1:] }

// derivedServiceName reports whether service.name says nothing beyond the
// repository: empty, unknown_service, or the repository name as the
// contrib receivers derive it (GitHub: the repository name in lower case
// with "-" for "_"; GitLab: the project path).
func derivedServiceName(svc, repo, repoName string) bool {
	if svc == "" || strings.HasPrefix(svc, "unknown_service") {
		return true
	}
	n := normName(svc)
	for _, c := range []string{repo, repoName, lastElem(repo)} {
		if c != "" && n == normName(c) {
			return true
		}
	}
	return false
}

func normName(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "-")) }

// globs compiles shell-style patterns (* and ?) into case-insensitive
// regular expressions; unlike path.Match, * also matches "/", which job
// names of reusable GitHub workflows contain ("deploy / rollout").
func globs(patterns []string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, 0, len(patterns))
	for _, p := range patterns {
		var b strings.Builder
		b.WriteString("(?is)^")
		for _, r := range p {
			switch r {
			case '*':
				b.WriteString(".*")
			case '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		b.WriteString("$")
		out = append(out, regexp.MustCompile(b.String()))
	}
	return out
}

func match(res []*regexp.Regexp, name string) bool {
	for _, re := range res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

var (
	_ webhook.Provider      = (*Provider)(nil)
	_ webhook.SuccessWriter = (*Provider)(nil)
)
