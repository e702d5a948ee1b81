package dorareceiver

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Bounds on what one sender can make the receiver keep (issue 13): every
// event is checked here (checkEvent, the ingest core's check), in the
// ingest path and when the saved log is replayed at start, before anything
// is logged or applied. A value that becomes an attribute or a key of the engine's
// state has a length limit that fits its kind, so that one delivery cannot
// put megabytes into every series and every snapshot.

// Length limits of event fields, in bytes. Kubernetes limits names to a
// DNS subdomain (253) and namespaces to a DNS label (63); the others are
// generous for what real senders put there (GitHub environment names are
// up to 255 characters, a full GitLab project path some hundreds, a
// SHA-256 commit id 64 hex digits) and far from what hurts a series.
const (
	MaxServiceNameLen = 253
	MaxNamespaceLen   = 63
	// MaxShortValueLen bounds environment, team, reason and source.
	MaxShortValueLen = 255
	MaxRepositoryLen = 1024
	// MaxRevisionLen bounds revision, parent_revision and reverts.
	MaxRevisionLen = 256
	// MaxIDLen bounds id, deployment_id, previous_deployment_id,
	// incident_id and change_id.
	MaxIDLen = 1024
	// MaxPathLen bounds each of a change's paths (PATH_MAX).
	MaxPathLen = 4096
	// MaxPaths bounds how many paths one event carries.
	MaxPaths = 10000
)

// secondsAsMillis is the start of year 10000, which RFC 3339 cannot
// write: a time past it is milliseconds (or finer) read as seconds
// (milliseconds since 1970 passed it in 1978).
const secondsAsMillis = 253_402_300_800

// LimitsConfig bounds what one delivery can carry.
type LimitsConfig struct {
	// MaxEventsPerDelivery refuses (413) a webhook delivery or OTLP export
	// that carries more events than this, before any is applied.
	MaxEventsPerDelivery int `mapstructure:"max_events_per_delivery"`
	// MaxFutureSkew refuses (400) events dated more than this after the
	// moment they are received: a sender's clock so far ahead, or a time in
	// the wrong unit, would count a deployment in a future that has not
	// happened.
	MaxFutureSkew time.Duration `mapstructure:"max_future_skew"`

	// The series a sender can add (series.go): past each limit a new value
	// folds into the overflow value _overflow of its attribute. Services
	// of the services mapping and of the Kubernetes source are always
	// admitted (they take room, but noise never folds them).
	MaxServices               int `mapstructure:"max_services"`
	MaxEnvironmentsPerService int `mapstructure:"max_environments_per_service"`
	// MaxReasons bounds the distinct free-form reasons of failed
	// deployments, across services.
	MaxReasons int `mapstructure:"max_reasons"`
	// MaxStateBytes is the memory guard: when the engine's state, estimated
	// from its series, pending changes and open incidents, passes it, every
	// new value of a sender folds and the component status is a
	// recoverable error. 0 turns the guard off.
	MaxStateBytes int64 `mapstructure:"max_state_bytes"`
}

func defaultLimitsConfig() LimitsConfig {
	// GitHub lists up to 2048 commits in a push, one event each.
	return LimitsConfig{
		MaxEventsPerDelivery: 5000, MaxFutureSkew: 10 * time.Minute,
		MaxServices: defaultMaxServices, MaxEnvironmentsPerService: defaultMaxEnvironments, MaxReasons: defaultMaxReasons,
		MaxStateBytes: defaultMaxStateBytes,
	}
}

func (l LimitsConfig) validate() error {
	var errs []error
	if l.MaxEventsPerDelivery <= 0 {
		errs = append(errs, fmt.Errorf("limits::max_events_per_delivery: must be positive, got %d", l.MaxEventsPerDelivery))
	}
	if l.MaxFutureSkew <= 0 {
		errs = append(errs, fmt.Errorf("limits::max_future_skew: must be positive, got %s", l.MaxFutureSkew))
	}
	for _, c := range []struct {
		key string
		n   int
	}{{"max_services", l.MaxServices}, {"max_environments_per_service", l.MaxEnvironmentsPerService}, {"max_reasons", l.MaxReasons}} {
		if c.n <= 0 {
			errs = append(errs, fmt.Errorf("limits::%s: must be positive, got %d", c.key, c.n))
		}
	}
	if l.MaxStateBytes < 0 {
		errs = append(errs, fmt.Errorf("limits::max_state_bytes: must be 0 (off) or positive, got %d", l.MaxStateBytes))
	}
	return errors.Join(errs...)
}

// FieldError is an event refused for one of its fields; Field is the
// field's name as the logged event (internal/persist) and the generic
// source spell it.
type FieldError struct {
	Field string
	Msg   string
	// Reason is the refusal's reason in the receiver's telemetry.
	Reason string
}

// Refusal reasons of FieldError.
const (
	reasonTooLong      = "value_too_long"
	reasonFuture       = "time_in_future"
	reasonMilliseconds = "time_in_milliseconds"
)

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// FieldName lets the webhook handler put the field in its answer.
func (e *FieldError) FieldName() string { return e.Field }

// RefusalReason is the reason the webhook handler counts.
func (e *FieldError) RefusalReason() string { return e.Reason }

// checkBounds reports the first field of ev over its limit, or dated
// more than skew after now.
func checkBounds(ev *event.Event, now time.Time, skew time.Duration) error {
	fields := [...]struct {
		name  string
		value string
		limit int
	}{
		{"service", ev.Service.Name, MaxServiceNameLen},
		{"namespace", ev.Service.Namespace, MaxNamespaceLen},
		{"environment", ev.Service.Environment, MaxShortValueLen},
		{"cluster", ev.Service.Cluster, maxClusterName},
		{"team", ev.Team, MaxShortValueLen},
		{"reason", ev.Reason, MaxShortValueLen},
		{"source", ev.Source, MaxShortValueLen},
		{"repository", ev.Repository, MaxRepositoryLen},
		{"revision", ev.Revision, MaxRevisionLen},
		{"parent_revision", ev.ParentRevision, MaxRevisionLen},
		{"reverts", ev.Reverts, MaxRevisionLen},
		{"id", ev.ID, MaxIDLen},
		{"deployment_id", ev.DeploymentID, MaxIDLen},
		{"previous_deployment_id", ev.PreviousDeploymentID, MaxIDLen},
		{"incident_id", ev.IncidentID, MaxIDLen},
		{"change_id", ev.ChangeID, MaxIDLen},
	}
	for _, f := range fields {
		if len(f.value) > f.limit {
			return &FieldError{Field: f.name, Msg: fmt.Sprintf("%d bytes, above the limit of %d", len(f.value), f.limit), Reason: reasonTooLong}
		}
	}
	if len(ev.Paths) > MaxPaths {
		return &FieldError{Field: "paths", Msg: fmt.Sprintf("%d paths, above the limit of %d", len(ev.Paths), MaxPaths), Reason: reasonTooLong}
	}
	for i, p := range ev.Paths {
		if len(p) > MaxPathLen {
			return &FieldError{Field: fmt.Sprintf("paths[%d]", i), Msg: fmt.Sprintf("%d bytes, above the limit of %d", len(p), MaxPathLen), Reason: reasonTooLong}
		}
	}
	if err := checkTime("time", ev.Time, now, skew); err != nil {
		return err
	}
	return checkTime("commit_time", ev.CommitTime, now, skew)
}

// checkTime refuses a time more than skew after now. Times are compared,
// not subtracted: a Duration overflows (saturates) 292 years away.
func checkTime(field string, t, now time.Time, skew time.Duration) error {
	if t.IsZero() || now.IsZero() || !t.After(now.Add(skew)) {
		return nil
	}
	if t.Unix() >= secondsAsMillis {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%d looks like milliseconds (or finer) where Unix seconds are expected: it is year %d",
			t.Unix(), t.Year()), Reason: reasonMilliseconds}
	}
	return &FieldError{Field: field, Msg: fmt.Sprintf("%s is more than %s after it was received (%s); is the sender's clock right?",
		t.UTC().Format(time.RFC3339), skew, now.UTC().Format(time.RFC3339)), Reason: reasonFuture}
}

// checkCount refuses a delivery over max_events_per_delivery.
func (l LimitsConfig) checkCount(n int) error {
	if n > l.MaxEventsPerDelivery {
		return &webhook.Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("the delivery carries %d events, above the limit of %d (limits::max_events_per_delivery); send them in smaller deliveries", n, l.MaxEventsPerDelivery)}
	}
	return nil
}

// checkEvent is what every event passes before it is logged or applied,
// from a delivery or from the saved log: the engine's own check and the
// bounds.
func (r *doraReceiver) checkEvent(ev *event.Event, now time.Time) error {
	if err := engine.Validate(*ev); err != nil {
		return err
	}
	return checkBounds(ev, now, r.cfg.Limits.MaxFutureSkew)
}

// minSecretLen is the shortest secret or token that does not draw a
// warning at start: 16 bytes, 128 bits if random.
const minSecretLen = 16

// startWarnings names, at start, what leaves the webhook server open to
// abuse while still being a valid configuration: short secrets, disabled
// server timeouts, and paths that take deliveries without verifying them
// (insecure_skip_verify, the only way to run the otlp path without an
// authenticator, is warned about as each source is enabled).
func startWarnings(wc *WebhooksConfig) []startWarning {
	var out []startWarning
	for _, s := range wc.sources() {
		if n := len(webhook.Key(s.secret)); n > 0 && n < minSecretLen {
			out = append(out, startWarning{key: s.key + "::secret", msg: fmt.Sprintf(
				"the secret or token is %d bytes long, under %d: a short secret can be guessed; use a random one of at least 32 bytes", n, minSecretLen)})
		}
	}
	sc := wc.ServerConfig
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"read_header_timeout", sc.ReadHeaderTimeout}, {"read_timeout", sc.ReadTimeout}, {"write_timeout", sc.WriteTimeout}} {
		if t.d <= 0 {
			out = append(out, startWarning{key: t.key, msg: "is 0: the timeout is disabled, and a client that sends slowly holds a connection and a goroutine for as long as it likes"})
		}
	}
	if ka := sc.Keepalive.Get(); ka != nil && ka.IdleTimeout <= 0 && sc.ReadTimeout <= 0 {
		out = append(out, startWarning{key: "keepalive::idle_timeout", msg: "is 0 with read_timeout 0: idle connections are never closed"})
	}
	return out
}

type startWarning struct{ key, msg string }
