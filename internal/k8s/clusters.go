package k8s

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"
)

// ClusterConfig is one API server that a central receiver watches directly
// (the kubernetes::clusters list): its name, which every series of its
// Deployments carries as the cluster attribute, and how to reach it. The
// kubernetes section's other settings (namespaces, label_selector,
// environment, commit, team_key) apply to every cluster; namespaces,
// label_selector and the default environment can be set per cluster.
type ClusterConfig struct {
	// Name is the cluster attribute of the cluster's series (k8s.cluster.name
	// with semantic_conventions); unique in the list.
	Name string `mapstructure:"name"`
	// AuthType is kubeConfig (the default for a list entry) or
	// serviceAccount, for the one cluster the receiver runs in.
	AuthType string `mapstructure:"auth_type"`
	// KubeConfig and Context, as for the single-cluster form: empty
	// kubeconfig means $KUBECONFIG or ~/.kube/config, empty context the
	// kubeconfig's current one.
	KubeConfig string `mapstructure:"kubeconfig"`
	Context    string `mapstructure:"context"`
	// Namespaces and LabelSelector, when set, replace the section's for
	// this cluster.
	Namespaces    []string `mapstructure:"namespaces"`
	LabelSelector string   `mapstructure:"label_selector"`
	// DefaultEnvironment, when set, replaces environment::default for this
	// cluster (a staging cluster whose namespaces are named as in
	// production).
	DefaultEnvironment string `mapstructure:"default_environment"`
}

// MaxClusterNameLength bounds a cluster's name (an attribute value on every
// series of the cluster).
const MaxClusterNameLength = 100

// clusterName is what a cluster may be called: the characters the managed
// Kubernetes services allow in cluster names (EKS, GKE, AKS), so that the
// name can be the provider's. It is also a storage key element: no "/".
var clusterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateClusterName checks a cluster name; the error does not name the
// key (callers do).
func ValidateClusterName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case len(name) > MaxClusterNameLength:
		return fmt.Errorf("%q is longer than %d bytes", name, MaxClusterNameLength)
	case !clusterName.MatchString(name):
		return fmt.Errorf("%q is not a cluster name (letters, digits, '.', '_' and '-', starting with a letter or digit)", name)
	}
	return nil
}

// validateClusters checks the clusters list; errors name the key relative
// to the kubernetes section.
func (c *Config) validateClusters() []error {
	if len(c.Clusters) == 0 {
		return nil
	}
	var errs []error
	// The section's own connection settings would be ignored: say so
	// rather than watch another API server than the user means.
	for _, set := range []struct {
		key string
		set bool
	}{{"auth_type", c.AuthType == AuthTypeKubeConfig}, {"kubeconfig", c.KubeConfig != ""}, {"context", c.Context != ""}} {
		if set.set {
			errs = append(errs, fmt.Errorf("%s: with clusters, each cluster's connection is set in its entry (clusters[i]::auth_type, kubeconfig, context); remove %s from the kubernetes section", set.key, set.key))
		}
	}
	names := map[string]int{}
	type endpoint struct{ authType, kubeconfig, context string }
	endpoints := map[endpoint]int{}
	inCluster := -1
	for i, cl := range c.Clusters {
		key := fmt.Sprintf("clusters[%d]::", i)
		if err := ValidateClusterName(cl.Name); err != nil {
			errs = append(errs, fmt.Errorf("%sname: %w", key, err))
		} else if j, dup := names[cl.Name]; dup {
			errs = append(errs, fmt.Errorf("%sname: %q is also clusters[%d]'s name; each cluster needs its own", key, cl.Name, j))
		} else {
			names[cl.Name] = i
		}
		authType := cl.authType()
		if err := ValidateAuth(authType, cl.KubeConfig, cl.Context); err != nil {
			errs = append(errs, fmt.Errorf("%s%w", key, err))
			continue
		}
		if authType == AuthTypeServiceAccount {
			if inCluster >= 0 {
				errs = append(errs, fmt.Errorf("%sauth_type: only one cluster is the one the receiver runs in (clusters[%d] is already %s)", key, inCluster, AuthTypeServiceAccount))
			}
			inCluster = i
		} else if err := checkKubeconfig(cl.KubeConfig, cl.Context); err != nil {
			errs = append(errs, fmt.Errorf("%s%w", key, err))
		}
		ep := endpoint{authType, cl.KubeConfig, cl.Context}
		if cl.KubeConfig != "" {
			if abs, err := filepath.Abs(cl.KubeConfig); err == nil {
				ep.kubeconfig = abs
			}
		}
		// The same API server twice would count every rollout twice,
		// under two names.
		if j, dup := endpoints[ep]; dup {
			errs = append(errs, fmt.Errorf("%scontext: clusters[%d] already uses this kubeconfig and context", key, j))
		} else {
			endpoints[ep] = i
		}
		for j, ns := range cl.Namespaces {
			if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
				errs = append(errs, fmt.Errorf("%snamespaces[%d]: %q is not a namespace name: %s", key, j, ns, msgs[0]))
			}
		}
		if err := validateSelector(cl.LabelSelector); err != nil {
			errs = append(errs, fmt.Errorf("%slabel_selector: %w", key, err))
		}
	}
	return errs
}

// checkKubeconfig reads the kubeconfig file (when named) and checks that
// the context exists in it, so that a typo fails at start rather than as a
// cluster that never syncs.
func checkKubeconfig(path, context string) error {
	if path == "" {
		// $KUBECONFIG or ~/.kube/config, read at start as kubectl does.
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return fmt.Errorf("kubeconfig: %s: %w", path, err)
	}
	if context == "" {
		if kc.CurrentContext == "" {
			return fmt.Errorf("context: %s has no current-context; name one", path)
		}
		return nil
	}
	if _, ok := kc.Contexts[context]; !ok {
		return fmt.Errorf("context: %q is not a context of %s", context, path)
	}
	return nil
}

func (cl *ClusterConfig) authType() string {
	if cl.AuthType == "" {
		return AuthTypeKubeConfig
	}
	return cl.AuthType
}

// ForCluster is the configuration of the source watching cl: the section's
// settings with cl's connection and overrides.
func (c *Config) ForCluster(cl ClusterConfig) *Config {
	out := *c
	out.Clusters = nil
	out.AuthType, out.KubeConfig, out.Context = cl.authType(), cl.KubeConfig, cl.Context
	if len(cl.Namespaces) > 0 {
		out.Namespaces = cl.Namespaces
	}
	if cl.LabelSelector != "" {
		out.LabelSelector = cl.LabelSelector
	}
	if cl.DefaultEnvironment != "" {
		out.Environment.Default = cl.DefaultEnvironment
	}
	return &out
}

// Watched is one API server to watch: Name is empty for the single-cluster
// form.
type Watched struct {
	Name   string
	Config *Config
}

// WatchedClusters lists the API servers the section watches: each of
// clusters, or the section's own connection.
func (c *Config) WatchedClusters() []Watched {
	if len(c.Clusters) == 0 {
		return []Watched{{Config: c}}
	}
	out := make([]Watched, len(c.Clusters))
	for i, cl := range c.Clusters {
		out[i] = Watched{Name: cl.Name, Config: c.ForCluster(cl)}
	}
	return out
}
