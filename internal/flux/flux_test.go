package flux

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
	"github.com/otelcol-dora/dorareceiver/internal/webhook/webhooktest"
)

const secret = "fl0x-t0ken"

// signed is a delivery as notification-controller's generic-hmac
// provider sends it.
func signed(body []byte) *webhook.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Gotk-Component", "kustomize-controller")
	h.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, body))
	return &webhook.Request{Header: h, Body: body, Received: time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)}
}

func newProvider(mod func(*Config)) *Provider {
	cfg := DefaultConfig()
	cfg.Secret = secret
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg)
}

func parseOne(t *testing.T, p *Provider, name string) event.Event {
	t.Helper()
	res, err := p.Parse(signed(webhooktest.Fixture(t, name)))
	require.NoError(t, err)
	require.Len(t, res.Events, 1, res.Ignored)
	return res.Events[0]
}

func TestKustomizationSucceeded(t *testing.T) {
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceFlux,
		ID:           "7d0cdc51-ddcf-4743-b223-83ca5c699632/ReconciliationSucceeded/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b/2026-11-02T10:15:00Z",
		Time:         time.Date(2026, 11, 2, 10, 15, 0, 0, time.UTC),
		Service:      event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		DeploymentID: "flux/Kustomization/shop/api/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
		Revision:     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
	}, parseOne(t, newProvider(nil), "kustomization-succeeded.json"))
}

func TestKustomizationHealthCheckFailed(t *testing.T) {
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentFailed,
		Source:       event.SourceFlux,
		ID:           "7d0cdc51-ddcf-4743-b223-83ca5c699632/HealthCheckFailed/1c5e7d2a4b6f8091a3c5e7f9b1d3f5a7c9e1b3d5/2026-11-02T14:26:31Z",
		Time:         time.Date(2026, 11, 2, 14, 26, 31, 0, time.UTC),
		Service:      event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		DeploymentID: "flux/Kustomization/shop/api/1c5e7d2a4b6f8091a3c5e7f9b1d3f5a7c9e1b3d5",
		Revision:     "1c5e7d2a4b6f8091a3c5e7f9b1d3f5a7c9e1b3d5",
		Reason:       "HealthCheckFailed",
	}, parseOne(t, newProvider(nil), "kustomization-healthcheck-failed.json"))
}

// TestFailureReasons: every error whose reason says the revision did not
// apply or did not become healthy is a failed deployment of that revision,
// with that reason (kustomize-controller's Ready reasons, helm-controller's
// failed actions).
func TestFailureReasons(t *testing.T) {
	p := newProvider(nil)
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentFailed,
		Source:       event.SourceFlux,
		ID:           "7d0cdc51-ddcf-4743-b223-83ca5c699632/PruneFailed/4e07408562bedb8b60ce05c1decfe3ad16b72230/2026-11-03T08:41:52Z",
		Time:         time.Date(2026, 11, 3, 8, 41, 52, 0, time.UTC),
		Service:      event.Service{Namespace: "shop", Name: "api", Environment: "production"},
		DeploymentID: "flux/Kustomization/shop/api/4e07408562bedb8b60ce05c1decfe3ad16b72230",
		Revision:     "4e07408562bedb8b60ce05c1decfe3ad16b72230",
		Reason:       "PruneFailed",
	}, parseOne(t, p, "kustomization-prune-failed.json"))

	artifact := parseOne(t, p, "kustomization-artifact-failed.json")
	assert.Equal(t, event.DeploymentFailed, artifact.Kind, "spec.path is missing from the revision")
	assert.Equal(t, "ArtifactFailed", artifact.Reason)
	assert.Equal(t, "flux/Kustomization/shop/api/2c624232cdd221771294dfbb310aca000a0df6ac", artifact.DeploymentID)

	// The example of notification-controller's docs (v1beta3 events.md),
	// as published: a kustomize-controller v1beta1 validation error, with
	// the prefixed metadata key and the legacy revision.
	doc := parseOne(t, p, "notification-controller-docs-example.json")
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentFailed,
		Source:       event.SourceFlux,
		ID:           "7d0cdc51-ddcf-4743-b223-83ca5c699632/ValidationFailed/731f7eaddfb6af01cb2173e18f0f75b0ba780ef1/2022-10-28T07:26:19Z",
		Time:         time.Date(2022, 10, 28, 7, 26, 19, 0, time.UTC),
		Service:      event.Service{Namespace: "apps", Name: "webapp", Environment: "production"},
		DeploymentID: "flux/Kustomization/apps/webapp/731f7eaddfb6af01cb2173e18f0f75b0ba780ef1",
		Revision:     "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1",
		Reason:       "ValidationFailed",
	}, doc)

	// The other reasons of the list, on the same delivery shape.
	for _, tc := range []struct{ fixture, reason string }{
		{"kustomization-healthcheck-failed.json", "BuildFailed"},
		{"kustomization-healthcheck-failed.json", "ReconciliationFailed"},
		{"kustomization-healthcheck-failed.json", "HealthCheckFailed"},
		{"helmrelease-upgrade-failed.json", "InstallFailed"},
		{"helmrelease-upgrade-failed.json", "UpgradeFailed"},
		{"helmrelease-upgrade-failed.json", "TestFailed"},
	} {
		body := regexp.MustCompile(`"reason": "[A-Za-z]+"`).ReplaceAllString(string(webhooktest.Fixture(t, tc.fixture)), `"reason": "`+tc.reason+`"`)
		res, err := p.Parse(signed([]byte(body)))
		require.NoError(t, err, tc.reason)
		require.Len(t, res.Events, 1, "%s: %s", tc.reason, res.Ignored)
		assert.Equal(t, event.DeploymentFailed, res.Events[0].Kind, tc.reason)
		assert.Equal(t, tc.reason, res.Events[0].Reason)
	}
}

func TestOCIArtifactBuiltFromGit(t *testing.T) {
	ev := parseOne(t, newProvider(nil), "kustomization-oci-succeeded.json")
	assert.Equal(t, "7d1a0e4b9c3f5e2a8b6d4c0f1e3a5b7c9d2f4e6a", ev.Revision, "the origin revision is the commit")
	assert.Equal(t, "flux/Kustomization/payments/ledger/7d1a0e4b9c3f5e2a8b6d4c0f1e3a5b7c9d2f4e6a", ev.DeploymentID)
	assert.Equal(t, time.Date(2026, 11, 3, 9, 2, 17, 500_000_000, time.UTC), ev.Time)
	assert.Equal(t, "c2b4a0e8-31f7-4d5e-9a6b-8e1f0d3c7a52/ReconciliationSucceeded/7d1a0e4b9c3f5e2a8b6d4c0f1e3a5b7c9d2f4e6a/2026-11-03T09:02:17.5Z", ev.ID)
}

func TestHelmRelease(t *testing.T) {
	p := newProvider(nil)
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentSucceeded,
		Source:       event.SourceFlux,
		ID:           "e0a9f5d1-6b2c-4f8e-a7d3-5c1b9e2f4a60/UpgradeSucceeded/2.4.1/2026-11-02T15:02:44Z",
		Time:         time.Date(2026, 11, 2, 15, 2, 44, 0, time.UTC),
		Service:      event.Service{Namespace: "shop", Name: "checkout", Environment: "production"},
		DeploymentID: "flux/HelmRelease/shop/checkout/2.4.1",
	}, parseOne(t, p, "helmrelease-upgrade-succeeded.json"), "a chart version is not a commit: no revision, but a deployment id")
	assert.Equal(t, event.Event{
		Kind:         event.DeploymentFailed,
		Source:       event.SourceFlux,
		ID:           "e0a9f5d1-6b2c-4f8e-a7d3-5c1b9e2f4a60/UpgradeFailed/2.4.2/2026-11-02T17:48:09Z",
		Time:         time.Date(2026, 11, 2, 17, 48, 9, 0, time.UTC),
		Service:      event.Service{Namespace: "shop", Name: "checkout", Environment: "production"},
		DeploymentID: "flux/HelmRelease/shop/checkout/2.4.2",
		Reason:       "UpgradeFailed",
	}, parseOne(t, p, "helmrelease-upgrade-failed.json"))
}

func TestIgnored(t *testing.T) {
	p := newProvider(nil)
	for name, want := range map[string]string{
		"kustomization-progressing.json": "Kustomization event Progressing (severity info) is not a deployment outcome",
		"gitrepository-stored.json":      "GitRepository events are not deployments",
		// A rollback names the previous chart version: the failure was the
		// UpgradeFailed before it.
		"helmrelease-rollback-succeeded.json": "HelmRelease event RollbackSucceeded (severity info) is not a deployment outcome",
		// kustomize-controller's finalizer reports with the last Ready
		// reason and revision.
		"kustomization-deletion-failed.json": `Kustomization error event ReconciliationSucceeded is about the deletion of the Kustomization ("pruning for deleted resource failed")`,
	} {
		res, err := p.Parse(signed(webhooktest.Fixture(t, name)))
		require.NoError(t, err, name)
		assert.Empty(t, res.Events, name)
		assert.Contains(t, res.Ignored, want, name)
	}
	for body, want := range map[string]string{
		// Failure reasons count only as errors (Flux reports some of them
		// as info while it retries).
		`{"involvedObject":{"kind":"HelmRelease","namespace":"a","name":"b"},"severity":"info","reason":"InstallFailed","timestamp":"2026-11-02T10:00:00Z","metadata":{"revision":"1.0.0"}}`: "HelmRelease event InstallFailed (severity info) is not a deployment outcome",
		// Errors without a revision (kustomize-controller's access and
		// feature-gate errors, helm-controller's plain events) cannot name
		// the deployment.
		`{"involvedObject":{"kind":"HelmRelease","namespace":"a","name":"b"},"severity":"error","reason":"ArtifactFailed","timestamp":"2026-11-02T10:00:00Z"}`: "HelmRelease event ArtifactFailed has no revision in its metadata",
		// The Flux object's own configuration, the controller's pod, a
		// remediation or drift: not the revision's deployment.
		`{"involvedObject":{"kind":"Kustomization","namespace":"a","name":"b"},"severity":"error","reason":"InvalidCELExpression","timestamp":"2026-11-02T10:00:00Z","metadata":{"revision":"main@sha1:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"}}`:    "Kustomization event InvalidCELExpression (severity error) is not a deployment outcome",
		`{"involvedObject":{"kind":"Kustomization","namespace":"a","name":"b"},"severity":"error","reason":"DirCreationFailed","timestamp":"2026-11-02T10:00:00Z","metadata":{"revision":"main@sha1:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"}}`:       "not a deployment outcome",
		`{"involvedObject":{"kind":"HelmRelease","namespace":"a","name":"b"},"severity":"error","reason":"RollbackFailed","timestamp":"2026-11-02T10:00:00Z","metadata":{"revision":"1.0.0"}}`:                                                         "not a deployment outcome",
		`{"involvedObject":{"kind":"HelmRelease","namespace":"a","name":"b"},"severity":"error","reason":"DriftCorrectionFailed","timestamp":"2026-11-02T10:00:00Z","metadata":{"revision":"1.0.0"}}`:                                                  "not a deployment outcome",
		`{"involvedObject":{"kind":"Kustomization","namespace":"a","name":"b"},"severity":"error","reason":"ReconciliationSucceeded","timestamp":"2026-11-02T10:00:00Z","metadata":{"revision":"main@sha1:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"}}`: "with the reason of its last success (ReconciliationSucceeded) does not report a deployment outcome",
		`{"involvedObject":{"kind":"HelmRelease","namespace":"a","name":"b"},"severity":"info","reason":"HealthCheckCanceled","timestamp":"2026-11-02T10:00:00Z","metadata":{"revision":"1.0.0"}}`:                                                     "not a deployment outcome",
		`{"involvedObject":{"kind":"Kustomization","namespace":"a","name":"b"},"severity":"info","reason":"DependencyNotReady","timestamp":"2026-11-02T10:00:00Z"}`:                                                                                    "not a deployment outcome",
		`{"involvedObject":{"kind":"HelmRelease","namespace":"a","name":"b"},"severity":"info","reason":"RollbackSucceeded","timestamp":"2026-11-02T10:00:00Z","metadata":{"revision":"1"}}`:                                                           "not a deployment outcome",
		`{"involvedObject":{"kind":"Kustomization","namespace":"a","name":"b"},"severity":"info","reason":"ReconciliationSucceeded","timestamp":"2026-11-02T10:00:00Z"}`:                                                                               "has no revision in its metadata",
	} {
		res, err := p.Parse(signed([]byte(body)))
		require.NoError(t, err, body)
		assert.Empty(t, res.Events, body)
		assert.Contains(t, res.Ignored, want, body)
	}
}

func TestEnvironment(t *testing.T) {
	p := newProvider(func(c *Config) {
		c.DefaultEnvironment = "prod"
		c.Environments = []Environment{
			{Pattern: "*-staging", Environment: "staging"},
			{Pattern: "shop", Environment: "production-eu"},
			{Pattern: "sh*", Environment: "never: the first match wins"},
		}
	})
	assert.Equal(t, "production-eu", parseOne(t, p, "kustomization-succeeded.json").Service.Environment)
	assert.Equal(t, "prod", parseOne(t, p, "kustomization-oci-succeeded.json").Service.Environment)

	body := strings.Replace(string(webhooktest.Fixture(t, "kustomization-succeeded.json")), `"namespace": "shop"`, `"namespace": "shop-staging"`, 1)
	res, err := p.Parse(signed([]byte(body)))
	require.NoError(t, err)
	assert.Equal(t, "staging", res.Events[0].Service.Environment)

	// An environment in the event's metadata (Alert eventMetadata, or the
	// object's event.toolkit.fluxcd.io/environment annotation) wins.
	body = strings.Replace(string(webhooktest.Fixture(t, "kustomization-succeeded.json")), `"commit_status": "update",`, `"commit_status": "update", "environment": "canary",`, 1)
	res, err = p.Parse(signed([]byte(body)))
	require.NoError(t, err)
	assert.Equal(t, "canary", res.Events[0].Service.Environment)
}

func TestRevisions(t *testing.T) {
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"
	const digest = "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427"
	tests := []struct {
		metadata         map[string]string
		commit, revision string
	}{
		{map[string]string{"revision": "main@sha1:" + sha}, sha, sha},
		{map[string]string{"revision": "refs/tags/v1.2.0@sha1:" + sha}, sha, sha},
		{map[string]string{"revision": "sha1:" + sha}, sha, sha},
		{map[string]string{"revision": strings.ToUpper(sha)}, sha, sha},
		{map[string]string{"revision": "main/" + sha}, sha, sha},
		{map[string]string{"revision": digest}, "", digest},
		{map[string]string{"revision": "latest@" + digest}, "", "latest@" + digest},
		{map[string]string{"revision": "latest@" + digest, "originRevision": "main@sha1:" + sha}, sha, sha},
		{map[string]string{"revision": "2.4.1", "commit": sha}, sha, sha},
		{map[string]string{"revision": "6.5.4+9f86d0818841"}, "", "6.5.4+9f86d0818841"},
		{map[string]string{"revision": "main@sha1:9f86d08"}, "", "main@sha1:9f86d08"},
		{map[string]string{"kustomize.toolkit.fluxcd.io/revision": "main@sha1:" + sha}, sha, sha},
		{map[string]string{"summary": "x"}, "", ""},
		{nil, "", ""},
	}
	for _, tt := range tests {
		commit, revision := revisions(tt.metadata)
		assert.Equal(t, tt.commit, commit, "%v", tt.metadata)
		assert.Equal(t, tt.revision, revision, "%v", tt.metadata)
	}
}

func TestRedeliveryKeepsIDs(t *testing.T) {
	p := newProvider(nil)
	names := []string{"kustomization-succeeded.json", "kustomization-healthcheck-failed.json", "kustomization-oci-succeeded.json",
		"helmrelease-upgrade-succeeded.json", "helmrelease-upgrade-failed.json"}
	seen := map[string]string{}
	for _, name := range names {
		first, again := parseOne(t, p, name), parseOne(t, p, name)
		assert.Equal(t, first, again, name)
		if other, dup := seen[first.ID]; dup {
			t.Errorf("%s and %s share id %s", name, other, first.ID)
		}
		seen[first.ID] = name
	}
	// The next reconciliation of the same revision is another event of the
	// same deployment.
	later := strings.Replace(string(webhooktest.Fixture(t, "kustomization-succeeded.json")), "2026-11-02T10:15:00Z", "2026-11-02T10:25:01Z", 1)
	res, err := p.Parse(signed([]byte(later)))
	require.NoError(t, err)
	first := parseOne(t, p, "kustomization-succeeded.json")
	assert.NotEqual(t, first.ID, res.Events[0].ID)
	assert.Equal(t, first.DeploymentID, res.Events[0].DeploymentID)
}

func TestSignature(t *testing.T) {
	body := webhooktest.Fixture(t, "kustomization-succeeded.json")
	tests := map[string]http.Header{
		"missing":           {},
		"no function":       {SignatureHeader: []string{webhook.SignHMACSHA256(secret, body)}},
		"wrong key":         {SignatureHeader: []string{"sha256=" + webhook.SignHMACSHA256("other", body)}},
		"not hex":           {SignatureHeader: []string{"sha256=zz"}},
		"sha1 not allowed":  {SignatureHeader: []string{"sha1=" + webhook.SignHMACSHA256(secret, body)}},
		"function mismatch": {SignatureHeader: []string{"sha512=" + webhook.SignHMACSHA256(secret, body)}},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := newProvider(nil).Parse(&webhook.Request{Header: h, Body: body})
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusUnauthorized, herr.Status)
		})
	}
	t.Run("tampered body", func(t *testing.T) {
		req := signed(body)
		req.Body = []byte(strings.Replace(string(body), `"name": "api"`, `"name": "apj"`, 1))
		_, err := newProvider(nil).Parse(req)
		var herr *webhook.Error
		require.ErrorAs(t, err, &herr)
		assert.Equal(t, http.StatusUnauthorized, herr.Status)
	})
	t.Run("sha512, which Flux may switch to", func(t *testing.T) {
		mac := hmac.New(sha512.New, []byte(secret))
		mac.Write(body)
		h := http.Header{SignatureHeader: []string{"sha512=" + hex.EncodeToString(mac.Sum(nil))}}
		res, err := newProvider(nil).Parse(&webhook.Request{Header: h, Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
	t.Run("insecure_skip_verify accepts unsigned", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.InsecureSkipVerify = true
		res, err := New(cfg).Parse(&webhook.Request{Header: http.Header{}, Body: body})
		require.NoError(t, err)
		assert.Len(t, res.Events, 1)
	})
}

func TestMalformed(t *testing.T) {
	const obj = `"involvedObject":{"kind":"Kustomization","namespace":"shop","name":"api"}`
	tests := map[string]string{
		`{`:  "malformed JSON",
		``:   "empty body",
		`[]`: "expected flux.Event",
		`{"reason":"ReconciliationSucceeded","timestamp":"2026-11-02T10:00:00Z"}`:                                           `missing required field "involvedObject.kind"`,
		`{"involvedObject":{"kind":"Kustomization","namespace":"shop"},"reason":"x","timestamp":"2026-11-02T10:00:00Z"}`:    `missing required field "involvedObject.name"`,
		`{"involvedObject":{"kind":"Kustomization","name":"api"},"reason":"x","timestamp":"2026-11-02T10:00:00Z"}`:          `missing required field "involvedObject.namespace"`,
		`{` + obj + `,"timestamp":"2026-11-02T10:00:00Z"}`:                                                                  `missing required field "reason"`,
		`{` + obj + `,"reason":"ReconciliationSucceeded"}`:                                                                  `missing required field "timestamp"`,
		`{` + obj + `,"reason":"ReconciliationSucceeded","timestamp":"2 Nov 2026"}`:                                         `field "timestamp": "2 Nov 2026" is not an RFC 3339 time`,
		`{` + obj + `,"reason":"ReconciliationSucceeded","timestamp":"2026-11-02T10:00:00Z","metadata":{"revision":1}}`:     `field "metadata": expected string`,
		`{"involvedObject":"Kustomization/shop/api","reason":"ReconciliationSucceeded","timestamp":"2026-11-02T10:00:00Z"}`: `field "involvedObject": expected flux.ObjectReference`,
	}
	for body, want := range tests {
		t.Run(want, func(t *testing.T) {
			_, err := newProvider(nil).Parse(signed([]byte(body)))
			var herr *webhook.Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusBadRequest, herr.Status)
			assert.Contains(t, herr.Message, want)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	assert.Equal(t, "/webhooks/flux", cfg.Path)
	assert.Equal(t, "production", cfg.DefaultEnvironment)
	assert.ErrorContains(t, cfg.Validate(), "secret: required")
	cfg.Secret = secret
	assert.NoError(t, cfg.Validate())
	cfg.InsecureSkipVerify = true
	cfg.Secret = ""
	assert.NoError(t, cfg.Validate())

	cfg = DefaultConfig()
	cfg.Secret = secret
	cfg.Path = "flux"
	cfg.DefaultEnvironment = ""
	cfg.Environments = []Environment{
		{Pattern: "[a-", Environment: "x"},
		{Pattern: "", Environment: "x"},
		{Pattern: "apps-*", Environment: ""},
		{Pattern: "flux-system/*", Environment: "x"},
		{Pattern: "ok-*", Environment: "ok"},
	}
	err := cfg.Validate()
	for _, want := range []string{
		`path: "flux" must start with /`,
		"default_environment: must not be empty",
		`environments[0].pattern: "[a-" is not a valid glob`,
		"environments[1].pattern: must not be empty",
		"environments[2].environment: must not be empty",
		`environments[3].pattern: "flux-system/*": a namespace has no /`,
	} {
		assert.ErrorContains(t, err, want)
	}
	assert.NotContains(t, err.Error(), "environments[4]")
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"kustomization-succeeded.json", "kustomization-healthcheck-failed.json", "kustomization-progressing.json",
		"kustomization-oci-succeeded.json", "helmrelease-upgrade-succeeded.json", "helmrelease-upgrade-failed.json", "gitrepository-stored.json",
		"kustomization-prune-failed.json", "kustomization-artifact-failed.json", "kustomization-deletion-failed.json", "notification-controller-docs-example.json"} {
		f.Add(webhooktest.Fixture(f, name))
	}
	f.Add([]byte(`{"involvedObject":{"kind":"Kustomization","namespace":"a","name":"b"},"reason":"ReconciliationSucceeded","timestamp":"2026-11-02T10:00:00Z","metadata":{"x.fluxcd.io/revision":"main/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b","":"y"}}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]`))
	p := newProvider(func(c *Config) { c.Environments = []Environment{{Pattern: "*-staging", Environment: "staging"}} })
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := p.Parse(signed(body))
		if err != nil {
			// Refused as the sender's fault, never a 5xx or a panic.
			status := webhook.StatusOf(err)
			require.True(t, status >= 400 && status < 500, "a parse error is refused as the sender's: %d", status)
			return
		}
		require.True(t, len(res.Events) > 0 || res.Ignored != "")
		for _, ev := range res.Events {
			require.True(t, ev.Kind.Valid())
			require.Equal(t, event.SourceFlux, ev.Source)
			require.NotEmpty(t, ev.ID)
			require.False(t, ev.Time.IsZero())
			require.NotEmpty(t, ev.Service.Name)
			require.NotEmpty(t, ev.Service.Environment)
			require.NotEmpty(t, ev.DeploymentID)
			if ev.Kind == event.DeploymentFailed {
				require.NotEmpty(t, ev.Reason)
			}
			if ev.Revision != "" {
				require.Len(t, ev.Revision, 40)
				require.Equal(t, strings.ToLower(ev.Revision), ev.Revision)
			}
		}
	})
}
