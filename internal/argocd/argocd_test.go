package argocd

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const token = "s3cr3t-t0ken"

func fixture(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func authorized(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "Bearer "+token)
	return &webhook.Request{Header: h, Body: body, Received: time.Date(2026, 11, 2, 23, 0, 0, 0, time.UTC)}
}

func provider() *Provider {
	cfg := DefaultConfig()
	cfg.Token = token
	return New(cfg)
}

func parseOne(t *testing.T, name string) event.Event {
	t.Helper()
	res, err := provider().Parse(authorized(fixture(t, name)))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	return res.Events[0]
}

// templateBody extracts the webhook body of template.<name> from the
// ConfigMap in testdata: the literal block of "body: |" inside the literal
// block of "template.<name>: |".
func templateBody(t *testing.T, name string) string {
	t.Helper()
	tmpl := literalBlock(t, string(fixture(t, "argocd-notifications-cm.yaml")), "template."+name+":")
	return literalBlock(t, tmpl, "body:")
}

// literalBlock returns the dedented lines of the YAML literal block scalar
// that follows the line whose trimmed text starts with key.
func literalBlock(t *testing.T, doc, key string) string {
	t.Helper()
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), key) || !strings.HasSuffix(strings.TrimSpace(l), "|") {
			continue
		}
		keyIndent := len(l) - len(strings.TrimLeft(l, " "))
		var block []string
		indent := -1
		for _, b := range lines[i+1:] {
			if strings.TrimSpace(b) == "" {
				block = append(block, "")
				continue
			}
			ind := len(b) - len(strings.TrimLeft(b, " "))
			if ind <= keyIndent {
				break
			}
			if indent < 0 {
				indent = ind
			}
			block = append(block, b[min(indent, ind):])
		}
		return strings.TrimRight(strings.Join(block, "\n"), "\n") + "\n"
	}
	t.Fatalf("no literal block %q", key)
	return ""
}

// render executes a template body as argocd-notifications does: Go
// text/template over the Application as unstructured JSON, with Sprig's
// toJson.
func render(t *testing.T, templateName, appFile string) []byte {
	t.Helper()
	var app map[string]any
	require.NoError(t, json.Unmarshal(fixture(t, appFile), &app))
	return renderApp(t, templateName, app)
}

func renderApp(t *testing.T, templateName string, app map[string]any) []byte {
	t.Helper()
	funcs := template.FuncMap{"toJson": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}}
	tmpl, err := template.New(templateName).Funcs(funcs).Parse(templateBody(t, templateName))
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, tmpl.Execute(&out, map[string]any{"app": app, "context": map[string]string{}}))
	return out.Bytes()
}

// TestTemplatesRenderFixtures renders the documented templates over real
// Application objects: the fixtures are exactly what Argo CD posts.
// UPDATE_FIXTURES=1 rewrites them.
func TestTemplatesRenderFixtures(t *testing.T) {
	cases := []struct{ template, app, fixture string }{
		{"app-sync-succeeded-dora", "application-synced.json", "sync-succeeded.json"},
		{"app-sync-failed-dora", "application-sync-failed.json", "sync-failed.json"},
		{"app-health-degraded-dora", "application-degraded.json", "health-degraded.json"},
		{"app-sync-succeeded-dora", "application-helm.json", "sync-succeeded-helm.json"},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			got := render(t, c.template, c.app)
			require.True(t, json.Valid(got), "rendered body is not JSON:\n%s", got)
			if os.Getenv("UPDATE_FIXTURES") != "" {
				require.NoError(t, os.WriteFile(filepath.Join("testdata", c.fixture), got, 0o644))
			}
			assert.Equal(t, string(fixture(t, c.fixture)), string(got))
		})
	}
	// The three templates differ only in their event.
	succeeded := templateBody(t, "app-sync-succeeded-dora")
	for name, ev := range map[string]string{"app-sync-failed-dora": EventSyncFailed, "app-health-degraded-dora": EventHealthDegraded} {
		assert.Equal(t, strings.Replace(succeeded, EventSyncSucceeded, ev, 1), templateBody(t, name))
	}
}

// TestTemplatesTolerateAbsentFields renders a sync that failed before it
// had a result, of a multi-source application without labels: absent
// fields render as null or fall back, and never break the template.
func TestTemplatesTolerateAbsentFields(t *testing.T) {
	var app map[string]any
	require.NoError(t, json.Unmarshal(fixture(t, "application-sync-failed.json"), &app))
	meta := app["metadata"].(map[string]any)
	delete(meta, "labels")
	spec := app["spec"].(map[string]any)
	spec["sources"] = []any{spec["source"]}
	delete(spec, "source")
	delete(spec["destination"].(map[string]any), "namespace")
	op := app["status"].(map[string]any)["operationState"].(map[string]any)
	delete(op, "syncResult")
	delete(op, "message")

	body := renderApp(t, "app-sync-failed-dora", app)
	require.True(t, json.Valid(body), "%s", body)
	var pl map[string]any
	require.NoError(t, json.Unmarshal(body, &pl))
	assert.Nil(t, pl["repo"])
	assert.Nil(t, pl["environment"])
	assert.Nil(t, pl["namespace"])
	assert.Nil(t, pl["message"])
	assert.Equal(t, "1c5e7d2a4b6f8091a3c5e7f9b1d3f5a7c9e1b3d5", pl["revision"], "falls back to status.sync.revision")

	res, err := provider().Parse(authorized(body))
	require.NoError(t, err)
	ev := res.Events[0]
	assert.Equal(t, event.Service{Name: "api", Environment: "production"}, ev.Service)
	assert.Equal(t, "", ev.Repository)
	assert.Equal(t, "1c5e7d2a4b6f8091a3c5e7f9b1d3f5a7c9e1b3d5", ev.Revision)
}

func TestSyncSucceeded(t *testing.T) {
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceArgoCD,
		ID:           "argocd/api/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b/2026-11-02T10:12:41Z/sync-succeeded",
		Time:         time.Date(2026, 11, 2, 10, 13, 5, 0, time.UTC),
		Service:      event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		Repository:   "acme/api",
		DeploymentID: "argocd/api/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b/2026-11-02T10:12:41Z",
		Revision:     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
	}, parseOne(t, "sync-succeeded.json"))
}

func TestSyncFailed(t *testing.T) {
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentFailed,
		Source:       event.SourceArgoCD,
		ID:           "argocd/api/1c5e7d2a4b6f8091a3c5e7f9b1d3f5a7c9e1b3d5/2026-11-02T14:20:03Z/sync-failed",
		Time:         time.Date(2026, 11, 2, 14, 23, 49, 0, time.UTC),
		Service:      event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		Repository:   "acme/api",
		DeploymentID: "argocd/api/1c5e7d2a4b6f8091a3c5e7f9b1d3f5a7c9e1b3d5/2026-11-02T14:20:03Z",
		Revision:     "1c5e7d2a4b6f8091a3c5e7f9b1d3f5a7c9e1b3d5",
		Reason:       ReasonSyncFailed,
	}, parseOne(t, "sync-failed.json"))
}

func TestHealthDegradedFailsTheSameDeployment(t *testing.T) {
	ev := parseOne(t, "health-degraded.json")
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentFailed,
		Source:       event.SourceArgoCD,
		ID:           "argocd/api/7d1a0e4b9c3f5e2a8b6d4c0f1e3a5b7c9d2f4e6a/2026-11-02T16:30:11Z/health-degraded",
		Time:         time.Date(2026, 11, 2, 16, 41, 30, 0, time.UTC),
		Service:      event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		Repository:   "acme/api",
		DeploymentID: "argocd/api/7d1a0e4b9c3f5e2a8b6d4c0f1e3a5b7c9d2f4e6a/2026-11-02T16:30:11Z",
		Revision:     "7d1a0e4b9c3f5e2a8b6d4c0f1e3a5b7c9d2f4e6a",
		Reason:       ReasonHealthDegraded,
	}, ev)

	// The degraded notice of a sync names the deployment its success did.
	succeeded := render(t, "app-sync-succeeded-dora", "application-degraded.json")
	res, err := provider().Parse(authorized(succeeded))
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, event.DeploymentSucceeded, res.Events[0].Kind)
	assert.Equal(t, ev.DeploymentID, res.Events[0].DeploymentID)
	assert.NotEqual(t, ev.ID, res.Events[0].ID)
	assert.True(t, ev.Time.After(res.Events[0].Time), "the application degraded after the sync finished")

	// A health change from before the sync (or none) is not when it
	// degraded: the sync's end is.
	for _, changed := range []string{`"2026-11-02T16:00:00Z"`, `null`} {
		body := strings.Replace(string(fixture(t, "health-degraded.json")), `"2026-11-02T16:41:30Z"`, changed, 1)
		res, err := provider().Parse(authorized([]byte(body)))
		require.NoError(t, err)
		assert.Equal(t, time.Date(2026, 11, 2, 16, 30, 40, 0, time.UTC), res.Events[0].Time, changed)
	}
	// Only health-degraded takes the health change's time.
	assert.Equal(t, time.Date(2026, 11, 2, 16, 30, 40, 0, time.UTC), res.Events[0].Time)
}

func TestHelmChartSourceWithoutLabels(t *testing.T) {
	ev := parseOne(t, "sync-succeeded-helm.json")
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceArgoCD,
		ID:           "argocd/ingress-nginx/4.11.3/2026-11-02T10:12:41Z/sync-succeeded",
		Time:         time.Date(2026, 11, 2, 10, 13, 5, 0, time.UTC),
		Service:      event.Service{Namespace: "ingress-nginx", Name: "ingress-nginx", Environment: "production"},
		DeploymentID: "argocd/ingress-nginx/4.11.3/2026-11-02T10:12:41Z",
	}, ev, "a chart version is not a commit and a chart repository is not a Git repository")

	cfg := DefaultConfig()
	cfg.Token = token
	cfg.DefaultEnvironment = "prod"
	res, err := New(cfg).Parse(authorized(fixture(t, "sync-succeeded-helm.json")))
	require.NoError(t, err)
	assert.Equal(t, "prod", res.Events[0].Service.Environment)
}

func TestRedeliveryKeepsIDs(t *testing.T) {
	for _, name := range []string{"sync-succeeded.json", "sync-failed.json", "health-degraded.json"} {
		first := parseOne(t, name)
		again := parseOne(t, name)
		assert.Equal(t, first.ID, again.ID, name)
		assert.Equal(t, first, again, name)
	}
	a, b, c := parseOne(t, "sync-succeeded.json"), parseOne(t, "sync-failed.json"), parseOne(t, "health-degraded.json")
	assert.NotEqual(t, a.ID, b.ID)
	assert.NotEqual(t, b.ID, c.ID)
}

func TestNoValuePlaceholders(t *testing.T) {
	// A hand-written template without toJson renders absent values as Go's
	// "<no value>"; they read as empty.
	body := `{"event":"sync-succeeded","app":"api","namespace":"<no value>","revision":"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B",
		"repo":"git@github.com:acme/api.git","environment":"<no value>","phase":"Succeeded",
		"startedAt":"2026-11-02T10:12:41Z","finishedAt":"<no value>","health":"Healthy","message":""}`
	res, err := provider().Parse(authorized([]byte(body)))
	require.NoError(t, err)
	ev := res.Events[0]
	assert.Equal(t, event.Service{Name: "api", Environment: "production"}, ev.Service)
	assert.Equal(t, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", ev.Revision)
	assert.Equal(t, "acme/api", ev.Repository)
	assert.Equal(t, time.Date(2026, 11, 2, 10, 12, 41, 0, time.UTC), ev.Time, "startedAt when finishedAt is absent")
}

func TestRepositoryFromURL(t *testing.T) {
	for url, want := range map[string]string{
		"https://github.com/acme/api.git":             "acme/api",
		"https://github.com/acme/api":                 "acme/api",
		"https://github.com/acme/api/":                "acme/api",
		"git@github.com:acme/api.git":                 "acme/api",
		"ssh://git@gitlab.example.com:2222/g/s/p.git": "g/s/p",
		"https://user@gitlab.com/group/sub/proj.git":  "group/sub/proj",
		"https://dev.azure.com/org/proj/_git/repo":    "org/proj/_git/repo",
		"github.com/acme/api":                         "acme/api",
		"oci://ghcr.io/acme/charts":                   "",
		"https://github.com":                          "",
		"":                                            "",
		"local":                                       "",
	} {
		assert.Equal(t, want, repositoryFromURL(url), url)
	}
}

func TestToken(t *testing.T) {
	body := fixture(t, "sync-succeeded.json")
	tests := map[string]http.Header{
		"missing":     {},
		"wrong token": {"Authorization": []string{"Bearer nope"}},
		"basic auth":  {"Authorization": []string{"Basic " + token}},
		"no scheme":   {"Authorization": []string{token}},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := provider().Parse(&webhook.Request{Header: h, Body: body})
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusUnauthorized, herr.Status)
		})
	}
	t.Run("case-insensitive scheme", func(t *testing.T) {
		_, err := provider().Parse(&webhook.Request{Header: http.Header{"Authorization": []string{"bearer " + token}}, Body: body})
		require.NoError(t, err)
	})
	t.Run("insecure_skip_verify accepts unauthenticated", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.InsecureSkipVerify = true
		res, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
	t.Run("a configured token is checked even with insecure_skip_verify", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Token = token
		cfg.InsecureSkipVerify = true
		_, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
}

func TestMalformed(t *testing.T) {
	const ok = `"app":"api","startedAt":"2026-11-02T10:12:41Z"`
	tests := map[string]string{
		`{`:             "malformed JSON",
		``:              "empty body",
		`[]`:            "expected argocd.Payload",
		`{"app":"api"}`: `missing required field "event"`,
		`{"event":"sync-succeeded","startedAt":"2026-11-02T10:12:41Z"}`:  `missing required field "app"`,
		`{"event":"sync-succeeded","app":"api"}`:                         `missing required field "startedAt"`,
		`{"event":"sync-succeeded","app":"api","startedAt":"yesterday"}`: `field "startedAt": "yesterday" is not an RFC 3339 time`,
		`{"event":"sync-succeeded",` + ok + `,"finishedAt":"10:13"}`:     `field "finishedAt": "10:13"`,
		`{"event":"sync-running",` + ok + `}`:                            `field "event": "sync-running" is not one of`,
		`{"event":"sync-succeeded",` + ok + `,"phase":"Running"}`:        `field "phase": "Running" contradicts event "sync-succeeded"`,
		`{"event":"sync-failed",` + ok + `,"phase":"Succeeded"}`:         `field "phase": "Succeeded" contradicts event "sync-failed"`,
		`{"event":"health-degraded",` + ok + `,"health":"Healthy"}`:      `field "health": "Healthy" contradicts event "health-degraded"`,
		`{"event":5}`: `field "event": expected string`,
	}
	for body, want := range tests {
		t.Run(want, func(t *testing.T) {
			_, err := provider().Parse(authorized([]byte(body)))
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusBadRequest, herr.Status)
			assert.Contains(t, herr.Message, want)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	assert.ErrorContains(t, cfg.Validate(), "token: required")
	cfg.InsecureSkipVerify = true
	assert.NoError(t, cfg.Validate())
	cfg.Token = token
	assert.NoError(t, cfg.Validate())
	cfg.Path = "webhooks/argocd"
	assert.ErrorContains(t, cfg.Validate(), `path: "webhooks/argocd" must start with /`)
	cfg = DefaultConfig()
	cfg.Token = token
	cfg.DefaultEnvironment = " "
	assert.ErrorContains(t, cfg.Validate(), "default_environment: must not be empty")
	assert.Equal(t, "/webhooks/argocd", DefaultConfig().Path)
	assert.Equal(t, "production", DefaultConfig().DefaultEnvironment)
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"sync-succeeded.json", "sync-failed.json", "health-degraded.json", "sync-succeeded-helm.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"event":"sync-succeeded","app":"a","startedAt":"2026-11-02T10:12:41Z","revision":"<no value>","repo":"git@h:x"}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]`))
	p := provider()
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := p.Parse(authorized(body))
		if err != nil {
			// Refused as the sender's fault, never a 5xx or a panic.
			status := webhook.StatusOf(err)
			require.True(t, status >= 400 && status < 500, "a parse error is refused as the sender's: %d", status)
			return
		}
		require.NotEmpty(t, res.Events)
		for _, ev := range res.Events {
			require.True(t, ev.Kind.Valid())
			require.Equal(t, event.SourceArgoCD, ev.Source)
			require.NotEmpty(t, ev.ID)
			require.False(t, ev.Time.IsZero())
			require.NotEmpty(t, ev.Service.Name)
			require.NotEmpty(t, ev.Service.Environment)
			require.NotEmpty(t, ev.DeploymentID)
			if ev.Revision != "" {
				require.True(t, isCommitSHA(ev.Revision))
			}
		}
	})
}

// TestDocumentedConfigMap keeps the argocd-notifications-cm snippet of
// docs/sources/argocd.md equal to the one these tests render.
func TestDocumentedConfigMap(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "sources", "argocd.md"))
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(doc), "<!-- argocd-notifications-cm:")
	require.True(t, ok, "the doc marks its snippet")
	_, after, ok = strings.Cut(after, "```yaml\n")
	require.True(t, ok)
	snippet, _, ok := strings.Cut(after, "```\n")
	require.True(t, ok)
	assert.Equal(t, string(fixture(t, "argocd-notifications-cm.yaml")), snippet)
}
