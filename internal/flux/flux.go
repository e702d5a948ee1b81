// Package flux is the source for Flux's notification-controller: a
// Provider of type generic-hmac posts every event of the Alert's sources
// (the JSON Event of fluxcd/pkg/apis/event) and signs it with
// "X-Signature: sha256=<hex HMAC of the body>" under the token of the
// Provider's secret.
//
// Kustomization and HelmRelease events are deployments: a successful
// reconciliation, install or upgrade is a successful deployment; an error
// event whose reason says the revision did not apply or did not become
// healthy is a failed deployment of that revision. Everything else
// (progress, dependency waits, remediation, drift, source events, the
// Flux object's own configuration errors) is ignored; docs/sources/flux.md
// lists the reasons and why.
//
// Flux events carry no delivery id; the event id is derived from the
// involved object's uid, the reason, the revision and the timestamp, which
// a retried post keeps.
package flux

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"path"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// SignatureHeader carries "<hash function>=<hex HMAC of the body>"; Flux
// uses sha256.
const SignatureHeader = "X-Signature"

// DefaultPath is the URL path the source listens on unless configured.
const DefaultPath = "/webhooks/flux"

// Kinds of the involved objects whose events are deployments.
const (
	KindKustomization = "Kustomization"
	KindHelmRelease   = "HelmRelease"
)

// successReasons are the reasons of events reporting a deployment that
// completed: the Ready reason of a reconciled Kustomization, the Helm
// actions of a HelmRelease.
var successReasons = map[string]bool{
	"ReconciliationSucceeded": true,
	"InstallSucceeded":        true,
	"UpgradeSucceeded":        true,
}

// failureReasons are the reasons of error events reporting that a
// revision was not applied or did not become healthy: kustomize-controller
// sends its Ready condition's reason (fluxcd/pkg/apis/meta), helm-controller
// the reason of the failed Helm action (helm-controller api/v2).
var failureReasons = map[string]bool{
	// kustomize-controller: the revision's artifact could not be fetched
	// or lacks spec.path, kustomize build failed, server-side apply failed,
	// garbage collection of the objects the revision removed failed, the
	// applied workloads did not become healthy.
	"ArtifactFailed":       true,
	"BuildFailed":          true,
	"ReconciliationFailed": true,
	"PruneFailed":          true,
	"HealthCheckFailed":    true,
	// kustomize-controller v1beta1 (Flux v0.x), still in the
	// notification-controller's documented example: dry-run validation
	// of the manifests failed.
	"ValidationFailed": true,
	// helm-controller: the Helm install or upgrade failed (including its
	// wait for the workloads), or the release's tests failed.
	"InstallFailed": true,
	"UpgradeFailed": true,
	"TestFailed":    true,
}

// deletionMessages are the messages of kustomize-controller's error events
// while it deletes a Kustomization (its finalizer): they carry the last
// Ready reason and the last applied revision, and are not deployments.
var deletionMessages = []string{
	"pruning for deleted resource failed",
	"failed to wait for resources termination",
	"unable to prune objects:",
}

// Environment maps the namespaces matching Pattern (a path.Match glob) to
// an environment name.
type Environment struct {
	Pattern     string `mapstructure:"pattern"`
	Environment string `mapstructure:"environment"`
}

// Config configures the Flux source.
type Config struct {
	// Path is the URL path of the Provider's address.
	Path string `mapstructure:"path"`
	// Secret is the token of the Provider's secretRef; required unless
	// insecure_skip_verify.
	webhook.SecretConfig `mapstructure:",squash"`
	// DefaultEnvironment applies to namespaces no Environments entry
	// matches, when the event does not name an environment.
	DefaultEnvironment string `mapstructure:"default_environment"`
	// Environments maps the involved object's namespace to an environment;
	// the first matching entry wins.
	Environments []Environment `mapstructure:"environments"`
	// MaxAge refuses deliveries whose event timestamp (inside the signed
	// body) is further than this from when they arrive (replay
	// protection); 0 disables the check.
	MaxAge time.Duration `mapstructure:"max_age"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, DefaultEnvironment: "production"}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path: %q must start with /", c.Path))
	}
	if c.Secret == "" && !c.InsecureSkipVerify {
		errs = append(errs, errors.New("secret: required to verify deliveries (the token of the generic-hmac Provider's secret; set insecure_skip_verify: true to accept unsigned deliveries)"))
	}
	if strings.TrimSpace(c.DefaultEnvironment) == "" {
		errs = append(errs, errors.New("default_environment: must not be empty"))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: %s is negative (0 disables the check)", c.MaxAge))
	}
	if c.MaxAge > 0 && c.Secret == "" {
		errs = append(errs, errors.New("max_age: needs a secret (only a signed timestamp can be trusted)"))
	}
	for i, e := range c.Environments {
		if strings.TrimSpace(e.Pattern) == "" {
			errs = append(errs, fmt.Errorf("environments[%d].pattern: must not be empty", i))
		} else if _, err := path.Match(e.Pattern, ""); err != nil {
			errs = append(errs, fmt.Errorf("environments[%d].pattern: %q is not a valid glob: %v", i, e.Pattern, err))
		} else if strings.Contains(e.Pattern, "/") {
			errs = append(errs, fmt.Errorf("environments[%d].pattern: %q: a namespace has no /", i, e.Pattern))
		}
		if strings.TrimSpace(e.Environment) == "" {
			errs = append(errs, fmt.Errorf("environments[%d].environment: must not be empty", i))
		}
	}
	return errors.Join(errs...)
}

// ObjectReference is the event's involvedObject.
type ObjectReference struct {
	APIVersion      string `json:"apiVersion"`
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	UID             string `json:"uid"`
	ResourceVersion string `json:"resourceVersion"`
}

// Event is the part of Flux's event (fluxcd/pkg/apis/event/v1) the source
// uses. Metadata holds the involved object's controller metadata with the
// API group prefix removed ("revision", "originRevision", "commit", ...),
// the Alert's eventMetadata and "summary".
type Event struct {
	InvolvedObject      ObjectReference   `json:"involvedObject"`
	Severity            string            `json:"severity"`
	Timestamp           string            `json:"timestamp"`
	Message             string            `json:"message"`
	Reason              string            `json:"reason"`
	Metadata            map[string]string `json:"metadata"`
	ReportingController string            `json:"reportingController"`
	ReportingInstance   string            `json:"reportingInstance"`
}

// Provider implements webhook.Provider for Flux.
type Provider struct{ cfg Config }

// New returns the provider for cfg.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

func (p *Provider) Name() string { return event.SourceFlux }

func (p *Provider) ContentTypes() []string { return []string{"application/json"} }

// Parse turns one Flux event into at most one deployment event.
func (p *Provider) Parse(req *webhook.Request) (webhook.Result, error) {
	if p.cfg.Verify() {
		if err := verify(p.cfg.Secret, req.Header.Get(SignatureHeader), req.Body); err != nil {
			return webhook.Result{}, err
		}
	}
	var fe Event
	if err := webhook.DecodeJSON(req.Body, &fe); err != nil {
		return webhook.Result{}, err
	}
	obj := fe.InvolvedObject
	if err := webhook.Required("involvedObject.kind", obj.Kind, "involvedObject.name", obj.Name,
		"involvedObject.namespace", obj.Namespace, "reason", fe.Reason, "timestamp", fe.Timestamp); err != nil {
		return webhook.Result{}, err
	}
	at, err := time.Parse(time.RFC3339Nano, fe.Timestamp)
	if err != nil {
		return webhook.Result{}, webhook.BadRequest("field %q: %q is not an RFC 3339 time", "timestamp", fe.Timestamp)
	}
	// The timestamp is inside the signed body: a replayed copy cannot move it.
	if err := webhook.CheckAge("timestamp", at, req.Received, p.cfg.MaxAge); err != nil {
		return webhook.Result{}, err
	}

	if obj.Kind != KindKustomization && obj.Kind != KindHelmRelease {
		return webhook.Result{Ignored: fmt.Sprintf("%s events are not deployments (only Kustomization and HelmRelease are)", obj.Kind)}, nil
	}
	ev := event.Event{Source: event.SourceFlux, Time: at}
	switch {
	case fe.Severity == "error" && isDeletion(fe.Message):
		return webhook.Result{Ignored: fmt.Sprintf("%s error event %s is about the deletion of the %s (%q), not a deployment", obj.Kind, fe.Reason, obj.Kind, firstLine(fe.Message))}, nil
	case successReasons[fe.Reason] && fe.Severity == "error":
		// kustomize-controller names an error with its Ready condition's
		// reason, which is still the last success when the error is not a
		// reconciliation of a revision.
		return webhook.Result{Ignored: fmt.Sprintf("%s error event with the reason of its last success (%s) does not report a deployment outcome", obj.Kind, fe.Reason)}, nil
	case successReasons[fe.Reason]:
		ev.Kind = event.DeploymentSucceeded
	case failureReasons[fe.Reason] && fe.Severity == "error":
		ev.Kind = event.DeploymentFailed
		ev.Reason = fe.Reason
	default:
		return webhook.Result{Ignored: fmt.Sprintf("%s event %s (severity %s) is not a deployment outcome", obj.Kind, fe.Reason, fe.Severity)}, nil
	}

	commit, revision := revisions(fe.Metadata)
	if revision == "" {
		return webhook.Result{Ignored: fmt.Sprintf("%s event %s has no revision in its metadata; it does not identify a deployment", obj.Kind, fe.Reason)}, nil
	}
	ev.Revision = commit
	ev.Service = event.Service{Namespace: obj.Namespace, Name: obj.Name, Environment: p.environment(obj.Namespace, fe.Metadata)}
	// One revision of one object is one deployment: Flux reports the same
	// revision on every reconciliation, which the engine counts once.
	ev.DeploymentID = "flux/" + obj.Kind + "/" + obj.Namespace + "/" + obj.Name + "/" + revision
	// A retried post is the same event; two reconciliations are not (their
	// timestamps differ).
	who := obj.UID
	if who == "" {
		who = obj.Kind + "/" + obj.Namespace + "/" + obj.Name
	}
	ev.ID = who + "/" + fe.Reason + "/" + revision + "/" + at.UTC().Format(time.RFC3339Nano)
	return webhook.Result{Events: []event.Event{ev}}, nil
}

// isDeletion reports whether message is one of kustomize-controller's
// deletion errors.
func isDeletion(message string) bool {
	for _, m := range deletionMessages {
		if strings.HasPrefix(message, m) {
			return true
		}
	}
	return false
}

// firstLine is the first line of a message, for the ignored answer.
func firstLine(message string) string {
	line, _, _ := strings.Cut(message, "\n")
	return line
}

// environment is the event's "environment" metadata (set by the Alert's
// eventMetadata or the object's event.toolkit.fluxcd.io/environment
// annotation), else the first Environments entry matching the namespace,
// else DefaultEnvironment.
func (p *Provider) environment(namespace string, metadata map[string]string) string {
	if env := strings.TrimSpace(metadata["environment"]); env != "" {
		return env
	}
	for _, e := range p.cfg.Environments {
		if ok, _ := path.Match(e.Pattern, namespace); ok {
			return e.Environment
		}
	}
	return p.cfg.DefaultEnvironment
}

// revisions returns the deployed commit (empty unless the metadata names
// a Git commit) and the revision that identifies the deployment: the
// commit when there is one, else the artifact revision as Flux gives it (a
// chart version, an OCI digest).
//
// notification-controller strips the API group from the keys
// ("kustomize.toolkit.fluxcd.io/revision" arrives as "revision"); older
// versions forwarded them prefixed, which is accepted too.
func revisions(metadata map[string]string) (commit, revision string) {
	lookup := func(key string) string {
		if v := strings.TrimSpace(metadata[key]); v != "" {
			return v
		}
		// The first prefixed key in sorted order, so that a redelivery
		// reads the same one.
		found := ""
		for k, v := range metadata {
			if strings.HasSuffix(k, ".fluxcd.io/"+key) && strings.TrimSpace(v) != "" && (found == "" || k < found) {
				found = k
			}
		}
		if found == "" {
			return ""
		}
		return strings.TrimSpace(metadata[found])
	}
	revision = lookup("revision")
	// The same order as Flux's Event.GetRevision: an explicit commit, the
	// Git revision an OCI artifact was built from, the artifact revision.
	for _, key := range []string{"commit", "originRevision", "revision"} {
		if c := commitOf(lookup(key)); c != "" {
			return c, c
		}
	}
	return "", revision
}

// commitOf returns the commit SHA of a Flux revision: "main@sha1:<sha>",
// "refs/tags/v1@sha1:<sha>", "sha1:<sha>", a bare "<sha>", or the legacy
// "main/<sha>". Digests ("latest@sha256:...") and versions are not commits.
func commitOf(rev string) string {
	if rev == "" {
		return ""
	}
	if i := strings.LastIndex(rev, "@"); i >= 0 {
		rev = rev[i+1:]
	}
	if algo, sum, ok := strings.Cut(rev, ":"); ok {
		if algo != "sha1" {
			return ""
		}
		rev = sum
	} else if i := strings.LastIndex(rev, "/"); i >= 0 {
		rev = rev[i+1:]
	}
	rev = strings.ToLower(rev)
	if len(rev) != 40 {
		return ""
	}
	for i := 0; i < len(rev); i++ {
		if c := rev[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return rev
}

// verify checks "X-Signature: <hash>=<hex HMAC>" in constant time. Flux
// signs with sha256 today; the header names the function so that it may
// change, and the functions Flux documents are accepted.
func verify(secret configopaque.String, header string, body []byte) error {
	if header == "" {
		return webhook.Unauthorized("missing %s header (sha256=<hex HMAC-SHA256 of the body>; use a Provider of type generic-hmac)", SignatureHeader)
	}
	algo, sig, ok := strings.Cut(strings.TrimSpace(header), "=")
	if !ok {
		return webhook.Unauthorized("%s must be <hash function>=<hex HMAC>", SignatureHeader)
	}
	var newHash func() hash.Hash
	switch strings.ToLower(algo) {
	case "sha224":
		newHash = sha256.New224
	case "sha256":
		newHash = sha256.New
	case "sha384":
		newHash = sha512.New384
	case "sha512":
		newHash = sha512.New
	default:
		return webhook.Unauthorized("%s: unsupported hash function %q", SignatureHeader, algo)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return webhook.Unauthorized("%s does not match the body", SignatureHeader)
	}
	mac := hmac.New(newHash, webhook.Key(secret))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return webhook.Unauthorized("%s does not match the body", SignatureHeader)
	}
	return nil
}

var _ webhook.Provider = (*Provider)(nil)
