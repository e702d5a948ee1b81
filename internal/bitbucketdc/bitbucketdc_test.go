package bitbucketdc

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitpush"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

const (
	secret    = "bitbucket-dc-secret"
	requestID = "0e1f24a3-5b7c-4d2e-9f00-6a1b2c3d4e5f"
)

var received = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func delivered(kind, id string, body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set(EventHeader, kind)
	if id != "" {
		h.Set(DeliveryHeader, id)
	}
	h.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, body))
	return &webhook.Request{Header: h, Body: body, Received: received}
}

func signed(kind string, body []byte) *webhook.Request { return delivered(kind, requestID, body) }

func provider(edit ...func(*Config)) *Provider {
	cfg := DefaultConfig()
	cfg.Secret = secret
	for _, e := range edit {
		e(&cfg)
	}
	return New(cfg)
}

func parse(t *testing.T, p *Provider, req *webhook.Request) webhook.Result {
	t.Helper()
	res, err := p.Parse(req)
	require.NoError(t, err)
	return res
}

func TestConfig(t *testing.T) {
	cfg := DefaultConfig()
	assert.Equal(t, "/webhooks/bitbucket-dc", cfg.Path)
	assert.ErrorContains(t, cfg.Validate(), "secret: required")
	cfg.Secret = secret
	assert.NoError(t, cfg.Validate())
	cfg.Path = "x"
	assert.ErrorContains(t, cfg.Validate(), `path: "x" must start with /`)
	cfg = DefaultConfig()
	cfg.Secret = secret
	cfg.MaxAge = -time.Second
	assert.ErrorContains(t, cfg.Validate(), "max_age: -1s is negative")
	cfg.MaxAge, cfg.Secret, cfg.InsecureSkipVerify = time.Hour, "", true
	assert.ErrorContains(t, cfg.Validate(), "max_age: needs secret")
}

// max_age refuses a captured delivery sent again later: its signed date is
// too old.
func TestMaxAge(t *testing.T) {
	p := provider(func(c *Config) { c.MaxAge = time.Hour })
	req := signed("pr:merged", webhooktest.Fixture(t, "pr-merged.json")) // date 2019-03-01, received 2030
	_, err := p.Parse(req)
	require.Error(t, err)
	assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
	assert.Contains(t, err.Error(), "delivery older than max_age: date 2019-03-01T09:37:14Z")

	req = signed("repo:refs_changed", webhooktest.Fixture(t, "refs-changed-commits.json"))
	req.Received = time.Date(2024, 11, 27, 1, 40, 0, 0, time.UTC) // 5 minutes after its date
	parse(t, p, req)
	req.Received = req.Received.Add(2 * time.Hour)
	_, err = p.Parse(req)
	assert.ErrorContains(t, err, "delivery older than max_age")
}

func TestVerify(t *testing.T) {
	p := provider()
	body := webhooktest.Fixture(t, "refs-changed-commits.json")
	req := signed("repo:refs_changed", body)
	req.Header.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256("wrong", body))
	_, err := p.Parse(req)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, webhook.StatusOf(err))
	req.Header.Del(SignatureHeader)
	_, err = p.Parse(req)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, webhook.StatusOf(err))

	res := parse(t, p, signed("diagnostics:ping", webhooktest.Fixture(t, "ping.json")))
	assert.Equal(t, "ping", res.Ignored)
}

// Bitbucket Data Center with the pushed commits in the payload (8.x and
// later): each commit at its committer time, linked to its parent.
func TestRefsChangedWithCommits(t *testing.T) {
	res := parse(t, provider(), signed("repo:refs_changed", webhooktest.Fixture(t, "refs-changed-commits.json")))
	assert.Zero(t, res.Approximate, "committer times are the commits' own")
	assert.Equal(t, []event.Event{{
		Kind: event.ChangeCommitted, Source: event.SourceBitbucketDC, ID: requestID + "/9fdd7b96d3f5c276d0b9e0bf38c879eb112d889a",
		Time: time.UnixMilli(1732671086000).UTC(), Repository: "AMUNIZ/test-repos",
		Revision: "9fdd7b96d3f5c276d0b9e0bf38c879eb112d889a", ParentRevision: "dda75d7e95568d3493a9d976a6702506bbf9b495",
	}}, res.Events)

	res = parse(t, provider(), signed("repo:refs_changed", webhooktest.Fixture(t, "refs-changed-v10.json")))
	require.Len(t, res.Events, 4)
	assert.Equal(t, "8d0fa145bde5151f1d103ab1c3dc1033e6ec4ac1", res.Events[0].Revision, "oldest first")
	assert.Empty(t, res.Events[0].ParentRevision)
	assert.Equal(t, "fb522a6f08c7c7df337312e4e65ec1b57710672e", res.Events[3].Revision)
	assert.Equal(t, "ae995d7a37069d0988462a9c92828971e8a42b5d", res.Events[3].ParentRevision)
	assert.Equal(t, time.Date(2018, 9, 21, 14, 9, 51, 0, time.UTC), res.Events[3].Time, "ISO committer timestamps too")
}

// Without a commit list (older versions), the new tip is recorded at the
// push's time, linked to the branch's previous tip.
func TestRefsChangedWithoutCommits(t *testing.T) {
	body := webhooktest.Patched(t, "refs-changed-commits.json", func(m map[string]any) { delete(m, "commits"); delete(m, "toCommit") })
	res := parse(t, provider(), signed("repo:refs_changed", body))
	assert.Equal(t, []event.Event{{
		Kind: event.ChangeCommitted, Source: event.SourceBitbucketDC, ID: requestID + "/9fdd7b96d3f5c276d0b9e0bf38c879eb112d889a",
		Time: time.Date(2024, 11, 27, 1, 34, 45, 0, time.UTC), Repository: "AMUNIZ/test-repos",
		Revision: "9fdd7b96d3f5c276d0b9e0bf38c879eb112d889a", ParentRevision: "a8c13e8850dc60300be720019d1ffc1aa2fded87",
	}}, res.Events)
	assert.Equal(t, 1, res.Approximate, "its time is the push's: counted apart")

	body = webhooktest.Patched(t, "refs-changed-commits.json", func(m map[string]any) {
		delete(m, "commits")
		delete(m, "date")
	})
	res = parse(t, provider(), signed("repo:refs_changed", body))
	require.Len(t, res.Events, 1)
	assert.Equal(t, received, res.Events[0].Time, "no date: the delivery's arrival")
}

func TestRefsChangedIgnoredAndMalformed(t *testing.T) {
	p := provider()
	// Atlassian's documented example: a branch deleted.
	res := parse(t, p, signed("repo:refs_changed", webhooktest.Fixture(t, "refs-changed-docs.json")))
	assert.Equal(t, "no branch created or updated (tags or deletions only)", res.Ignored)

	for want, body := range map[string][]byte{
		`missing required field "repository.project.key"`: webhooktest.Patched(t, "refs-changed-commits.json", func(m map[string]any) {
			obj(obj(m, "repository"), "project")["key"] = ""
		}),
		`"commits[0].id"`: webhooktest.Patched(t, "refs-changed-commits.json", func(m map[string]any) {
			m["commits"].([]any)[0].(map[string]any)["id"] = "9fdd7b9"
		}),
		`missing required field "commits[0].committerTimestamp"`: webhooktest.Patched(t, "refs-changed-commits.json", func(m map[string]any) {
			delete(m["commits"].([]any)[0].(map[string]any), "committerTimestamp")
		}),
		`field "date": "yesterday" is not an ISO 8601 time`: webhooktest.Patched(t, "refs-changed-commits.json", func(m map[string]any) {
			delete(m, "commits")
			m["date"] = "yesterday"
		}),
		`field "commits.committerTimestamp": expected int64`: []byte(`{"commits":[{"committerTimestamp":true}]}`),
		"malformed JSON": []byte(`{"changes":[`),
	} {
		_, err := p.Parse(signed("repo:refs_changed", body))
		require.Error(t, err, want)
		assert.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
		assert.Contains(t, err.Error(), want)
	}
}

// Atlassian's documented pr:merged example.
func TestPullRequestMerged(t *testing.T) {
	res := parse(t, provider(func(c *Config) { c.HotfixBranches = []string{"feature/*"} }), signed("pr:merged", webhooktest.Fixture(t, "pr-merged.json")))
	assert.Equal(t, []event.Event{{
		Kind: event.ChangeMerged, Source: event.SourceBitbucketDC, ID: requestID, Time: time.UnixMilli(1551433034286).UTC(),
		Repository: "~gopher/webhook-test", Revision: "cbf26be7bfc8394906abbd571498fb8d28888b58",
		ChangeID: "bitbucket_dc/~gopher/webhook-test/pull/5", Hotfix: true,
	}}, res.Events)

	_, err := provider().Parse(signed("pr:merged", webhooktest.Patched(t, "pr-merged.json", func(m map[string]any) {
		obj(obj(obj(m, "pullRequest"), "properties"), "mergeCommit")["id"] = "cbf26be7bfc"
	})))
	assert.ErrorContains(t, err, `"pullRequest.properties.mergeCommit.id"`)

	res = parse(t, provider(), signed("pr:declined", webhooktest.Fixture(t, "pr-merged.json")))
	assert.Equal(t, `Bitbucket Data Center event "pr:declined" is not used`, res.Ignored)
}

// A retry keeps X-Request-Id; without the header, the body's hash is the
// delivery id, and a retry sends the same body: the same event IDs.
func TestRedeliverySameIDs(t *testing.T) {
	p := provider()
	body := webhooktest.Fixture(t, "pr-merged.json")
	a := parse(t, p, delivered("pr:merged", "", body))
	b := parse(t, p, delivered("pr:merged", "", bytes.Clone(body)))
	assert.Equal(t, a.Events, b.Events)
	assert.True(t, strings.HasPrefix(a.Events[0].ID, "sha256:"))
}

func TestEventsOwnTheirData(t *testing.T) {
	webhooktest.CheckEventsOwnTheirData(t, provider(),
		signed("repo:refs_changed", webhooktest.Fixture(t, "refs-changed-v10.json")),
		delivered("repo:refs_changed", "", webhooktest.Fixture(t, "refs-changed-commits.json")),
		signed("pr:merged", webhooktest.Fixture(t, "pr-merged.json")),
	)
}

func FuzzParse(f *testing.F) {
	for name, kind := range map[string]string{
		"refs-changed-commits.json": "repo:refs_changed",
		"refs-changed-v10.json":     "repo:refs_changed",
		"refs-changed-docs.json":    "repo:refs_changed",
		"pr-merged.json":            "pr:merged",
		"ping.json":                 "diagnostics:ping",
	} {
		f.Add(kind, webhooktest.Fixture(f, name))
	}
	p := provider()
	f.Fuzz(func(t *testing.T, kind string, body []byte) {
		res, err := p.Parse(delivered(kind, requestID, body))
		if err != nil {
			require.Error(t, err, "every parse error carries an HTTP status")
			require.Equal(t, http.StatusBadRequest, webhook.StatusOf(err))
			return
		}
		if len(res.Events) == 0 {
			require.NotEmpty(t, res.Ignored, "an empty result says why")
		}
		for _, ev := range res.Events {
			require.True(t, ev.Kind.Valid())
			require.Equal(t, event.SourceBitbucketDC, ev.Source)
			require.NotEmpty(t, ev.ID)
			require.False(t, ev.Time.IsZero())
			require.NotEmpty(t, ev.Repository)
			require.True(t, gitpush.IsSHA(ev.Revision) && ev.Revision == strings.ToLower(ev.Revision))
		}
	})
}

func benchRequest(b *testing.B) (http.Header, []byte) {
	body := webhooktest.Fixture(b, "refs-changed-v10.json")
	return signed("repo:refs_changed", body).Header, body
}

func BenchmarkBitbucketDCPushParseVerify(b *testing.B) {
	h, body := benchRequest(b)
	p := provider()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		read, _ := io.ReadAll(bytes.NewReader(body))
		res, err := p.Parse(&webhook.Request{Header: h, Body: read, Received: received})
		if err != nil || len(res.Events) == 0 {
			b.Fatal(err, res)
		}
	}
}

func BenchmarkBitbucketDCPushFloor(b *testing.B) {
	h, body := benchRequest(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		read, _ := io.ReadAll(bytes.NewReader(body))
		sig, _ := strings.CutPrefix(h.Get(SignatureHeader), "sha256=")
		if !webhook.ValidHMACSHA256(secret, read, sig) {
			b.Fatal("signature")
		}
	}
}
