package dorareceiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/alertmanager"
	"github.com/otelcol-dora/dorareceiver/internal/argocd"
	"github.com/otelcol-dora/dorareceiver/internal/azuredevops"
	"github.com/otelcol-dora/dorareceiver/internal/bitbucket"
	"github.com/otelcol-dora/dorareceiver/internal/bitbucketdc"
	"github.com/otelcol-dora/dorareceiver/internal/cdevents"
	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
	"github.com/otelcol-dora/dorareceiver/internal/flux"
	"github.com/otelcol-dora/dorareceiver/internal/forward"
	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/github"
	"github.com/otelcol-dora/dorareceiver/internal/gitlab"
	"github.com/otelcol-dora/dorareceiver/internal/grafana"
	"github.com/otelcol-dora/dorareceiver/internal/incidentio"
	"github.com/otelcol-dora/dorareceiver/internal/jira"
	"github.com/otelcol-dora/dorareceiver/internal/opsgenie"
	"github.com/otelcol-dora/dorareceiver/internal/pagerduty"
	"github.com/otelcol-dora/dorareceiver/internal/servicenow"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// WebhooksConfig is the receiver's HTTP server for webhooks and CI/CD
// spans. Each source is enabled by its key and served on its own path.
type WebhooksConfig struct {
	ServerConfig confighttp.ServerConfig `mapstructure:",squash"`
	// HealthPath answers GET with the receiver's status.
	HealthPath string `mapstructure:"health_path"`
	// ReadyPath answers 200 on the replica that takes deliveries (the
	// leader, or every replica without leader_election) and 503 on
	// followers: the readinessProbe that keeps webhooks on the leader.
	ReadyPath string `mapstructure:"ready_path"`

	GitHub       configoptional.Optional[github.Config]       `mapstructure:"github"`
	GitLab       configoptional.Optional[gitlab.Config]       `mapstructure:"gitlab"`
	Bitbucket    configoptional.Optional[bitbucket.Config]    `mapstructure:"bitbucket"`
	BitbucketDC  configoptional.Optional[bitbucketdc.Config]  `mapstructure:"bitbucket_dc"`
	AzureDevOps  configoptional.Optional[azuredevops.Config]  `mapstructure:"azuredevops"`
	ArgoCD       configoptional.Optional[argocd.Config]       `mapstructure:"argocd"`
	Flux         configoptional.Optional[flux.Config]         `mapstructure:"flux"`
	Alertmanager configoptional.Optional[alertmanager.Config] `mapstructure:"alertmanager"`
	PagerDuty    configoptional.Optional[pagerduty.Config]    `mapstructure:"pagerduty"`
	ServiceNow   configoptional.Optional[servicenow.Config]   `mapstructure:"servicenow"`
	Jira         configoptional.Optional[jira.Config]         `mapstructure:"jira"`
	CDEvents     configoptional.Optional[cdevents.Config]     `mapstructure:"cdevents"`
	Generic      configoptional.Optional[generic.Config]      `mapstructure:"generic"`
	Opsgenie     configoptional.Optional[opsgenie.Config]     `mapstructure:"opsgenie"`
	IncidentIO   configoptional.Optional[incidentio.Config]   `mapstructure:"incidentio"`
	Grafana      configoptional.Optional[grafana.Config]      `mapstructure:"grafana"`
	// Spans takes OTLP/HTTP trace exports of CI/CD runs.
	Spans configoptional.Optional[cicdspans.Config] `mapstructure:"otlp"`
}

// Default timeouts of the webhook server (read_header_timeout,
// read_timeout, write_timeout, keepalive::idle_timeout).
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

func defaultWebhooksConfig() WebhooksConfig {
	server := confighttp.NewDefaultServerConfig()
	server.NetAddr.Endpoint = "localhost:8088"
	server.MaxRequestBodySize = webhook.DefaultMaxBodySize
	// Cut slow clients off: confighttp sets no limit on reading the body
	// (read_timeout 0) and gives a minute for the headers, so a client
	// trickling bytes could hold a connection and a goroutine for ever.
	// Webhook senders post small bodies at once and retry failures.
	server.ReadHeaderTimeout = DefaultReadHeaderTimeout
	server.ReadTimeout = DefaultReadTimeout
	server.WriteTimeout = DefaultWriteTimeout
	keepalive := confighttp.NewDefaultKeepaliveServerConfig()
	keepalive.IdleTimeout = DefaultIdleTimeout
	server.Keepalive = configoptional.Some(keepalive)
	return WebhooksConfig{
		ServerConfig: server,
		HealthPath:   "/health",
		ReadyPath:    "/ready",
		GitHub:       configoptional.Default(github.DefaultConfig()),
		GitLab:       configoptional.Default(gitlab.DefaultConfig()),
		Bitbucket:    configoptional.Default(bitbucket.DefaultConfig()),
		BitbucketDC:  configoptional.Default(bitbucketdc.DefaultConfig()),
		AzureDevOps:  configoptional.Default(azuredevops.DefaultConfig()),
		ArgoCD:       configoptional.Default(argocd.DefaultConfig()),
		Flux:         configoptional.Default(flux.DefaultConfig()),
		Alertmanager: configoptional.Default(alertmanager.DefaultConfig()),
		PagerDuty:    configoptional.Default(pagerduty.DefaultConfig()),
		ServiceNow:   configoptional.Default(servicenow.DefaultConfig()),
		Jira:         configoptional.Default(jira.DefaultConfig()),
		CDEvents:     configoptional.Default(cdevents.DefaultConfig()),
		Generic:      configoptional.Default(generic.DefaultConfig()),
		Opsgenie:     configoptional.Default(opsgenie.DefaultConfig()),
		IncidentIO:   configoptional.Default(incidentio.DefaultConfig()),
		Grafana:      configoptional.Default(grafana.DefaultConfig()),
		Spans:        configoptional.Default(cicdspans.DefaultConfig()),
	}
}

// webhookSource is one configured source: its path and its provider.
type webhookSource struct {
	key  string
	path string
	// insecure is set when the source accepts unverified deliveries.
	insecure bool
	// secret is the source's secret or token, empty for none (its
	// length is checked at start: startWarnings).
	secret   configopaque.String
	provider webhook.Provider
	// auth is the authenticator extension of the source's path (otlp).
	auth *configauth.Config
}

// sources lists the enabled sources in a fixed order.
func (c *WebhooksConfig) sources() []webhookSource {
	var out []webhookSource
	add := func(key, path string, insecure bool, p webhook.Provider, secret configopaque.String) {
		out = append(out, webhookSource{key: key, path: path, insecure: insecure, secret: secret, provider: p})
	}
	if cfg := c.GitHub.Get(); cfg != nil {
		add("github", cfg.Path, cfg.Insecure(), github.New(*cfg), cfg.Secret)
	}
	if cfg := c.GitLab.Get(); cfg != nil {
		add("gitlab", cfg.Path, cfg.Insecure(), gitlab.New(*cfg), cfg.Secret)
	}
	if cfg := c.Bitbucket.Get(); cfg != nil {
		add("bitbucket", cfg.Path, cfg.Insecure(), bitbucket.New(*cfg), cfg.Secret)
	}
	if cfg := c.BitbucketDC.Get(); cfg != nil {
		add("bitbucket_dc", cfg.Path, cfg.Insecure(), bitbucketdc.New(*cfg), cfg.Secret)
	}
	if cfg := c.AzureDevOps.Get(); cfg != nil {
		add("azuredevops", cfg.Path, cfg.Insecure(), azuredevops.New(*cfg), cfg.Token)
	}
	if cfg := c.ArgoCD.Get(); cfg != nil {
		add("argocd", cfg.Path, cfg.Insecure(), argocd.New(*cfg), cfg.Token)
	}
	if cfg := c.Flux.Get(); cfg != nil {
		add("flux", cfg.Path, cfg.Insecure(), flux.New(*cfg), cfg.Secret)
	}
	if cfg := c.Alertmanager.Get(); cfg != nil {
		add("alertmanager", cfg.Path, cfg.Insecure(), alertmanager.New(*cfg), cfg.Token)
	}
	if cfg := c.PagerDuty.Get(); cfg != nil {
		add("pagerduty", cfg.Path, cfg.Insecure(), pagerduty.New(*cfg), cfg.Secret)
	}
	if cfg := c.ServiceNow.Get(); cfg != nil {
		add("servicenow", cfg.Path, cfg.Insecure(), servicenow.New(*cfg), cfg.Secret)
	}
	if cfg := c.Jira.Get(); cfg != nil {
		add("jira", cfg.Path, cfg.Insecure(), jira.New(*cfg), cfg.Secret)
	}
	if cfg := c.CDEvents.Get(); cfg != nil {
		add("cdevents", cfg.Path, cfg.Insecure(), cdevents.New(*cfg), cfg.Token)
	}
	if cfg := c.Generic.Get(); cfg != nil {
		add("generic", cfg.Path, cfg.Insecure(), generic.New(*cfg), cfg.Secret)
	}
	if cfg := c.Opsgenie.Get(); cfg != nil {
		add("opsgenie", cfg.Path, cfg.Insecure(), opsgenie.New(*cfg), cfg.Token)
	}
	if cfg := c.IncidentIO.Get(); cfg != nil {
		add("incidentio", cfg.Path, cfg.Insecure(), incidentio.New(*cfg), cfg.Secret)
	}
	if cfg := c.Grafana.Get(); cfg != nil {
		add("grafana", cfg.Path, cfg.Insecure(), grafana.New(*cfg), cfg.Credential())
	}
	if cfg := c.Spans.Get(); cfg != nil {
		// OTLP carries no signature: an authenticator extension checks
		// its senders (otlp::auth, or the server's auth or mutual TLS).
		add("otlp", cfg.Path, cfg.InsecureSkipVerify && !cfg.Auth.HasValue() && !c.serverAuthenticates(), cicdspans.New(*cfg), "")
		out[len(out)-1].auth = cfg.Auth.Get()
		if cfg.LogsPath != "" {
			// Agents' event records (gateway.go), authenticated as spans.
			add("otlp", cfg.LogsPath, cfg.InsecureSkipVerify && !cfg.Auth.HasValue() && !c.serverAuthenticates(), forward.NewProvider(forward.Limits{MaxValueLen: MaxPathLen, MaxPaths: MaxPaths}), "")
			out[len(out)-1].auth = cfg.Auth.Get()
		}
	}
	return out
}

// serverAuthenticates reports whether the server itself authenticates
// every request: its auth setting, or mutual TLS (a client certificate
// signed by client_ca_file is required).
func (c *WebhooksConfig) serverAuthenticates() bool {
	if c.ServerConfig.Auth.HasValue() {
		return true
	}
	tls := c.ServerConfig.TLS.Get()
	return tls != nil && tls.ClientCAFile != ""
}

// authenticatePaths wraps next so that the requests to the path of each
// source with an auth setting pass its authenticator extension first,
// like confighttp's auth but for that path alone (GitHub and other webhook
// senders cannot send the credentials an authenticator asks for). A
// refusal is a 401 in the source's error encoding, before the body is
// read.
func authenticatePaths(ctx context.Context, next http.Handler, srcs []webhookSource, host component.Host, logger *zap.Logger) (http.Handler, error) {
	byPath := map[string]pathAuth{}
	for _, s := range srcs {
		if s.auth == nil {
			continue
		}
		server, err := s.auth.GetServerAuthenticator(ctx, host.GetExtensions())
		if err != nil {
			return nil, fmt.Errorf("webhooks::%s::auth: %w", s.key, err)
		}
		byPath[s.path] = pathAuth{server: server, provider: s.provider}
		logger.Info("Webhook source authenticates its senders", zap.String("source", s.provider.Name()),
			zap.String("path", s.path), zap.String("authenticator", s.auth.AuthenticatorID.String()))
	}
	if len(byPath) == 0 {
		return next, nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pa, ok := byPath[r.URL.Path]
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		actx, err := pa.server.Authenticate(r.Context(), r.Header)
		if err != nil {
			msg := "unauthenticated: " + err.Error()
			logger.Info("Webhook delivery refused", zap.String("source", pa.provider.Name()),
				zap.Int("status", http.StatusUnauthorized), zap.String("error", msg))
			if ew, ok := pa.provider.(webhook.ErrorWriter); ok {
				ew.WriteError(w, r.Header, http.StatusUnauthorized, msg)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": msg})
			return
		}
		next.ServeHTTP(w, r.WithContext(actx))
	}), nil
}

type pathAuth struct {
	server   extensionauth.Server
	provider webhook.Provider
}

// Validate checks what the sources' own Validate cannot: that there is a
// source and that paths are distinct.
func (c *WebhooksConfig) Validate() error {
	var errs []error
	srcs := c.sources()
	if len(srcs) == 0 {
		errs = append(errs, errors.New("no webhook source configured (add github, gitlab, bitbucket, bitbucket_dc, azuredevops, argocd, flux, alertmanager, pagerduty, servicenow, jira, opsgenie, incidentio, grafana, cdevents, generic or otlp)"))
	}
	seen := map[string]string{c.HealthPath: "health_path"}
	if c.ReadyPath != "" {
		if c.ReadyPath == c.HealthPath {
			errs = append(errs, fmt.Errorf("ready_path: %q is already used by health_path", c.ReadyPath))
		}
		seen[c.ReadyPath] = "ready_path"
	}
	for _, s := range srcs {
		if !strings.HasPrefix(s.path, "/") {
			errs = append(errs, fmt.Errorf("%s::path: %q must start with /", s.key, s.path))
			continue
		}
		if other, ok := seen[s.path]; ok {
			errs = append(errs, fmt.Errorf("%s::path: %q is already used by %s", s.key, s.path, other))
		}
		seen[s.path] = s.key
	}
	if cfg := c.Spans.Get(); cfg != nil && !cfg.Auth.HasValue() && !cfg.InsecureSkipVerify && !c.serverAuthenticates() {
		errs = append(errs, errors.New("otlp::auth: required to authenticate OTLP exports (authenticator: a bearertokenauth or oidc extension; the server's auth or mutual TLS also do; set otlp::insecure_skip_verify: true to accept unauthenticated exports)"))
	}
	// The gRPC server is a listener of its own: the HTTP server's auth and
	// mutual TLS do not cover it.
	if cfg := c.Spans.Get(); cfg != nil && cfg.GRPC.HasValue() && !cfg.InsecureSkipVerify && !grpcAuthenticates(cfg) {
		errs = append(errs, errors.New("otlp::grpc::auth: required to authenticate OTLP/gRPC exports (grpc::auth or otlp::auth: a bearertokenauth or oidc extension; or mutual TLS, grpc::tls::client_ca_file; set otlp::insecure_skip_verify: true to accept unauthenticated exports)"))
	}
	if c.HealthPath != "" && !strings.HasPrefix(c.HealthPath, "/") {
		errs = append(errs, fmt.Errorf("health_path: %q must start with /", c.HealthPath))
	}
	if c.ReadyPath != "" && !strings.HasPrefix(c.ReadyPath, "/") {
		errs = append(errs, fmt.Errorf("ready_path: %q must start with /", c.ReadyPath))
	}
	return errors.Join(errs...)
}
