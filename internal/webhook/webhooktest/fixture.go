package webhooktest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Fixture reads testdata/name of the package under test: a payload
// recorded from the provider's own examples.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// Patched returns the fixture with edit applied to its decoded JSON object,
// for the variants of a recorded payload that a test needs.
func Patched(t testing.TB, name string, edit func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(Fixture(t, name), &m))
	edit(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}
