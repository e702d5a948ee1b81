package dorareceiver

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// TestFieldLimitsAtTheirEdge: each bounded field takes a value of exactly
// its limit and refuses one byte more, naming the field.
func TestFieldLimitsAtTheirEdge(t *testing.T) {
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	base := func() event.Event {
		return event.Event{Kind: event.DeploymentSucceeded, Source: "generic", ID: "d1", Time: now.Add(-time.Minute),
			Service: event.Service{Namespace: "shop", Name: "api", Environment: "production"}, DeploymentID: "d1", Revision: "c3"}
	}
	fields := []struct {
		field string
		limit int
		set   func(*event.Event, string)
	}{
		{"service", 253, func(e *event.Event, v string) { e.Service.Name = v }},
		{"namespace", 63, func(e *event.Event, v string) { e.Service.Namespace = v }},
		{"environment", 255, func(e *event.Event, v string) { e.Service.Environment = v }},
		{"team", 255, func(e *event.Event, v string) { e.Team = v }},
		{"reason", 255, func(e *event.Event, v string) { e.Reason = v }},
		{"source", 255, func(e *event.Event, v string) { e.Source = v }},
		{"repository", 1024, func(e *event.Event, v string) { e.Repository = v }},
		{"revision", 256, func(e *event.Event, v string) { e.Revision = v }},
		{"parent_revision", 256, func(e *event.Event, v string) { e.ParentRevision = v }},
		{"reverts", 256, func(e *event.Event, v string) { e.Reverts = v }},
		{"id", 1024, func(e *event.Event, v string) { e.ID = v }},
		{"deployment_id", 1024, func(e *event.Event, v string) { e.DeploymentID = v }},
		{"previous_deployment_id", 1024, func(e *event.Event, v string) { e.PreviousDeploymentID = v }},
		{"incident_id", 1024, func(e *event.Event, v string) { e.IncidentID = v }},
		{"change_id", 1024, func(e *event.Event, v string) { e.ChangeID = v }},
		{"paths[1]", 4096, func(e *event.Event, v string) { e.Paths = []string{"a.go", v} }},
	}
	for _, f := range fields {
		t.Run(f.field, func(t *testing.T) {
			ev := base()
			f.set(&ev, strings.Repeat("x", f.limit))
			require.NoError(t, checkBounds(&ev, now, time.Minute), "a value of exactly the limit is accepted")

			ev = base()
			f.set(&ev, strings.Repeat("x", f.limit+1))
			err := checkBounds(&ev, now, time.Minute)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, f.field, fe.Field)
			assert.Equal(t, reasonTooLong, fe.Reason)
			assert.Contains(t, err.Error(), "above the limit of")
		})
	}

	t.Run("paths count", func(t *testing.T) {
		ev := base()
		ev.Paths = make([]string, MaxPaths)
		require.NoError(t, checkBounds(&ev, now, time.Minute))
		ev.Paths = append(ev.Paths, "one.go")
		var fe *FieldError
		require.ErrorAs(t, checkBounds(&ev, now, time.Minute), &fe)
		assert.Equal(t, "paths", fe.Field)
	})
}

// TestFutureTimes: a time up to the skew after now passes; later is
// refused, with the milliseconds case named, at any distance (no
// Duration overflow past 292 years).
func TestFutureTimes(t *testing.T) {
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	const skew = 10 * time.Minute
	ms := time.Unix(now.UnixMilli(), 0) // milliseconds read as seconds
	for _, tc := range []struct {
		name   string
		at     time.Time
		reason string
	}{
		{"at the skew", now.Add(skew), ""},
		{"past", now.Add(-24 * time.Hour), ""},
		{"one second past the skew", now.Add(skew + time.Second), reasonFuture},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), reasonFuture},
		{"milliseconds as seconds", ms, reasonMilliseconds},
		{"nanoseconds as seconds", time.Unix(now.UnixNano(), 0), reasonMilliseconds},
	} {
		for _, field := range []string{"time", "commit_time"} {
			t.Run(tc.name+"/"+field, func(t *testing.T) {
				ev := event.Event{Kind: event.ChangeCommitted, Source: "generic", Time: now, Revision: "c1"}
				if field == "time" {
					ev.Time = tc.at
				} else {
					ev.CommitTime = tc.at
				}
				err := checkBounds(&ev, now, skew)
				if tc.reason == "" {
					require.NoError(t, err)
					return
				}
				var fe *FieldError
				require.ErrorAs(t, err, &fe)
				assert.Equal(t, field, fe.Field)
				assert.Equal(t, tc.reason, fe.Reason)
				if tc.reason == reasonMilliseconds {
					assert.Contains(t, err.Error(), "looks like milliseconds")
				}
			})
		}
	}
}

// TestEventsPerDeliveryLimit: the limit itself passes, one more is 413
// with the count and the key.
func TestEventsPerDeliveryLimit(t *testing.T) {
	l := LimitsConfig{MaxEventsPerDelivery: 3, MaxFutureSkew: time.Minute}
	require.NoError(t, l.checkCount(3))
	err := l.checkCount(4)
	var herr *webhook.Error
	require.True(t, errors.As(err, &herr))
	assert.Equal(t, http.StatusRequestEntityTooLarge, herr.Status)
	assert.Contains(t, herr.Message, "4 events")
	assert.Contains(t, herr.Message, "limits::max_events_per_delivery")
}
