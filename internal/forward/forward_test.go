package forward

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
)

var (
	t0     = time.Date(2026, 12, 7, 9, 0, 0, 123456789, time.UTC)
	limits = Limits{MaxRecords: 100, MaxValueLen: 4096, MaxPaths: 10}
)

// full has every field of event.Event (and of its service) set.
func full() event.Event {
	return event.Event{
		Kind: event.DeploymentRolledBack, Source: event.SourceKubernetes, ID: "shop/api/7/rolled_back", Time: t0,
		Service:    event.Service{Namespace: "shop", Name: "api", Environment: "production", Cluster: "eu-1"},
		Repository: "acme/api", ServiceHint: "api-ci", DeploymentID: "shop/api/7", PreviousDeploymentID: "shop/api/6",
		Revision: "r7", ParentRevision: "r6", CommitTime: t0.Add(-time.Hour), Reason: "ProgressDeadlineExceeded",
		IncidentID: "inc-1", Hotfix: true, Reverts: "r5", RevertsChange: "github/acme/api/pull/5", ChangeID: "github/acme/api/pull/7",
		Team: "payments", TeamFallback: true, Paths: []string{"a.go", "b/c.go"},
	}
}

// notForwarded are the fields of event.Event the schema does not carry:
// the history import's marks (Imported, ImportFrom), because an agent does
// not import history (the import runs where the engine is: docs/history.md),
// so every record is a live event.
var notForwarded = map[string]bool{"Imported": true, "ImportFrom": true}

// encoded is the OTLP/HTTP protobuf body of events, decoded again as the
// gateway does.
func roundTrip(t *testing.T, events []event.Event) []event.Event {
	t.Helper()
	ld := plog.NewLogs()
	Append(ld, events, t0.Add(time.Minute))
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(t, err)
	req := plogotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(body))
	got, err := Decode(req.Logs(), limits)
	require.NoError(t, err)
	return got
}

// Every field comes back equal, through the protobuf encoding; a field
// added to event.Event fails the test until the schema carries it.
func TestRoundTripKeepsEveryField(t *testing.T) {
	ev := full()
	v := reflect.ValueOf(ev)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if notForwarded[name] {
			continue
		}
		require.False(t, v.Field(i).IsZero(), "full leaves %s unset: set it, and carry it in the schema", name)
	}
	sv := reflect.ValueOf(ev.Service)
	for i := range sv.NumField() {
		require.False(t, sv.Field(i).IsZero(), "full leaves Service.%s unset", sv.Type().Field(i).Name)
	}
	assert.Equal(t, []event.Event{ev}, roundTrip(t, []event.Event{ev}))

	// Every kind, and a minimal event (empty fields left out).
	var evs []event.Event
	for k := event.DeploymentStarted; k.Valid(); k++ {
		evs = append(evs, event.Event{Kind: k, Source: "github", Time: t0.Add(time.Duration(k) * time.Second)})
	}
	assert.Equal(t, evs, roundTrip(t, evs))
}

func TestRecordLayout(t *testing.T) {
	ld := plog.NewLogs()
	Append(ld, []event.Event{full()}, t0.Add(time.Minute))
	require.Equal(t, 1, ld.LogRecordCount(), "one record per event")
	sl := ld.ResourceLogs().At(0).ScopeLogs().At(0)
	assert.Equal(t, ScopeName, sl.Scope().Name())
	lr := sl.LogRecords().At(0)
	assert.Equal(t, EventName, lr.EventName())
	assert.Equal(t, pcommon.NewTimestampFromTime(t0), lr.Timestamp(), "the event's original time")
	assert.Equal(t, pcommon.NewTimestampFromTime(t0.Add(time.Minute)), lr.ObservedTimestamp())
	assert.Equal(t, "deployment_rolled_back shop/api to production in eu-1 at r7", lr.Body().Str())
	v, _ := lr.Attributes().Get(AttrSchemaVersion)
	assert.EqualValues(t, SchemaVersion, v.Int())
}

// record returns an export of one record built from a valid event, then
// changed by edit.
func record(edit func(lr plog.LogRecord)) plog.Logs {
	ld := plog.NewLogs()
	Append(ld, []event.Event{full()}, t0)
	edit(ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0))
	return ld
}

func TestBadRecords(t *testing.T) {
	for name, c := range map[string]struct {
		edit  func(lr plog.LogRecord)
		field string
		msg   string
	}{
		"no version":        {func(lr plog.LogRecord) { lr.Attributes().Remove(AttrSchemaVersion) }, AttrSchemaVersion, "missing"},
		"version as string": {func(lr plog.LogRecord) { lr.Attributes().PutStr(AttrSchemaVersion, "1") }, AttrSchemaVersion, "must be an integer"},
		"unknown version":   {func(lr plog.LogRecord) { lr.Attributes().PutInt(AttrSchemaVersion, 2) }, AttrSchemaVersion, "unknown schema version 2"},
		"no kind":           {func(lr plog.LogRecord) { lr.Attributes().Remove(AttrKind) }, AttrKind, "missing"},
		"unknown kind":      {func(lr plog.LogRecord) { lr.Attributes().PutStr(AttrKind, "deployment_exploded") }, AttrKind, "unknown event kind"},
		"no source":         {func(lr plog.LogRecord) { lr.Attributes().Remove(AttrSource) }, AttrSource, "missing"},
		"no time":           {func(lr plog.LogRecord) { lr.SetTimestamp(0) }, "time_unix_nano", "missing"},
		"unknown dora key":  {func(lr plog.LogRecord) { lr.Attributes().PutStr("dora.flavour", "x") }, "dora.flavour", "unknown attribute"},
		"wrong type":        {func(lr plog.LogRecord) { lr.Attributes().PutInt(AttrRevision, 7) }, AttrRevision, "must be a str"},
		"hotfix as string":  {func(lr plog.LogRecord) { lr.Attributes().PutStr(AttrHotfix, "true") }, AttrHotfix, "must be a bool"},
		"bad commit time":   {func(lr plog.LogRecord) { lr.Attributes().PutStr(AttrCommitTime, "yesterday") }, AttrCommitTime, "RFC 3339"},
		"value too long":    {func(lr plog.LogRecord) { lr.Attributes().PutStr(AttrID, strings.Repeat("x", 4097)) }, AttrID, "above the limit of 4096"},
		"path too long": {func(lr plog.LogRecord) {
			ps, _ := lr.Attributes().Get(AttrPaths)
			ps.Slice().At(1).SetStr(strings.Repeat("p", 4097))
		}, AttrPaths + "[1]", "above the limit"},
		"path not a string":  {func(lr plog.LogRecord) { ps, _ := lr.Attributes().Get(AttrPaths); ps.Slice().At(0).SetInt(3) }, AttrPaths + "[0]", "must be a string"},
		"too many paths":     {func(lr plog.LogRecord) { lr.Attributes().PutEmptySlice(AttrPaths).FromRaw(make([]any, 11)) }, AttrPaths, "11 paths"},
		"cluster not string": {func(lr plog.LogRecord) { lr.Attributes().PutBool(AttrCluster, true) }, AttrCluster, "must be a str"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(record(c.edit), limits)
			require.Error(t, err)
			var re *Error
			require.True(t, errors.As(err, &re), "%v", err)
			assert.Equal(t, c.field, re.FieldName())
			assert.Equal(t, 0, re.Record)
			assert.Contains(t, err.Error(), c.msg)
			assert.ErrorIs(t, err, ingest.ErrInvalidEvent, "the sender's fault: 400 / InvalidArgument")
		})
	}
}

// A processor's attributes (outside dora.*) are ignored; the error of a
// later record names its index.
func TestForeignAttributesAndRecordIndex(t *testing.T) {
	ld := record(func(lr plog.LogRecord) { lr.Attributes().PutStr("host.name", "node-1") })
	evs, err := Decode(ld, limits)
	require.NoError(t, err)
	require.Len(t, evs, 1)

	Append(ld, []event.Event{full(), {Kind: event.ChangeCommitted, Time: t0}}, t0)
	_, err = Decode(ld, limits)
	var re *Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 2, re.Record)
	assert.Equal(t, AttrSource, re.Field)
}

func TestTooManyRecords(t *testing.T) {
	ld := plog.NewLogs()
	Append(ld, make([]event.Event, 3), t0)
	_, err := Decode(ld, Limits{MaxRecords: 2})
	assert.ErrorIs(t, err, ErrTooManyRecords)
	assert.ErrorContains(t, err, "3 records, above the limit of 2")
}

// FuzzDecode: any export decodes to events or an error, never a panic;
// what decodes encodes and decodes again to the same events.
func FuzzDecode(f *testing.F) {
	ld := plog.NewLogs()
	Append(ld, []event.Event{full(), {Kind: event.ChangeCommitted, Source: "github", ID: "x", Time: t0, Revision: "r1"}}, t0)
	seed, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(f, err)
	f.Add(seed)
	js, err := plogotlp.NewExportRequestFromLogs(ld).MarshalJSON()
	require.NoError(f, err)
	f.Add(js)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := plogotlp.NewExportRequest()
		if req.UnmarshalProto(body) != nil && req.UnmarshalJSON(body) != nil {
			return
		}
		evs, err := Decode(req.Logs(), limits)
		if err != nil {
			return
		}
		again := plog.NewLogs()
		Append(again, evs, t0)
		evs2, err := Decode(again, limits)
		require.NoError(t, err)
		require.Equal(t, len(evs), len(evs2))
		for i := range evs {
			// Zero-length and nil paths are both "none".
			if len(evs[i].Paths) == 0 {
				evs[i].Paths = nil
			}
			assert.Equal(t, evs[i], evs2[i])
		}
	})
}

// BenchmarkDecode: the gateway's decoding of an agent's export of 1,000
// rollout records, from the protobuf body as the OTLP receiver would
// unmarshal it (proto) to events (proto+decode); ns/record per record.
func BenchmarkDecode(b *testing.B) {
	events := make([]event.Event, 1000)
	for i := range events {
		events[i] = event.Event{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: fmt.Sprintf("shop/api-%d/deployment_succeeded", i),
			Time: t0.Add(time.Duration(i) * time.Second), Service: event.Service{Namespace: "shop", Name: fmt.Sprint("api-", i), Environment: "production", Cluster: "eu-1"},
			DeploymentID: fmt.Sprintf("shop/api-%d/7", i), Revision: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"}
	}
	ld := plog.NewLogs()
	Append(ld, events, t0)
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(b, err)
	lim := limits
	lim.MaxRecords = len(events)
	for _, decode := range []bool{false, true} {
		name := "proto"
		if decode {
			name = "proto+decode"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req := plogotlp.NewExportRequest()
				if err := req.UnmarshalProto(body); err != nil {
					b.Fatal(err)
				}
				if decode {
					if _, err := Decode(req.Logs(), lim); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(events)), "ns/record")
		})
	}
}
