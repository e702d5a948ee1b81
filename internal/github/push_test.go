package github

// The push decoder (push.go) must decode exactly what encoding/json decoded
// before it: this file keeps that earlier decoder as the reference and
// compares the two on the fixtures, the malformed table and fuzzed bodies.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/jsonscan/jsonscantest"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

type referencePushPayload struct {
	Ref     string `json:"ref"`
	Before  string `json:"before"`
	After   string `json:"after"`
	Deleted bool   `json:"deleted"`
	Commits []struct {
		ID        string `json:"id"`
		Timestamp string `json:"timestamp"`
		Message   string `json:"message"`
		// The files the commit touched, for monorepo path filters.
		Added    []string `json:"added"`
		Removed  []string `json:"removed"`
		Modified []string `json:"modified"`
	} `json:"commits"`
	Repository repository `json:"repository"`
}

// push yields one ChangeCommitted per pushed commit, oldest first, each
// linked to the one before it; the first is linked to the push's before.
func referencePush(p *Provider, d delivery) (webhook.Result, error) {
	var pl referencePushPayload
	if err := webhook.DecodeJSON(d.body, &pl); err != nil {
		return webhook.Result{}, err
	}
	switch {
	case strings.HasPrefix(pl.Ref, "refs/tags/"):
		return webhook.Result{Ignored: "push of a tag (" + pl.Ref + ")"}, nil
	case !strings.HasPrefix(pl.Ref, "refs/heads/"):
		if pl.Ref == "" {
			return webhook.Result{}, webhook.Required("ref", pl.Ref)
		}
		return webhook.Result{Ignored: "push to " + pl.Ref + ", which is not a branch"}, nil
	case pl.Deleted:
		return webhook.Result{Ignored: "branch " + pl.Ref + " deleted"}, nil
	case len(pl.Commits) == 0:
		return webhook.Result{Ignored: "push without new commits"}, nil
	}
	repo, err := pl.Repository.name()
	if err != nil {
		return webhook.Result{}, err
	}
	parent := ""
	if pl.Before != "" && !gitpush.IsZeroSHA(pl.Before) {
		if parent, err = gitpush.CommitSHA("before", pl.Before); err != nil {
			return webhook.Result{}, err
		}
	}
	res := webhook.Result{Events: make([]event.Event, 0, len(pl.Commits))}
	for i, c := range pl.Commits {
		rev, err := gitpush.CommitSHA(fmt.Sprintf("commits[%d].id", i), c.ID)
		if err != nil {
			return webhook.Result{}, err
		}
		at, err := parseTime(fmt.Sprintf("commits[%d].timestamp", i), c.Timestamp)
		if err != nil {
			return webhook.Result{}, err
		}
		ev := event.Event{
			Kind:           event.ChangeCommitted,
			Source:         event.SourceGitHub,
			ID:             d.id + "/" + rev,
			Time:           at,
			Repository:     repo,
			Revision:       rev,
			ParentRevision: parent,
			Paths:          gitpush.CommitPaths(maxPushFiles, c.Added, c.Removed, c.Modified),
		}
		if c.Message != "" {
			ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted([]byte(c.Message)), '#', changeID)
		}
		res.Events = append(res.Events, ev)
		parent = rev
	}
	return res, nil
}

// samePush fails unless the push decoder and the reference agree on body:
// the same events, or refusals with the same outcome for the sender (status
// and class, jsonscantest.Outcome: encoding/json's wording and offsets
// change with its version).
func samePush(t *testing.T, body []byte) {
	t.Helper()
	d := delivery{id: guid, body: body}
	p := provider()
	want, wantErr := referencePush(p, d)
	got, gotErr := p.push(d)
	if wantErr != nil || gotErr != nil {
		require.Error(t, gotErr, "the reference refused %q: %v", body, wantErr)
		require.Error(t, wantErr, "the reference accepted %q", body)
		require.Equal(t, jsonscantest.Outcome(wantErr), jsonscantest.Outcome(gotErr), "body %q", body)
		return
	}
	require.Equal(t, want, got, "body %q", body)
}

func TestPushMatchesEncodingJSON(t *testing.T) {
	sha := "14091a9f2461267ee7e02525b4f1f2923f1c9849"
	upper := strings.ToUpper(sha)
	bodies := []string{
		string(fixture(t, "push.json")),
		`{`, ``, ` `, `null`, `[]`, `"x"`, `{} x`, `{"ref":}`, `{"ref" "x"}`, `{"ref":"x",}`, `{"ref":"x" "y":1}`,
		`{"a":[1,]}`, `{"a":[1 2]}`, `{"a":tru}`, `{"a":nul}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":01}`, `{"a":"\x"}`, `{"a":"\u12g4"}`,
		"{\"a\":\"\x01\"}", `{"a":"`, `{"a":"\`, `{"a":1`, `{"a":[`, `{"a":{`, `{"a":{"b":[]}}}`,
		strings.Repeat("[", 65) + strings.Repeat("]", 65),
		`{"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`,
		`{"x":` + strings.Repeat("[", 80) + `}`,
		`{"ref":"refs/heads/main","commits":"many"}`,
		`{"ref":5,"commits":[{"id":7}]}`,
		`{"ref":"refs/heads/main","deleted":"yes"}`,
		`{"ref":"refs/heads/main","deleted":true,"deleted":false,"repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}]}`,
		`{"ref":"refs/heads/main","deleted":true,"deleted":null,"repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}]}`,
		`{"REF":"refs/heads/main","Repository":{"FULL_NAME":"a/b"},"commits":[{"ID":"` + upper + `","TimeStamp":"2026-11-02T09:00:00+02:00","Added":["a","a",null,""],"modified":["b"]}]}`,
		`{"ref":"refs/heads/\u006dain","repository":{"full_name":"a\/b\u00e9"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","added":["caf\u00e9.go","\ud83d\ude00"]}]}`,
		"{\"ref\":\"refs/heads/m\xffin\",\"repository\":{\"full_name\":\"a/\xfe\"},\"commits\":[{\"id\":\"" + sha + "\",\"timestamp\":\"2026-11-02T09:00:00Z\",\"added\":[\"\xff\"]}]}",
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","added":["x"]}],"commits":[{"timestamp":"2026-11-03T09:00:00Z"},{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}]}`,
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}],"commits":null}`,
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[null,{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}]}`,
		`{"ref":"refs/heads/main","repository":null,"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}]}`,
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"before":"` + upper + `","commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","added":[1]}]}`,
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","removed":{}}],"x":[}`,
		`{"ref":"refs/tags/v1"}`, `{"ref":"refs/pull/1"}`, `{"ref":"refs/heads/x","commits":[]}`,
		// Commit messages, read for revert_patterns.
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","message":"Revert \"x\"\n\nThis reverts commit ` + upper + `.\n"}]}`,
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","message":"\u0054his reverts commit ` + sha + `"}]}`,
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","Message":"Revert \"x\"\n\nReverts a/b#12"}]}`,
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","message":"This reverts commit ` + sha + `"}],"commits":[{"message":null,"id":"` + sha + `"}]}`,
		`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","message":7}]}`,
		"{\"ref\":\"refs/heads/main\",\"repository\":{\"full_name\":\"a/b\"},\"commits\":[{\"id\":\"" + sha + "\",\"timestamp\":\"2026-11-02T09:00:00Z\",\"message\":\"\xffThis reverts commit " + sha + "\"}]}",
		`{"ref":"refs/heads/main","total":1e400,"repository":{"full_name":"a/b"},"commits":[{"id":"` + sha + `","timestamp":"0001-01-01T00:00:00Z"}]}`,
	}
	for _, body := range bodies {
		samePush(t, []byte(body))
	}
}

func FuzzPushMatchesEncodingJSON(f *testing.F) {
	f.Add(fixture(f, "push.json"))
	f.Add([]byte(`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"14091a9f2461267ee7e02525b4f1f2923f1c9849","timestamp":"2026-11-02T09:00:00Z","added":["a"],"removed":null,"modified":["a","b"]}]}`))
	f.Add([]byte(`{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":[{"id":"14091a9f2461267ee7e02525b4f1f2923f1c9849","timestamp":"2026-11-02T09:00:00Z","message":"Revert \"x\"\n\nThis reverts commit 51de2b835bd35a67eb32dbcd3d77d4b96e5aa39d.\n"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		samePush(t, body)
	})
}

var _ = event.ChangeCommitted
var _ = webhook.Result{}
var _ = json.Valid

// TestEventsOwnTheirData: the events of a delivery do not point into its
// body or the pooled push scratch space (commit ids, messages, paths).
func TestEventsOwnTheirData(t *testing.T) {
	p := provider()
	var reqs []*webhook.Request
	for i, name := range []string{"push.json", "pull_request_merged.json", "push.json", "deployment_status.json", "push.json"} {
		body := fixture(t, name)
		kind := map[string]string{"push.json": "push", "pull_request_merged.json": "pull_request", "deployment_status.json": "deployment_status"}[name]
		reqs = append(reqs, delivered(kind, fmt.Sprintf("%s-%d", guid, i), body))
	}
	webhooktest.CheckEventsOwnTheirData(t, p, reqs...)
}
