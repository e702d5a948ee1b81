package doraconnector

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"

	"github.com/otelcol-dora/dorareceiver/internal/cicdspans"
)

// Config is the dora connector's configuration.
type Config struct {
	// Receiver is the component ID of the dora receiver that counts the
	// spans (dora, dora/ci, ...): it must be in a pipeline of the same
	// collector.
	Receiver component.ID `mapstructure:"receiver"`
	// DeploymentPipelines, DeploymentTasks and DefaultEnvironment say which
	// spans are deployments, as the keys of the same names of the
	// receiver's webhooks::otlp source (docs/sources/otlp-spans.md).
	DeploymentPipelines []string `mapstructure:"deployment_pipelines"`
	DeploymentTasks     []string `mapstructure:"deployment_tasks"`
	DefaultEnvironment  string   `mapstructure:"default_environment"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// receiverType is the type the receiver setting must name.
var receiverType = component.MustNewType("dora")

func createDefaultConfig() component.Config {
	d := cicdspans.DefaultConfig()
	return &Config{Receiver: component.NewID(receiverType), DefaultEnvironment: d.DefaultEnvironment}
}

// spansConfig is the classification part of the otlp source's config.
func (c *Config) spansConfig() cicdspans.Config {
	return cicdspans.Config{
		Path:                "(connector)",
		DeploymentPipelines: c.DeploymentPipelines,
		DeploymentTasks:     c.DeploymentTasks,
		DefaultEnvironment:  c.DefaultEnvironment,
	}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if c.Receiver.Type() != receiverType {
		errs = append(errs, fmt.Errorf("receiver: %q is not a dora receiver (want dora or dora/<name>)", c.Receiver.String()))
	}
	sc := c.spansConfig()
	if err := sc.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
