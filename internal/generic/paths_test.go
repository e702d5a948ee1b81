package generic

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A change may list the files its commit touched (monorepos); the schema
// accepts the field and the parser passes it on.
func TestChangeCarriesPaths(t *testing.T) {
	body := []byte(`{"type":"change","id":"c-1","time":"2026-11-02T10:00:00Z","repository":"acme/mono",
		"revision":"AAAAAAA","parent_revision":"bbbbbbb","paths":["services/api/main.go","libs/log/log.go"]}`)
	res, err := provider().Parse(signed(body))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, []string{"services/api/main.go", "libs/log/log.go"}, res.Events[0].Paths)

	without, err := provider().Parse(signed([]byte(`{"type":"change","id":"c-2","time":"2026-11-02T10:00:00Z","revision":"aaaaaaa"}`)))
	require.NoError(t, err)
	assert.Nil(t, without.Events[0].Paths, "no paths: unknown")

	raw, err := os.ReadFile(filepath.Join("..", "..", "schema", "generic-event.schema.json"))
	require.NoError(t, err)
	var s jsonschema.Schema
	require.NoError(t, json.Unmarshal(raw, &s))
	resolved, err := s.Resolve(nil)
	require.NoError(t, err)
	var instance any
	require.NoError(t, json.Unmarshal(body, &instance))
	assert.NoError(t, resolved.Validate(instance))

	bad := []byte(`{"type":"change","id":"c-3","time":"2026-11-02T10:00:00Z","revision":"aaaaaaa","paths":"services/api/main.go"}`)
	require.NoError(t, json.Unmarshal(bad, &instance))
	assert.Error(t, resolved.Validate(instance), "paths is a list")
	_, err = provider().Parse(signed(bad))
	assert.ErrorContains(t, err, `"paths"`, "the parser refuses it too, naming the field")
}
