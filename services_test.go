package dorareceiver

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// A source that names a service but no namespace (CDEvents, Alertmanager,
// PagerDuty, the generic service, a span's service.name) gets the
// namespace of the services entries for that deployment: the one they
// give, or, when they give several, the one whose environment by the
// Kubernetes namespace rules is the event's.
func TestServiceNamespaceFromMapping(t *testing.T) {
	m := newServiceMap([]ServiceMapping{
		{Repository: "acme/api", Namespace: "shop", Deployment: "api"},
		{Repository: "acme/search", Namespace: "search", Deployment: "search"},
		{Repository: "acme/search-staging-config", Namespace: "search-staging", Deployment: "search"},
		{Repository: "acme/web-eu", Namespace: "web-eu", Deployment: "web"},
		{Repository: "acme/web-us", Namespace: "web-us", Deployment: "web"},
	}, TeamsConfig{}).withNamespaceEnvironments(k8s.EnvironmentConfig{
		Namespaces: []k8s.NamespaceRule{{Pattern: "*-staging", Environment: "staging"}},
		Default:    "production",
	})
	tests := []struct {
		name string
		in   event.Service
		want string
	}{
		{"one entry names the deployment", event.Service{Name: "api", Environment: "production"}, "shop"},
		{"in any environment", event.Service{Name: "api", Environment: "staging"}, "shop"},
		{"a namespace the source gave stays", event.Service{Namespace: "other", Name: "api", Environment: "production"}, "other"},
		{"an unmapped service has none", event.Service{Name: "orders", Environment: "production"}, ""},
		{"two namespaces, told apart by environment: staging", event.Service{Name: "search", Environment: "staging"}, "search-staging"},
		{"two namespaces, told apart by environment: production", event.Service{Name: "search", Environment: "production"}, "search"},
		{"two namespaces of one environment: no guess", event.Service{Name: "web", Environment: "production"}, ""},
		{"no environment matches", event.Service{Name: "search", Environment: "qa"}, ""},
	}
	for _, tt := range tests {
		ev := event.Event{Kind: event.DeploymentSucceeded, Service: tt.in}
		m.resolve(&ev)
		assert.Equal(t, tt.want, ev.Service.Namespace, tt.name)
		assert.Equal(t, tt.in.Name, ev.Service.Name, tt.name)
	}

	// Without the Kubernetes rules, several namespaces stay ambiguous.
	plain := newServiceMap([]ServiceMapping{
		{Repository: "acme/search", Namespace: "search", Deployment: "search"},
		{Repository: "acme/search-staging-config", Namespace: "search-staging", Deployment: "search"},
	}, TeamsConfig{})
	ev := event.Event{Service: event.Service{Name: "search", Environment: "production"}}
	plain.resolve(&ev)
	assert.Empty(t, ev.Service.Namespace)
}

// Through the receiver: a CDEvents service.deployed (which names the
// service "service/api" and no namespace) lands on the series of the
// services entry for api, where the Kubernetes rollouts and the GitHub
// deployments of acme/api are, not on namespace="".
func TestCDEventsServiceDeployedGetsTheMappedNamespace(t *testing.T) {
	next := &flakyConsumer{}
	base := startWebhookReceiver(t, next, func(cfg *Config) {
		cfg.Webhooks.Get().CDEvents.GetOrInsertDefault().Token = "cd-token"
	})
	body, err := os.ReadFile(filepath.Join("internal", "cdevents", "testdata", "service-deployed-structured.json"))
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/cdevents", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Authorization", "Bearer cd-token")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	v, ok := counterValue(latest(next), "platform.deployments", map[string]string{"namespace": "shop", "deployment": "api", "environment": "production", "status": "success"})
	require.True(t, ok, "the deployment is on namespace shop")
	assert.EqualValues(t, 1, v)
	_, onEmpty := counterValue(latest(next), "platform.deployments", map[string]string{"namespace": "", "deployment": "api"})
	assert.False(t, onEmpty, "no series with an empty namespace")
}
