package dorareceiver

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"

	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// WebhooksConfig is the receiver's HTTP server for webhooks and CI/CD
// spans. Each source is enabled by its key and served on its own path.
type WebhooksConfig struct {
	ServerConfig confighttp.ServerConfig `mapstructure:",squash"`
	// HealthPath answers GET with the receiver's status.
	HealthPath string `mapstructure:"health_path"`

	Generic configoptional.Optional[generic.Config] `mapstructure:"generic"`
}

func defaultWebhooksConfig() WebhooksConfig {
	server := confighttp.NewDefaultServerConfig()
	server.NetAddr.Endpoint = "localhost:8088"
	server.MaxRequestBodySize = webhook.DefaultMaxBodySize
	return WebhooksConfig{
		ServerConfig: server,
		HealthPath:   "/health",
		Generic:      configoptional.Default(generic.DefaultConfig()),
	}
}

// webhookSource is one configured source: its path and its provider.
type webhookSource struct {
	key  string
	path string
	// insecure is set when the source accepts unverified deliveries.
	insecure bool
	provider func() (webhook.Provider, error)
}

// sources lists the enabled sources in a fixed order.
func (c *WebhooksConfig) sources() []webhookSource {
	var out []webhookSource
	if g := c.Generic.Get(); g != nil {
		cfg := *g
		out = append(out, webhookSource{"generic", cfg.Path, cfg.InsecureSkipVerify && cfg.Secret == "",
			func() (webhook.Provider, error) { return generic.New(cfg), nil }})
	}
	return out
}

// Validate checks what the sources' own Validate cannot: that there is a
// source and that paths are distinct.
func (c *WebhooksConfig) Validate() error {
	var errs []error
	srcs := c.sources()
	if len(srcs) == 0 {
		errs = append(errs, errors.New("no webhook source configured (add generic, github, gitlab, ...)"))
	}
	seen := map[string]string{c.HealthPath: "health_path"}
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
	if c.HealthPath != "" && !strings.HasPrefix(c.HealthPath, "/") {
		errs = append(errs, fmt.Errorf("health_path: %q must start with /", c.HealthPath))
	}
	return errors.Join(errs...)
}
