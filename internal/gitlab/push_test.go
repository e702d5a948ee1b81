package gitlab

// The push path (push.go) must decode exactly what encoding/json decoded
// before it, the envelope and then the push: this file keeps that earlier
// decoder as the reference and compares the two on the fixtures, the
// malformed table and fuzzed bodies.

import (
	"fmt"
	"slices"
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
	Commits []struct {
		ID        string `json:"id"`
		Timestamp string `json:"timestamp"`
		Message   string `json:"message"`
		// The files the commit touched, for monorepo path filters.
		Added    []string `json:"added"`
		Removed  []string `json:"removed"`
		Modified []string `json:"modified"`
	} `json:"commits"`
	TotalCommitsCount int     `json:"total_commits_count"`
	Project           project `json:"project"`
}

// push yields one ChangeCommitted per listed commit, oldest first, each
// linked to the one before it. GitLab lists at most the newest 20 commits
// of a push (total_commits_count has the real number): when it left some
// out, the oldest listed commit's parent is not known, so it is left empty
// rather than linked to the push's before.
func referencePush(p *Provider, body []byte) (webhook.Result, error) {
	var pl referencePushPayload
	if err := webhook.DecodeJSON(body, &pl); err != nil {
		return webhook.Result{}, err
	}
	switch {
	case pl.Ref == "":
		return webhook.Result{}, webhook.Required("ref", pl.Ref)
	case !strings.HasPrefix(pl.Ref, "refs/heads/"):
		return webhook.Result{Ignored: "push to " + pl.Ref + ", which is not a branch"}, nil
	case gitpush.IsZeroSHA(pl.After):
		return webhook.Result{Ignored: "branch " + pl.Ref + " deleted"}, nil
	case len(pl.Commits) == 0:
		return webhook.Result{Ignored: "push without new commits"}, nil
	}
	repo, err := pl.Project.name()
	if err != nil {
		return webhook.Result{}, err
	}
	after, err := gitpush.CommitSHA("after", pl.After)
	if err != nil {
		return webhook.Result{}, err
	}
	before := ""
	if pl.Before != "" && !gitpush.IsZeroSHA(pl.Before) {
		if before, err = gitpush.CommitSHA("before", pl.Before); err != nil {
			return webhook.Result{}, err
		}
	}
	parent := before
	if pl.TotalCommitsCount > len(pl.Commits) {
		parent = ""
	}
	// One push is identified by its project and before..after; each of its
	// commits by the push and the commit.
	pushKey := fmt.Sprintf("gitlab/%s/push/%s..%s/", repo, before, after)
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
			Source:         event.SourceGitLab,
			ID:             pushKey + rev,
			Time:           at,
			Repository:     repo,
			Revision:       rev,
			ParentRevision: parent,
			Paths:          gitpush.CommitPaths(0, c.Added, c.Removed, c.Modified),
		}
		if c.Message != "" {
			ev.Reverts, ev.RevertsChange = gitpush.RevertTarget(repo, p.signals.Reverted([]byte(c.Message)), '!', changeID)
		}
		res.Events = append(res.Events, ev)
		parent = rev
	}
	return res, nil
}

// referenceParse is Parse as it was for the hooks that may carry a push.
func referenceParse(p *Provider, hook string, body []byte) (webhook.Result, error) {
	kinds := hooks[hook]
	var env envelope
	if err := webhook.DecodeJSON(body, &env); err != nil {
		return webhook.Result{}, err
	}
	if !slices.Contains(kinds, env.ObjectKind) {
		if hook == "System Hook" {
			return webhook.Result{Ignored: fmt.Sprintf("system hook event %q is not used", env.ObjectKind)}, nil
		}
		return webhook.Result{}, webhook.BadRequest("field \"object_kind\": %q does not match %s %q (want %s)", env.ObjectKind, EventHeader, hook, strings.Join(kinds, " or "))
	}
	switch env.ObjectKind {
	case "push":
		return referencePush(p, body)
	case "tag_push":
		return webhook.Result{Ignored: "tag push"}, nil
	default:
		return p.mergeRequest(body)
	}
}

// samePush fails unless Parse and the reference agree on body: the same
// events, or refusals with the same outcome for the sender (status and
// class, jsonscantest.Outcome: encoding/json's wording and offsets change
// with its version).
func samePush(t *testing.T, hook string, body []byte) {
	t.Helper()
	p := provider(withRefs("main"))
	want, wantErr := referenceParse(p, hook, body)
	got, gotErr := p.Parse(hooked(hook, body))
	if wantErr != nil || gotErr != nil {
		require.Error(t, gotErr, "the reference refused %s %q: %v", hook, body, wantErr)
		require.Error(t, wantErr, "the reference accepted %s %q", hook, body)
		require.Equal(t, jsonscantest.Outcome(wantErr), jsonscantest.Outcome(gotErr), "%s %q: %v / %v", hook, body, wantErr, gotErr)
		return
	}
	require.Equal(t, want, got, "%s %q", hook, body)
}

func TestPushMatchesEncodingJSON(t *testing.T) {
	sha := mergeSHA
	upper := strings.ToUpper(sha)
	proj := `"project":{"path_with_namespace":"a/b"}`
	commit := `{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z"}`
	bodies := []string{
		string(fixture(t, "push.json")), string(fixture(t, "merge_request_merged.json")),
		`{`, ``, `null`, `[]`, `{"object_kind":5}`, `{"object_kind":null}`, `{"object_kind":"push","object_kind":5}`, `{"object_kind":"tag_push","commits":"many"}`,
		`{"object_kind":"push","commits":"many"}`, `{"object_kind":"merge_request","commits":"many"}`, `{"object_kind":"pipeline"}`,
		`{"object_kind":"push"}`, `{"object_kind":"push","ref":"refs/tags/v1"}`, `{"object_kind":"push","ref":"refs/heads/main","total_commits_count":"2"}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `","commits":[` + commit + `]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"0000000000000000000000000000000000000000",` + proj + `,"commits":[` + commit + `]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + upper + `","before":"` + upper + `",` + proj + `,"commits":[{"id":"` + upper + `","timestamp":"2026-11-02 09:00:00 UTC","added":["a"],"modified":["a","b"]}]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"total_commits_count":3,"total_commits_count":null,"commits":[` + commit + `,{"id":"` + sha + `","timestamp":"2026-11-02T10:00:00+01:00"}]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[{"id":"` + sha + `","timestamp":"noon"}]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[{"id":"` + sha + `","timestamp":"0001-01-01T00:00:00Z"}]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[{"id":"xyz","timestamp":"2026-11-02T09:00:00Z"}]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[` + commit + `],"x":[}`,
		`{"Object_Kind":"push","REF":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[` + commit + `]}`,
		// Commit messages, read for revert_patterns.
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","message":"Revert \"x\"\n\nThis reverts commit ` + upper + `"}]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","message":"Revert \"x\"\n\nThis reverts merge request !57"}]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","MESSAGE":"This reverts merge request acme/other!9"},{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","message":null}]}`,
		`{"object_kind":"push","ref":"refs/heads/main","after":"` + sha + `",` + proj + `,"commits":[{"id":"` + sha + `","timestamp":"2026-11-02T09:00:00Z","message":["x"]}]}`,
	}
	for _, hook := range []string{"Push Hook", "System Hook"} {
		for _, body := range bodies {
			samePush(t, hook, []byte(body))
		}
	}
}

func FuzzPushMatchesEncodingJSON(f *testing.F) {
	f.Add("Push Hook", fixture(f, "push.json"))
	f.Add("System Hook", fixture(f, "push.json"))
	f.Add("System Hook", fixture(f, "merge_request_merged.json"))
	f.Add("Push Hook", []byte(`{"object_kind":"push","ref":"refs/heads/main","after":"9d6fcbe347704e55e8adb18ed54e7ed7a3aa5204","project":{"path_with_namespace":"a/b"},"commits":[{"id":"9d6fcbe347704e55e8adb18ed54e7ed7a3aa5204","timestamp":"2026-11-02T09:00:00Z","message":"Revert \"x\"\n\nThis reverts merge request !57"}]}`))
	f.Fuzz(func(t *testing.T, hook string, body []byte) {
		if hook != "Push Hook" && hook != "System Hook" {
			return
		}
		samePush(t, hook, body)
	})
}

var _ = event.ChangeCommitted

// BenchmarkPushParse: authenticate and parse a GitLab push
// (testdata/push.json), as the handler hands it over.
func BenchmarkPushParse(b *testing.B) {
	body := fixture(b, "push.json")
	req := hooked("Push Hook", body)
	p := provider(withRefs("main"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := p.Parse(req)
		if err != nil || len(res.Events) == 0 {
			b.Fatal(err, res)
		}
	}
}

// TestEventsOwnTheirData: the events of a delivery do not point into its
// body or the pooled push scratch space (commit ids, messages, paths).
func TestEventsOwnTheirData(t *testing.T) {
	p := provider(withRefs("main"))
	var reqs []*webhook.Request
	for _, x := range []struct{ hook, name string }{
		{"Push Hook", "push.json"}, {"Merge Request Hook", "merge_request_merged.json"},
		{"Push Hook", "push.json"}, {"Pipeline Hook", "pipeline.json"}, {"Push Hook", "push.json"},
	} {
		reqs = append(reqs, hooked(x.hook, fixture(t, x.name)))
	}
	webhooktest.CheckEventsOwnTheirData(t, p, reqs...)
}
