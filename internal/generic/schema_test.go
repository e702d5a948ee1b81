package generic

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

// The published schema and the parser agree: every fixture the parser
// accepts validates, and payloads the parser refuses do not.
func TestSchemaMatchesParser(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "schema", "generic-event.schema.json"))
	require.NoError(t, err)
	var s jsonschema.Schema
	require.NoError(t, json.Unmarshal(raw, &s))
	resolved, err := s.Resolve(nil)
	require.NoError(t, err)

	validate := func(body []byte) error {
		var instance any
		require.NoError(t, json.Unmarshal(body, &instance))
		return resolved.Validate(instance)
	}
	for _, name := range []string{"deployment.json", "batch.json", "review.json"} {
		assert.NoError(t, validate(webhooktest.Fixture(t, name)), name)
	}
	for _, bad := range []string{
		`{"type":"deployment","id":"x","time":"2026-11-02T10:00:00Z"}`,
		`{"type":"release","id":"x","time":"2026-11-02T10:00:00Z"}`,
		`{"type":"change","id":"x","time":"2026-11-02T10:00:00Z"}`,
		`{"type":"merge","id":"x","time":"2026-11-02T10:00:00Z","change_id":"c"}`,
		`{"type":"pr_opened","id":"x","time":"2026-11-02T10:00:00Z"}`,
		`{"type":"incident","id":"x","time":"2026-11-02T10:00:00Z","service":"api","incident_id":"i","state":"open"}`,
		`{"type":"deployment","id":"x","time":"2026-11-02T10:00:00Z","service":"api","environment":"p","status":"success"}`,
	} {
		assert.Error(t, validate([]byte(bad)), bad)
		_, perr := provider().Parse(signed([]byte(bad)))
		assert.Error(t, perr, "the parser refuses it too: %s", bad)
	}
}
