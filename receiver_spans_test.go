package dorareceiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// loadReceiverConfig unmarshals and validates the dora receiver's settings
// from m, as the collector does.
func loadReceiverConfig(t *testing.T, m map[string]any) (*Config, error) {
	t.Helper()
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := confmap.NewFromStringMap(m).Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestOTLPNeedsCredentials(t *testing.T) {
	otlp := func(settings map[string]any, server map[string]any) map[string]any {
		wh := map[string]any{"otlp": settings}
		for k, v := range server {
			wh[k] = v
		}
		return map[string]any{"webhooks": wh}
	}
	for name, tc := range map[string]struct {
		conf map[string]any
		err  string
	}{
		"no credentials": {
			conf: otlp(map[string]any{"deployment_pipelines": []any{"deploy*"}}, nil),
			err:  "webhooks: otlp::auth: required to authenticate OTLP exports",
		},
		"an empty auth": {
			conf: otlp(map[string]any{"auth": map[string]any{}}, nil),
			err:  "webhooks: otlp: auth::authenticator: must name a server authenticator extension",
		},
		"its own authenticator":            {conf: otlp(map[string]any{"auth": map[string]any{"authenticator": "bearertokenauth/ci"}}, nil)},
		"the oidc authenticator":           {conf: otlp(map[string]any{"auth": map[string]any{"authenticator": "oidc"}}, nil)},
		"insecure_skip_verify, explicitly": {conf: otlp(map[string]any{"insecure_skip_verify": true}, nil)},
		"the server's auth": {conf: otlp(map[string]any{},
			map[string]any{"auth": map[string]any{"authenticator": "bearertokenauth"}})},
		"mutual TLS": {conf: otlp(map[string]any{},
			map[string]any{"tls": map[string]any{"cert_file": "tls.crt", "key_file": "tls.key", "client_ca_file": "ca.crt"}})},
		"TLS without client certificates is not authentication": {
			conf: otlp(map[string]any{}, map[string]any{"tls": map[string]any{"cert_file": "tls.crt", "key_file": "tls.key"}}),
			err:  "otlp::auth: required",
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := loadReceiverConfig(t, tc.conf)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
			_ = cfg
		})
	}

	cfg, err := loadReceiverConfig(t, otlp(map[string]any{"auth": map[string]any{"authenticator": "bearertokenauth/ci"}}, nil))
	require.NoError(t, err)
	a := cfg.Webhooks.Get().Spans.Get().Auth.Get()
	require.NotNil(t, a)
	assert.Equal(t, component.MustNewIDWithName("bearertokenauth", "ci"), a.AuthenticatorID)
}

// tokenAuth is a server authenticator extension that wants one bearer token.
type tokenAuth struct{ token string }

func (tokenAuth) Start(context.Context, component.Host) error { return nil }
func (tokenAuth) Shutdown(context.Context) error              { return nil }
func (a tokenAuth) Authenticate(ctx context.Context, headers map[string][]string) (context.Context, error) {
	// HTTP headers are canonical, gRPC metadata keys lower case.
	for _, k := range []string{"Authorization", "authorization"} {
		if v := headers[k]; len(v) == 1 && v[0] == "Bearer "+a.token {
			return ctx, nil
		}
	}
	return ctx, errors.New("missing or wrong bearer token")
}

type hostWithExtensions struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h hostWithExtensions) GetExtensions() map[component.ID]component.Component { return h.ext }

var authID = component.MustNewIDWithName("bearertokenauth", "ci")

func startWithHost(t *testing.T, next *flakyConsumer, host component.Host, configure func(*Config)) (string, error) {
	t.Helper()
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	spans := wc.Spans.GetOrInsertDefault()
	spans.DeploymentPipelines = []string{"deploy"}
	spans.Auth = configoptional.Some(configauth.Config{AuthenticatorID: authID})
	cfg.Services = []ServiceMapping{{Repository: "acme/api", Namespace: "shop", Deployment: "api"}}
	if configure != nil {
		configure(cfg)
	}
	require.NoError(t, cfg.Validate())
	rcv, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(t, err)
	if err := rcv.Start(context.Background(), host); err != nil {
		return "", err
	}
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	return "http://" + wc.ServerConfig.NetAddr.Endpoint, nil
}

// githubRunExport is a workflow run as the contrib GitHub receiver exports
// it (resource attributes of its getWorkflowRunAttrs; the run's span),
// with service.name as a service_name custom property would set it.
func githubRunExport(t *testing.T, serviceName string, runID byte, end time.Time) []byte {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	res := rs.Resource().Attributes()
	res.PutStr("service.name", serviceName)
	res.PutStr("vcs.repository.name", "api")
	res.PutStr("vcs.provider.name", "github")
	res.PutStr("vcs.ref.head", "main")
	res.PutStr("vcs.ref.head.revision", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b")
	res.PutStr("cicd.pipeline.name", "deploy")
	res.PutStr("cicd.pipeline.run.url.full", fmt.Sprintf("https://github.com/acme/api/actions/runs/%d", 1122334455+int(runID)))
	res.PutInt("cicd.pipeline.run.id", 1122334455)
	res.PutStr("cicd.pipeline.run.status", "success")
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetName("deploy")
	s.SetKind(ptrace.SpanKindServer)
	s.SetTraceID(pcommon.TraceID{0xe6, 0x3f, 0xf8, 0x8f, runID})
	s.SetSpanID(pcommon.SpanID{0xa8, 0xab, 0x05, runID})
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-4 * time.Minute)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	require.NoError(t, err)
	return body
}

func postOTLP(t *testing.T, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

// deploymentSeries lists the (namespace, deployment) of every
// platform.deployments point the receiver emitted.
func deploymentSeries(next *flakyConsumer) map[[2]string]bool {
	out := map[[2]string]bool{}
	for _, md := range next.AllMetrics() {
		forEachMetric(md, "platform.deployments", func(m pmetric.Metric) {
			dps := m.Sum().DataPoints()
			for i := range dps.Len() {
				a := dps.At(i).Attributes().AsRaw()
				ns, _ := a["namespace"].(string)
				d, _ := a["deployment"].(string)
				out[[2]string{ns, d}] = true
			}
		})
	}
	return out
}

func TestOTLPAuthenticatesItsPathOnly(t *testing.T) {
	next := &flakyConsumer{}
	host := hostWithExtensions{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{authID: tokenAuth{token: "ci-token"}}}
	base, err := startWithHost(t, next, host, nil)
	require.NoError(t, err)
	now := time.Now().Truncate(time.Second)

	for name, token := range map[string]string{"no token": "", "wrong token": "guess"} {
		status, raw := postOTLP(t, base+"/v1/traces", token, githubRunExport(t, "api", 1, now.Add(-time.Hour)))
		assert.Equal(t, http.StatusUnauthorized, status, name)
		assert.JSONEq(t, `{"code":16,"message":"unauthenticated: missing or wrong bearer token"}`, string(raw), name)
	}
	assert.Empty(t, deploymentSeries(next), "nothing counted")

	status, raw := postOTLP(t, base+"/v1/traces", "ci-token", githubRunExport(t, "api", 1, now.Add(-time.Hour)))
	require.Equal(t, http.StatusOK, status, string(raw))
	v, ok := counterValue(latest(next), "platform.deployments", map[string]string{"namespace": "shop", "deployment": "api"})
	require.True(t, ok)
	assert.EqualValues(t, 1, v)

	// The other paths keep their own verification: a signed generic
	// delivery without the otlp token is accepted.
	r := post(t, base+"/events", "application/json", deploymentJSON("d1", "success", now), true)
	assert.Equal(t, http.StatusOK, r.status, r.body)
	resp, err := http.Get(base + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestOTLPAuthenticatorMustExist(t *testing.T) {
	_, err := startWithHost(t, &flakyConsumer{}, componenttest.NewNopHost(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `webhooks::otlp::auth: failed to resolve authenticator "bearertokenauth/ci"`)
}

// The contrib GitHub receiver sets service.name from the repository's
// service_name custom property (or its webhook.service_name): the services
// mapping still decides, so its spans and the repository's webhooks are
// one series, not a second one with an empty namespace.
func TestSpansAndWebhooksOfARepositoryAreOneSeries(t *testing.T) {
	next := &flakyConsumer{}
	base := startWebhookReceiver(t, next, func(cfg *Config) {
		spans := cfg.Webhooks.Get().Spans.GetOrInsertDefault()
		spans.DeploymentPipelines = []string{"deploy"}
		spans.InsecureSkipVerify = true
	})
	now := time.Now().Truncate(time.Second)
	r := post(t, base+"/events", "application/json", deploymentJSON("d1", "success", now.Add(-3*time.Hour)), true)
	require.Equal(t, http.StatusOK, r.status, r.body)
	for i, svc := range []string{"api", "api-ci", "acme-platform"} {
		status, raw := postOTLP(t, base+"/v1/traces", "", githubRunExport(t, svc, byte(i+1), now.Add(-time.Duration(2-i)*time.Hour)))
		require.Equal(t, http.StatusOK, status, string(raw))
	}
	assert.Equal(t, map[[2]string]bool{{"shop", "api"}: true}, deploymentSeries(next))
	v, _ := counterValue(latest(next), "platform.deployments", map[string]string{"namespace": "shop", "deployment": "api"})
	assert.EqualValues(t, 4, v)
}

func TestServiceHintResolution(t *testing.T) {
	m := newServiceMap([]ServiceMapping{
		{Repository: "acme/api", Namespace: "shop", Deployment: "api"},
		{Repository: "acme/mono", Namespace: "shop", Deployment: "cart", Paths: []string{"cart/**"}},
		{Repository: "acme/mono", Namespace: "pay", Deployment: "payments", Paths: []string{"payments/**"}},
	}, TeamsConfig{})
	for name, tc := range map[string]struct {
		repo, hint string
		want       event.Service
	}{
		"a mapped repository: the mapping, whatever the hint":  {"acme/api", "api-ci", event.Service{Namespace: "shop", Name: "api"}},
		"a monorepo: the hint picks its service":               {"Acme/Mono", "Payments", event.Service{Namespace: "pay", Name: "payments"}},
		"a monorepo, a hint that is none of its services":      {"acme/mono", "mono-ci", event.Service{Name: "mono-ci"}},
		"a monorepo without a hint: the repository's name":     {"acme/mono", "", event.Service{Name: "mono"}},
		"an unmapped repository: the hint":                     {"acme/web", "storefront", event.Service{Name: "storefront"}},
		"an unmapped repository without a hint: its last name": {"acme/web", "", event.Service{Name: "web"}},
		"no repository: the hint":                              {"", "search", event.Service{Name: "search"}},
	} {
		t.Run(name, func(t *testing.T) {
			ev := event.Event{Repository: tc.repo, ServiceHint: tc.hint}
			m.resolve(&ev)
			assert.Equal(t, tc.want, ev.Service)
		})
	}
	ev := event.Event{Service: event.Service{Name: "search"}, Repository: "acme/api", ServiceHint: "x"}
	m.resolve(&ev)
	assert.Equal(t, event.Service{Name: "search"}, ev.Service, "a named service is left alone")
}
