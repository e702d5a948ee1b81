package jsonscan_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan/jsonscantest"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// sameValidation fails unless scanning body refuses it as DecodeJSON does
// (the same outcome for the sender: status and class, jsonscantest.Outcome;
// the standard library's wording and offsets are its own and change with
// its version) or accepts it as DecodeJSON does.
func sameValidation(t *testing.T, body []byte) {
	t.Helper()
	var v json.RawMessage // validated, not decoded: no type errors
	want := webhook.DecodeJSON(body, &v)
	var s jsonscan.Scanner
	s.Reset(body)
	s.Skip()
	got := s.Err()
	if want == nil {
		require.NoError(t, got, "body %q", body)
		return
	}
	require.Error(t, got, "DecodeJSON refused %q: %v", body, want)
	require.Equal(t, jsonscantest.Outcome(want), jsonscantest.Outcome(got), "body %q: %v / %v", body, want, got)
}

func TestJSONScannerValidatesAsDecodeJSON(t *testing.T) {
	long := strings.Repeat("abcdefgh", 9)
	for _, body := range []string{
		``, " \n\t", `{}`, `[]`, `null`, `true`, `false`, `0`, `-0.5e+10`, `"` + long + `"`, `{"a":"` + long + `\"` + long + `"}`,
		`{`, `}`, `[`, `]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a":1 "b":2}`, `{1:2}`, `{"a":1}}`, `{} {}`,
		`tru`, `trux`, `nul`, `fals`, `-`, `-x`, `1.`, `1.x`, `1e`, `1e+`, `1ex`, `01`, `1.5.5`, `+1`, `.5`,
		`"abc`, `"a\`, `"a\x"`, `"\u12"`, `"\u12g4"`, `"\uD83D\uDE00"`, "\"a\x01b\"", "\"" + long + "\x1f\"", "\"" + long + "\\",
		"\"\xff\xfe\"", "{\"k\xff\":1}", `{"a\u0062":1}`, "\xef\xbb\xbf{}",
		strings.Repeat("[", jsonscan.MaxDepth) + strings.Repeat("]", jsonscan.MaxDepth),
		strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1),
		`{"a":x` + strings.Repeat("[", 100),
		`{"a":"` + strings.Repeat("[", 100) + `"}`,
	} {
		sameValidation(t, []byte(body))
	}
}

func TestJSONScannerFields(t *testing.T) {
	var s jsonscan.Scanner
	s.Reset([]byte(`{"Name":"a\u00e9","n":-12,"b":true,"skip":{"x":[1,{"y":null}]},"list":["p",null,"q"],"obj":null,"nul":null}`))
	var name string
	var n int64
	var b, objSeen bool
	var list []string
	require.True(t, s.Object(""))
	for s.NextKey() {
		switch {
		case s.KeyIs("name"):
			name = s.String("name")
		case s.KeyIs("n"):
			n = s.Int64("n")
		case s.KeyIs("b"):
			b = s.Bool("b")
		case s.KeyIs("list"):
			if s.Array("list") {
				for s.NextElem() {
					list = append(list, s.String("list"))
				}
			}
		case s.KeyIs("obj"):
			objSeen = s.Object("obj")
		case s.KeyIs("nul"):
			assert.True(t, s.Null())
		default:
			s.Skip()
		}
	}
	require.NoError(t, s.Err())
	assert.Equal(t, "aé", name)
	assert.Equal(t, int64(-12), n)
	assert.True(t, b)
	assert.False(t, objSeen, "null is an absent object")
	assert.Equal(t, []string{"p", "", "q"}, list)

	for body, want := range map[string]string{
		`{"n":"7"}`:       `field "n": expected int64, got JSON string`,
		`{"n":1.5}`:       `field "n": expected int64, got JSON number 1.5`,
		`{"n":1e30}`:      `field "n": expected int64, got JSON number 1e30`,
		`{"b":"yes"}`:     `field "b": expected bool, got JSON string`,
		`{"name":[]}`:     `field "name": expected string, got JSON array`,
		`{"list":{}}`:     `field "list": expected array, got JSON object`,
		`{"n":"7","n":x}`: `malformed JSON at byte 14: invalid character 'x' looking for beginning of value`,
	} {
		s.Reset([]byte(body))
		if s.Object("") {
			for s.NextKey() {
				switch {
				case s.KeyIs("n"):
					s.Int64("n")
				case s.KeyIs("b"):
					s.Bool("b")
				case s.KeyIs("name"):
					s.String("name")
				case s.KeyIs("list"):
					if s.Array("list") {
						for s.NextElem() {
							s.Skip()
						}
					}
				default:
					s.Skip()
				}
			}
		}
		err := s.Err()
		require.Error(t, err, body)
		assert.Equal(t, want, err.Error(), body)
	}
}

func FuzzJSONScannerValidatesAsDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"a":[1,"x\u00e9",{"b":null}],"c":-1.5e3,"d":true}`))
	f.Add([]byte(`{"a":"` + strings.Repeat("abcdefgh", 4) + `\n"}`))
	f.Add([]byte(strings.Repeat("[", jsonscan.MaxDepth+1)))
	f.Fuzz(func(t *testing.T, body []byte) { sameValidation(t, body) })
}

func TestJSONScannerKeysMatchAsEncodingJSON(t *testing.T) {
	type fields struct {
		Sha  string `json:"sha"`
		Kind string `json:"object_kind"`
	}
	for _, key := range []string{"sha", "SHA", "Sha", "\u017fha", "\u017fHA", "object_\u212aind", "object_kind", "objectkind", "sha ", "sh", "shaa", "s\u00e4"} {
		body := []byte(`{"` + key + `":"v"}`)
		var want fields
		require.NoError(t, json.Unmarshal(body, &want))
		var got fields
		var s jsonscan.Scanner
		s.Reset(body)
		require.True(t, s.Object(""))
		for s.NextKey() {
			switch {
			case s.KeyIs("sha"):
				got.Sha = s.String("sha")
			case s.KeyIs("object_kind"):
				got.Kind = s.String("object_kind")
			default:
				s.Skip()
			}
		}
		require.NoError(t, s.Err())
		assert.Equal(t, want, got, "key %q", key)
	}
}

// TestAppendString: the value AppendString unescapes onto its buffer is
// what encoding/json decodes, whatever the escapes.
func TestAppendString(t *testing.T) {
	values := []string{
		`"plain"`, `""`, `"Revert \"x\"\n\nThis reverts commit abc.\n"`, `"tab\there\r\b\f\/\\"`,
		`"\u0054his \u00e9 \ud83d\ude00 \ud800"`, "\"caf\xc3\xa9\"", "\"bad \xff utf-8\"", "\"bad \xff and\\n escape\"",
	}
	var buf []byte
	for _, raw := range values {
		var want string
		require.NoError(t, json.Unmarshal([]byte(raw), &want), raw)
		var s jsonscan.Scanner
		s.Reset([]byte(raw))
		out, v, ok := s.AppendString(buf, "f")
		require.True(t, ok, raw)
		require.NoError(t, s.Err())
		assert.Equal(t, want, string(v), raw)
		buf = out
	}
	var s jsonscan.Scanner
	s.Reset([]byte(`7`))
	_, _, ok := s.AppendString(nil, "f")
	assert.False(t, ok)
	assert.ErrorContains(t, s.Err(), `field "f": expected string, got JSON number`)
}
