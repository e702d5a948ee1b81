package history

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/collector/config/configopaque"
)

// SourceConfig is the `history` block that every source able to import
// its history embeds in its own configuration (webhooks::pagerduty::history,
// webhooks::github::history, ...): whether it imports, the API token (the
// value, ${env:NAME} for the environment, or a file), the API's base URL
// and how many requests one run may make.
type SourceConfig struct {
	// Enabled turns the source's import on (the default; a source that
	// needs a token imports only once one is set).
	Enabled bool `mapstructure:"enabled"`
	// Token is the API token; write ${env:NAME} to read it from the
	// environment. TokenFile names a file holding it instead (a mounted
	// Secret); its surrounding whitespace is ignored.
	Token     configopaque.String `mapstructure:"token"`
	TokenFile string              `mapstructure:"token_file"`
	// Endpoint is the API's base URL; empty: the provider's public API.
	Endpoint string `mapstructure:"endpoint"`
	// RequestBudget is the most API requests one import run of the source
	// makes (0: no limit); when spent, the import pauses and resumes from
	// its saved progress at the next run (ErrBudgetSpent).
	RequestBudget int `mapstructure:"request_budget"`
}

// DefaultSourceConfig is the block's default: enabled.
func DefaultSourceConfig() SourceConfig { return SourceConfig{Enabled: true} }

// Validate checks the block; errors name the key under prefix (for
// example "history::").
func (c *SourceConfig) Validate(prefix string) error {
	var errs []error
	if c.Token != "" && c.TokenFile != "" {
		errs = append(errs, fmt.Errorf("%stoken_file: set either token or token_file, not both", prefix))
	}
	if c.RequestBudget < 0 {
		errs = append(errs, fmt.Errorf("%srequest_budget: must not be negative (0 is no limit), got %d", prefix, c.RequestBudget))
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		errs = append(errs, fmt.Errorf("%sendpoint: %q must be an http:// or https:// URL", prefix, c.Endpoint))
	}
	return errors.Join(errs...)
}

// HasToken reports whether a token or token file is set.
func (c *SourceConfig) HasToken() bool { return c.Token != "" || c.TokenFile != "" }

// ReadToken returns the token, from token_file when set. The error names
// the key, never the token.
func (c *SourceConfig) ReadToken(prefix string) (string, error) {
	if c.TokenFile == "" {
		return strings.TrimSpace(string(c.Token)), nil
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("%stoken_file: %w", prefix, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%stoken_file: %s is empty", prefix, c.TokenFile)
	}
	return t, nil
}
