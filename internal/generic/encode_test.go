package generic

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/engine/enginetest"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

// TestReviewAndRevert parses the events of a reviewed change (pr_opened,
// merge with a change_id), a revert commit with the files it touched, and
// a rollback that names the deployment it abandons.
func TestReviewAndRevert(t *testing.T) {
	res, err := provider().Parse(signed(webhooktest.Fixture(t, "review.json")))
	require.NoError(t, err)
	at := func(h, m int) time.Time { return time.Date(2026, 11, 2, h, m, 0, 0, time.UTC) }
	assert.Equal(t, []event.Event{
		{
			Kind: event.ChangeOpened, Source: event.SourceGeneric, ID: "acme/api/pull/42/opened", Time: at(7, 0),
			Repository: "acme/api", ChangeID: "acme/api/pull/42",
		},
		{
			Kind: event.ChangeCommitted, Source: event.SourceGeneric, ID: "acme/api/commit/2", Time: at(8, 0),
			Repository: "acme/api", Revision: "2222222222222222222222222222222222222222",
			ParentRevision: "1111111111111111111111111111111111111111",
			Reverts:        "abcdefabcdefabcdefabcdefabcdefabcdefabcd",
			Paths:          []string{"services/api/main.go", "README.md"},
		},
		{
			Kind: event.ChangeMerged, Source: event.SourceGeneric, ID: "acme/api/pull/42/merged", Time: at(8, 30),
			Repository: "acme/api", Revision: "3333333333333333333333333333333333333333", ChangeID: "acme/api/pull/42",
		},
		{
			Kind: event.DeploymentRolledBack, Source: event.SourceGeneric, ID: "platform-api/deploy/8842/rolled_back", Time: at(10, 40),
			Service:      event.Service{Namespace: "shop", Name: "api", Environment: "production"},
			DeploymentID: "8842", PreviousDeploymentID: "8841", Hotfix: true,
		},
	}, res.Events)
}

func TestReviewMalformed(t *testing.T) {
	tests := map[string]string{
		`{"type":"merge","id":"x","time":"2026-11-02T10:00:00Z","change_id":"c"}`:    `missing required field "revision"`,
		`{"type":"pr_opened","id":"x","time":"2026-11-02T10:00:00Z","revision":"a"}`: `missing required field "change_id"`,
	}
	for body, want := range tests {
		t.Run(want, func(t *testing.T) {
			_, err := provider().Parse(signed([]byte(body)))
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusBadRequest, herr.Status)
			assert.Contains(t, herr.Message, want)
		})
	}
}

// TestPayloadOfRoundTrip encodes events with PayloadOf and parses them
// back: every event of the engine's scenarios (the e2e test sends them to
// the binary this way) and every kind and field of the generic form come
// back unchanged but for their source, and every payload validates against
// the published schema.
func TestPayloadOfRoundTrip(t *testing.T) {
	validate := schemaValidator(t)
	var events []event.Event
	for _, sc := range enginetest.Scenarios() {
		events = append(events, sc.Events...)
	}
	res, err := provider().Parse(signed(webhooktest.Fixture(t, "review.json")))
	require.NoError(t, err)
	events = append(events, res.Events...)
	res, err = provider().Parse(signed(webhooktest.Fixture(t, "batch.json")))
	require.NoError(t, err)
	events = append(events, res.Events...)
	events = append(events,
		enginetest.Failed(enginetest.API, "d9", "ProgressDeadlineExceeded", 0),
		enginetest.Reverting(enginetest.WithCommitTime(enginetest.AsHotfix(enginetest.Succeeded(enginetest.API, "d9", "abc", time.Hour)), 0), "def"),
		enginetest.Merged("m1", "acme/api/pull/1", 0),
		enginetest.Opened("acme/api/pull/1", 0),
	)
	kinds := map[event.Kind]bool{}
	for _, ev := range events {
		kinds[ev.Kind] = true
		pl, err := PayloadOf(ev)
		require.NoError(t, err, ev.ID)
		body, err := json.Marshal(pl)
		require.NoError(t, err)
		require.NoError(t, validate(body), "%s", body)
		res, err := provider().Parse(signed(body))
		require.NoError(t, err, "%s", body)
		require.Len(t, res.Events, 1)
		want := ev
		want.Source = event.SourceGeneric
		assert.Equal(t, want, res.Events[0], "%s", body)
	}
	for k := event.KindUnknown + 1; k.Valid(); k++ {
		assert.True(t, kinds[k], "no event of kind %s in the round trip", k)
	}
}

func TestPayloadOfRefuses(t *testing.T) {
	_, err := PayloadOf(event.Event{ID: "x", Time: enginetest.T0})
	assert.ErrorContains(t, err, "no generic form")
	ev := enginetest.Succeeded(enginetest.API, "d1", "abc", 0)
	ev.ParentRevision = "abd"
	_, err = PayloadOf(ev)
	assert.ErrorContains(t, err, "parent_revision")
	ev = enginetest.Change("abc", "", 0)
	ev.PreviousDeploymentID = "d0"
	_, err = PayloadOf(ev)
	assert.ErrorContains(t, err, "previous_deployment_id")
}

// schemaValidator validates JSON bodies against the published schema.
func schemaValidator(t *testing.T) func([]byte) error {
	raw, err := os.ReadFile(filepath.Join("..", "..", "schema", "generic-event.schema.json"))
	require.NoError(t, err)
	var s jsonschema.Schema
	require.NoError(t, json.Unmarshal(raw, &s))
	resolved, err := s.Resolve(nil)
	require.NoError(t, err)
	return func(body []byte) error {
		var instance any
		require.NoError(t, json.Unmarshal(body, &instance))
		return resolved.Validate(instance)
	}
}
