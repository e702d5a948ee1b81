package dorareceiver

import (
	"errors"
	"fmt"
	"path"
	"time"

	"go.opentelemetry.io/collector/config/configoptional"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// Config is the dora receiver's configuration.
type Config struct {
	// Kubernetes enables the Kubernetes source when the key is present.
	Kubernetes configoptional.Optional[k8s.Config] `mapstructure:"kubernetes"`
	// Webhooks enables the HTTP server for webhooks and CI/CD spans.
	Webhooks configoptional.Optional[WebhooksConfig] `mapstructure:"webhooks"`

	// Services maps repositories to the services they deploy.
	Services []ServiceMapping `mapstructure:"services"`
	// ProductionEnvironments are the environment names (shell globs) that
	// count as production: only their deployments feed lead time, change
	// failures and recovery time; every environment's deployments are
	// counted with their environment attribute.
	ProductionEnvironments []string `mapstructure:"production_environments"`

	// EmitInterval is how often the whole cumulative state is sent down the
	// pipeline even when nothing changed, so that exporters that expire idle
	// series (the Prometheus exporter after 5 minutes) keep them. Changes
	// are sent as they happen, not on this interval.
	EmitInterval time.Duration `mapstructure:"emit_interval"`

	// LeadTimeBuckets and RecoveryTimeBuckets are the histogram bucket
	// bounds (Go durations, increasing).
	LeadTimeBuckets     []time.Duration `mapstructure:"lead_time_buckets"`
	RecoveryTimeBuckets []time.Duration `mapstructure:"recovery_time_buckets"`

	// IncidentWindow is how long after a deployment an incident on the same
	// service counts as caused by it.
	IncidentWindow time.Duration `mapstructure:"incident_window"`
	// DedupWindow is how long event ids are remembered to drop redeliveries.
	DedupWindow time.Duration `mapstructure:"dedup_window"`

	metadata.MetricsBuilderConfig `mapstructure:",squash"`

	// prevent unkeyed literal initialization
	_ struct{}
}

func createDefaultConfig() *Config {
	ec := engine.DefaultConfig()
	return &Config{
		Kubernetes:             configoptional.Default(k8s.DefaultConfig()),
		Webhooks:               configoptional.Default(defaultWebhooksConfig()),
		ProductionEnvironments: ec.Production,
		EmitInterval:           15 * time.Second,
		LeadTimeBuckets:        seconds(ec.LeadTimeBounds),
		RecoveryTimeBuckets:    seconds(ec.RecoveryTimeBounds),
		IncidentWindow:         ec.IncidentWindow,
		DedupWindow:            ec.DedupWindow,
		MetricsBuilderConfig:   metadata.DefaultMetricsBuilderConfig(),
	}
}

// Validate checks the settings that the nested configs do not check
// themselves. Errors name the key.
func (cfg *Config) Validate() error {
	var errs []error
	if !cfg.Kubernetes.HasValue() && !cfg.Webhooks.HasValue() {
		errs = append(errs, errors.New("no source configured: add a kubernetes or a webhooks section"))
	}
	if err := validateServices(cfg.Services); err != nil {
		errs = append(errs, err)
	}
	for i, p := range cfg.ProductionEnvironments {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("production_environments[%d]: %q is not a valid glob pattern", i, p))
		}
	}
	if cfg.EmitInterval <= 0 {
		errs = append(errs, fmt.Errorf("emit_interval: must be positive, got %s", cfg.EmitInterval))
	}
	if err := validBuckets(cfg.LeadTimeBuckets); err != nil {
		errs = append(errs, fmt.Errorf("lead_time_buckets: %w", err))
	}
	if err := validBuckets(cfg.RecoveryTimeBuckets); err != nil {
		errs = append(errs, fmt.Errorf("recovery_time_buckets: %w", err))
	}
	if cfg.IncidentWindow <= 0 {
		errs = append(errs, fmt.Errorf("incident_window: must be positive, got %s", cfg.IncidentWindow))
	}
	if cfg.DedupWindow <= 0 {
		errs = append(errs, fmt.Errorf("dedup_window: must be positive, got %s", cfg.DedupWindow))
	}
	return errors.Join(errs...)
}

func validBuckets(b []time.Duration) error {
	if len(b) == 0 {
		return errors.New("at least one bucket bound is required")
	}
	for i := range b {
		if b[i] <= 0 {
			return fmt.Errorf("bound %s is not positive", b[i])
		}
		if i > 0 && b[i] <= b[i-1] {
			return fmt.Errorf("bounds must increase (%s after %s)", b[i], b[i-1])
		}
	}
	return nil
}

// engineConfig translates the receiver settings into the engine's.
func (cfg *Config) engineConfig() engine.Config {
	ec := engine.DefaultConfig()
	ec.LeadTimeBounds = boundsSeconds(cfg.LeadTimeBuckets)
	ec.RecoveryTimeBounds = boundsSeconds(cfg.RecoveryTimeBuckets)
	ec.IncidentWindow = cfg.IncidentWindow
	ec.DedupWindow = cfg.DedupWindow
	ec.Production = cfg.ProductionEnvironments
	return ec
}

func seconds(b []float64) []time.Duration {
	out := make([]time.Duration, len(b))
	for i, s := range b {
		out[i] = time.Duration(s * float64(time.Second))
	}
	return out
}

func boundsSeconds(b []time.Duration) []float64 {
	out := make([]float64, len(b))
	for i, d := range b {
		out[i] = d.Seconds()
	}
	return out
}
