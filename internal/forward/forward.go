// Package forward is the record schema between a dora agent and a dora
// gateway (docs/agent-gateway.md): an agent turns each normalized event of
// its cluster into one OTLP log record (Append) and sends it through the
// exporters of its logs pipeline; the gateway decodes the records of an
// OTLP logs export back into events (Decode), strictly and within bounds,
// and applies them like its own.
//
// The schema is versioned (AttrSchemaVersion): a decoder refuses a version
// it does not know, naming it, rather than guess.
package forward

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
)

// SchemaVersion is the version this package writes and reads.
const SchemaVersion = 1

// ScopeName is the instrumentation scope of the records; EventName their
// event name.
const (
	ScopeName = "github.com/otelcol-dora/dorareceiver/forward"
	EventName = "dora.event"
)

// Record attributes (docs/agent-gateway.md). Every key this schema owns
// starts with dora., except the OpenTelemetry semantic-convention ones.
const (
	AttrSchemaVersion = "dora.schema.version"
	AttrKind          = "dora.event.kind"
	AttrSource        = "dora.event.source"
	AttrID            = "dora.event.id"
	AttrCluster       = "k8s.cluster.name"
	AttrNamespace     = "k8s.namespace.name"
	AttrService       = "dora.service.name"
	AttrEnvironment   = "deployment.environment.name"
	AttrRepository    = "dora.repository"
	AttrServiceHint   = "dora.service_hint"
	AttrDeploymentID  = "dora.deployment.id"
	AttrPreviousID    = "dora.deployment.previous_id"
	AttrRevision      = "dora.revision"
	AttrParent        = "dora.revision.parent"
	AttrCommitTime    = "dora.commit.time"
	AttrReason        = "dora.reason"
	AttrIncidentID    = "dora.incident.id"
	AttrHotfix        = "dora.hotfix"
	AttrReverts       = "dora.reverts"
	AttrRevertsChange = "dora.reverts_change"
	AttrChangeID      = "dora.change.id"
	AttrTeam          = "dora.team"
	AttrTeamFallback  = "dora.team.fallback"
	AttrPaths         = "dora.paths"
)

// Append adds one log record per event to ld, under one resource and
// scope: the record's timestamp is the event's time at its origin, its
// observed timestamp observed (when it was sent). Empty fields are left
// out.
func Append(ld plog.Logs, events []event.Event, observed time.Time) {
	if len(events) == 0 {
		return
	}
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	sl.Scope().SetName(ScopeName)
	recs := sl.LogRecords()
	recs.EnsureCapacity(len(events))
	obs := pcommon.NewTimestampFromTime(observed)
	for i := range events {
		ev := &events[i]
		lr := recs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(ev.Time))
		lr.SetObservedTimestamp(obs)
		lr.SetEventName(EventName)
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.Body().SetStr(summary(ev))
		a := lr.Attributes()
		a.EnsureCapacity(8)
		a.PutInt(AttrSchemaVersion, SchemaVersion)
		a.PutStr(AttrKind, ev.Kind.String())
		a.PutStr(AttrSource, ev.Source)
		put := func(k, v string) {
			if v != "" {
				a.PutStr(k, v)
			}
		}
		put(AttrID, ev.ID)
		put(AttrCluster, ev.Service.Cluster)
		put(AttrNamespace, ev.Service.Namespace)
		put(AttrService, ev.Service.Name)
		put(AttrEnvironment, ev.Service.Environment)
		put(AttrRepository, ev.Repository)
		put(AttrServiceHint, ev.ServiceHint)
		put(AttrDeploymentID, ev.DeploymentID)
		put(AttrPreviousID, ev.PreviousDeploymentID)
		put(AttrRevision, ev.Revision)
		put(AttrParent, ev.ParentRevision)
		if !ev.CommitTime.IsZero() {
			a.PutStr(AttrCommitTime, ev.CommitTime.UTC().Format(time.RFC3339Nano))
		}
		put(AttrReason, ev.Reason)
		put(AttrIncidentID, ev.IncidentID)
		if ev.Hotfix {
			a.PutBool(AttrHotfix, true)
		}
		put(AttrReverts, ev.Reverts)
		put(AttrRevertsChange, ev.RevertsChange)
		put(AttrChangeID, ev.ChangeID)
		put(AttrTeam, ev.Team)
		if ev.TeamFallback {
			a.PutBool(AttrTeamFallback, true)
		}
		if len(ev.Paths) > 0 {
			s := a.PutEmptySlice(AttrPaths)
			s.EnsureCapacity(len(ev.Paths))
			for _, p := range ev.Paths {
				s.AppendEmpty().SetStr(p)
			}
		}
	}
}

// summary is the record's body, for people reading the records in a log
// backend; the decoder does not read it.
func summary(ev *event.Event) string {
	var b strings.Builder
	b.WriteString(ev.Kind.String())
	if ev.Service.Name != "" {
		b.WriteString(" ")
		if ev.Service.Namespace != "" {
			b.WriteString(ev.Service.Namespace + "/")
		}
		b.WriteString(ev.Service.Name)
	}
	if ev.Service.Environment != "" {
		b.WriteString(" to " + ev.Service.Environment)
	}
	if ev.Service.Cluster != "" {
		b.WriteString(" in " + ev.Service.Cluster)
	}
	if ev.Revision != "" {
		b.WriteString(" at " + ev.Revision)
	}
	return b.String()
}

// Limits bound what Decode accepts; the receiver's own bounds (the
// limits setting) check each event's fields after.
type Limits struct {
	// MaxRecords bounds the records of one export.
	MaxRecords int
	// MaxValueLen bounds every string value.
	MaxValueLen int
	// MaxPaths bounds dora.paths.
	MaxPaths int
}

// Error is a record refused for one of its fields. It is an
// ingest.ErrInvalidEvent: the sender's fault, answered 400 (HTTP) or
// InvalidArgument (gRPC) with the field.
type Error struct {
	// Record is the record's index in the export, in order.
	Record int
	Field  string
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("record %d: %s: %s", e.Record, e.Field, e.Msg)
}

// FieldName names the field in the answer.
func (e *Error) FieldName() string { return e.Field }

// RefusalReason is the reason counted in the receiver's telemetry.
func (e *Error) RefusalReason() string { return "invalid_record" }

func (e *Error) Unwrap() error { return ingest.ErrInvalidEvent }

// ErrTooManyRecords is returned (wrapped, with the counts) for an export
// over Limits.MaxRecords.
var ErrTooManyRecords = errors.New("too many records")

// known are the attributes of the schema, with their types.
var known = map[string]pcommon.ValueType{
	AttrSchemaVersion: pcommon.ValueTypeInt,
	AttrKind:          pcommon.ValueTypeStr, AttrSource: pcommon.ValueTypeStr, AttrID: pcommon.ValueTypeStr,
	AttrCluster: pcommon.ValueTypeStr, AttrNamespace: pcommon.ValueTypeStr, AttrService: pcommon.ValueTypeStr,
	AttrEnvironment: pcommon.ValueTypeStr, AttrRepository: pcommon.ValueTypeStr, AttrServiceHint: pcommon.ValueTypeStr,
	AttrDeploymentID: pcommon.ValueTypeStr, AttrPreviousID: pcommon.ValueTypeStr, AttrRevision: pcommon.ValueTypeStr,
	AttrParent: pcommon.ValueTypeStr, AttrCommitTime: pcommon.ValueTypeStr, AttrReason: pcommon.ValueTypeStr,
	AttrIncidentID: pcommon.ValueTypeStr, AttrHotfix: pcommon.ValueTypeBool, AttrReverts: pcommon.ValueTypeStr,
	AttrRevertsChange: pcommon.ValueTypeStr, AttrChangeID: pcommon.ValueTypeStr, AttrTeam: pcommon.ValueTypeStr,
	AttrTeamFallback: pcommon.ValueTypeBool, AttrPaths: pcommon.ValueTypeSlice,
}

// Decode returns the events of ld's records, in order, or the first
// record's error: a record without dora.schema.version or of another
// version, an unknown dora.* attribute, a value of the wrong type or over
// the limits, a missing kind, source or timestamp. Attributes outside the
// schema's keys (a processor's) are ignored. The events own their strings:
// ld may be reused once Decode returns.
func Decode(ld plog.Logs, lim Limits) ([]event.Event, error) {
	if n := ld.LogRecordCount(); lim.MaxRecords > 0 && n > lim.MaxRecords {
		return nil, fmt.Errorf("%w: the export carries %d records, above the limit of %d", ErrTooManyRecords, n, lim.MaxRecords)
	}
	var out []event.Event
	idx := 0
	rls := ld.ResourceLogs()
	for i := range rls.Len() {
		sls := rls.At(i).ScopeLogs()
		for j := range sls.Len() {
			recs := sls.At(j).LogRecords()
			for k := range recs.Len() {
				ev, err := decodeRecord(recs.At(k), idx, lim)
				if err != nil {
					return nil, err
				}
				out = append(out, ev)
				idx++
			}
		}
	}
	return out, nil
}

func decodeRecord(lr plog.LogRecord, idx int, lim Limits) (event.Event, error) {
	fail := func(field, format string, args ...any) (event.Event, error) {
		return event.Event{}, &Error{Record: idx, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	attrs := lr.Attributes()
	v, ok := attrs.Get(AttrSchemaVersion)
	switch {
	case !ok:
		return fail(AttrSchemaVersion, "missing: not a dora agent's record")
	case v.Type() != pcommon.ValueTypeInt:
		return fail(AttrSchemaVersion, "must be an integer, got %s", v.Type())
	case v.Int() != SchemaVersion:
		return fail(AttrSchemaVersion, "unknown schema version %d: this receiver reads version %d (upgrade the gateway before its agents)", v.Int(), SchemaVersion)
	}
	var ev event.Event
	var err error
	attrs.Range(func(k string, v pcommon.Value) bool {
		want, isKnown := known[k]
		if !isKnown {
			if strings.HasPrefix(k, "dora.") {
				_, err = fail(k, "unknown attribute of schema version %d", SchemaVersion)
				return false
			}
			return true // a processor's attribute
		}
		if v.Type() != want {
			_, err = fail(k, "must be a %s, got %s", strings.ToLower(want.String()), v.Type())
			return false
		}
		if want == pcommon.ValueTypeStr && lim.MaxValueLen > 0 && len(v.Str()) > lim.MaxValueLen {
			_, err = fail(k, "%d bytes, above the limit of %d", len(v.Str()), lim.MaxValueLen)
			return false
		}
		// strings.Clone: the events outlive the request's buffers.
		s := strings.Clone(v.Str())
		switch k {
		case AttrKind:
			kind, ok := event.ParseKind(s)
			if !ok {
				_, err = fail(k, "unknown event kind %q", s)
				return false
			}
			ev.Kind = kind
		case AttrSource:
			ev.Source = s
		case AttrID:
			ev.ID = s
		case AttrCluster:
			ev.Service.Cluster = s
		case AttrNamespace:
			ev.Service.Namespace = s
		case AttrService:
			ev.Service.Name = s
		case AttrEnvironment:
			ev.Service.Environment = s
		case AttrRepository:
			ev.Repository = s
		case AttrServiceHint:
			ev.ServiceHint = s
		case AttrDeploymentID:
			ev.DeploymentID = s
		case AttrPreviousID:
			ev.PreviousDeploymentID = s
		case AttrRevision:
			ev.Revision = s
		case AttrParent:
			ev.ParentRevision = s
		case AttrCommitTime:
			t, perr := time.Parse(time.RFC3339Nano, s)
			if perr != nil {
				_, err = fail(k, "not an RFC 3339 time: %q", s)
				return false
			}
			ev.CommitTime = t
		case AttrReason:
			ev.Reason = s
		case AttrIncidentID:
			ev.IncidentID = s
		case AttrHotfix:
			ev.Hotfix = v.Bool()
		case AttrReverts:
			ev.Reverts = s
		case AttrRevertsChange:
			ev.RevertsChange = s
		case AttrChangeID:
			ev.ChangeID = s
		case AttrTeam:
			ev.Team = s
		case AttrTeamFallback:
			ev.TeamFallback = v.Bool()
		case AttrPaths:
			ps := v.Slice()
			if lim.MaxPaths > 0 && ps.Len() > lim.MaxPaths {
				_, err = fail(k, "%d paths, above the limit of %d", ps.Len(), lim.MaxPaths)
				return false
			}
			ev.Paths = make([]string, 0, ps.Len())
			for i := range ps.Len() {
				p := ps.At(i)
				if p.Type() != pcommon.ValueTypeStr {
					_, err = fail(fmt.Sprintf("%s[%d]", k, i), "must be a string, got %s", p.Type())
					return false
				}
				if lim.MaxValueLen > 0 && len(p.Str()) > lim.MaxValueLen {
					_, err = fail(fmt.Sprintf("%s[%d]", k, i), "%d bytes, above the limit of %d", len(p.Str()), lim.MaxValueLen)
					return false
				}
				ev.Paths = append(ev.Paths, strings.Clone(p.Str()))
			}
		}
		return true
	})
	if err != nil {
		return event.Event{}, err
	}
	switch {
	case ev.Kind == event.KindUnknown:
		return fail(AttrKind, "missing")
	case ev.Source == "":
		return fail(AttrSource, "missing")
	case lr.Timestamp() == 0:
		return fail("time_unix_nano", "missing: the record's timestamp is the event's time")
	}
	ev.Time = lr.Timestamp().AsTime().UTC()
	return ev, nil
}
