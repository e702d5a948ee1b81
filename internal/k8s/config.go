// Package k8s is the Kubernetes source: it watches apps/v1 Deployments with
// client-go shared informers and turns their rollouts into engine events.
package k8s

import (
	"errors"
	"fmt"
	"path"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Auth types, as in collector-contrib's Kubernetes receivers.
const (
	// AuthTypeServiceAccount uses the pod's service account (in-cluster).
	AuthTypeServiceAccount = "serviceAccount"
	// AuthTypeKubeConfig uses a kubeconfig file, like kubectl.
	AuthTypeKubeConfig = "kubeConfig"
)

// Default keys for the commit a Deployment runs. Ours first, then the keys
// OpenShift builds and OCI image labels already carry, so that many
// clusters work without annotating anything.
var (
	DefaultCommitSHAKeys  = []string{"dora.otelcol.dev/commit-sha", "io.openshift.build.commit.id", "org.opencontainers.image.revision"}
	DefaultCommitTimeKeys = []string{"dora.otelcol.dev/commit-time", "io.openshift.build.commit.date"}
)

// DefaultEnvironmentKey is the label or annotation that names a
// Deployment's environment, overriding the namespace rules.
const DefaultEnvironmentKey = "dora.otelcol.dev/environment"

// DefaultTeamKey is the label or annotation that names the team owning a
// Deployment.
const DefaultTeamKey = "dora.otelcol.dev/team"

// Config configures the Kubernetes source.
type Config struct {
	// AuthType is serviceAccount (in-cluster, the default) or kubeConfig.
	AuthType string `mapstructure:"auth_type"`
	// KubeConfig is the kubeconfig file for auth_type kubeConfig; empty
	// means $KUBECONFIG or ~/.kube/config, as kubectl does.
	KubeConfig string `mapstructure:"kubeconfig"`
	// Context selects a kubeconfig context; empty means the current one.
	Context string `mapstructure:"context"`
	// Clusters, when set, are the API servers a central receiver watches,
	// each named (clusters.go); auth_type, kubeconfig and context are then
	// set per cluster.
	Clusters []ClusterConfig `mapstructure:"clusters"`
	// Namespaces to watch; empty watches all namespaces.
	Namespaces []string `mapstructure:"namespaces"`
	// LabelSelector restricts the watched Deployments (Kubernetes syntax).
	LabelSelector string `mapstructure:"label_selector"`
	// Environment says how a Deployment maps to an environment.
	Environment EnvironmentConfig `mapstructure:"environment"`
	// Commit says where the deployed commit is found.
	Commit CommitConfig `mapstructure:"commit"`
	// TeamKey is the label or annotation that names the team owning a
	// Deployment, looked up like the environment key (the Deployment's
	// annotations, labels, then its pod template's); empty disables it.
	// The receiver's services and teams::static settings take precedence.
	TeamKey string `mapstructure:"team_key"`
	// ImportHistory imports the watched Deployments' past rollouts from
	// their ReplicaSets when the receiver imports history (history.go,
	// docs/history.md); on by default: it needs no token.
	ImportHistory bool `mapstructure:"import_history"`
}

// EnvironmentConfig maps Deployments to environments. The first that
// applies wins: the Key label or annotation on the Deployment, the first
// namespace rule that matches, Default.
type EnvironmentConfig struct {
	Key        string          `mapstructure:"key"`
	Namespaces []NamespaceRule `mapstructure:"namespaces"`
	Default    string          `mapstructure:"default"`
}

// NamespaceRule maps namespaces matching Pattern (shell glob: *, ?, [..])
// to Environment.
type NamespaceRule struct {
	Pattern     string `mapstructure:"pattern"`
	Environment string `mapstructure:"environment"`
}

// CommitConfig names the annotation or label keys that carry the deployed
// commit. Each key is looked up on the Deployment's annotations, its labels,
// then its pod template's annotations and labels.
type CommitConfig struct {
	SHAKeys  []string `mapstructure:"sha_keys"`
	TimeKeys []string `mapstructure:"time_keys"`
	// ImageTagFallback takes the first container's image tag as the commit
	// SHA when no key is set and the tag looks like one (7 to 40 hex digits,
	// optionally after "sha-" or "git-").
	ImageTagFallback bool `mapstructure:"image_tag_fallback"`
}

// DefaultConfig is the source's configuration when the user sets nothing.
func DefaultConfig() Config {
	return Config{
		AuthType: AuthTypeServiceAccount,
		Environment: EnvironmentConfig{
			Key:     DefaultEnvironmentKey,
			Default: "production",
		},
		Commit: CommitConfig{
			SHAKeys:          append([]string(nil), DefaultCommitSHAKeys...),
			TimeKeys:         append([]string(nil), DefaultCommitTimeKeys...),
			ImageTagFallback: true,
		},
		TeamKey:       DefaultTeamKey,
		ImportHistory: true,
	}
}

// ValidateAuth checks the settings that reach the API server (auth_type,
// kubeconfig, context); its error names auth_type.
func ValidateAuth(authType, kubeConfig, context string) error {
	switch authType {
	case AuthTypeServiceAccount:
		if kubeConfig != "" || context != "" {
			return fmt.Errorf("auth_type: %q ignores kubeconfig and context; set auth_type: %s to use them", authType, AuthTypeKubeConfig)
		}
	case AuthTypeKubeConfig:
	default:
		return fmt.Errorf("auth_type: %q is not one of %s, %s", authType, AuthTypeServiceAccount, AuthTypeKubeConfig)
	}
	return nil
}

// Validate reports problems naming the offending key, relative to the
// kubernetes section.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Clusters) == 0 {
		if err := ValidateAuth(c.AuthType, c.KubeConfig, c.Context); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.validateClusters()...)
	for i, ns := range c.Namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("namespaces[%d]: %q is not a namespace name: %s", i, ns, msgs[0]))
		}
	}
	if err := validateSelector(c.LabelSelector); err != nil {
		errs = append(errs, fmt.Errorf("label_selector: %w", err))
	}
	if c.Environment.Default == "" {
		errs = append(errs, errors.New("environment::default: must not be empty (every deployment needs an environment)"))
	}
	for i, r := range c.Environment.Namespaces {
		if _, err := path.Match(r.Pattern, ""); err != nil || r.Pattern == "" {
			errs = append(errs, fmt.Errorf("environment::namespaces[%d]::pattern: %q is not a valid glob pattern", i, r.Pattern))
		}
		if r.Environment == "" {
			errs = append(errs, fmt.Errorf("environment::namespaces[%d]::environment: must not be empty", i))
		}
	}
	for i, k := range c.Commit.SHAKeys {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("commit::sha_keys[%d]: %q is not a label or annotation key: %s", i, k, msgs[0]))
		}
	}
	for i, k := range c.Commit.TimeKeys {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("commit::time_keys[%d]: %q is not a label or annotation key: %s", i, k, msgs[0]))
		}
	}
	if c.Environment.Key != "" {
		if msgs := validation.IsQualifiedName(c.Environment.Key); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("environment::key: %q is not a label or annotation key: %s", c.Environment.Key, msgs[0]))
		}
	}
	if c.TeamKey != "" {
		if msgs := validation.IsQualifiedName(c.TeamKey); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("team_key: %q is not a label or annotation key: %s", c.TeamKey, msgs[0]))
		}
	}
	return errors.Join(errs...)
}

func validateSelector(s string) error {
	_, err := labels.Parse(s)
	return err
}

// environmentFor maps a namespace (and the Deployment's own key value, if
// any) to an environment.
func (c *EnvironmentConfig) environmentFor(namespace, explicit string) string {
	if explicit != "" {
		return explicit
	}
	for _, r := range c.Namespaces {
		if ok, _ := path.Match(r.Pattern, namespace); ok {
			return r.Environment
		}
	}
	return c.Default
}
