package crdwatch

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// NewClient builds a dynamic client from the kubernetes section's auth
// settings, as the Kubernetes source connects. Custom resources are served
// as JSON only (no protobuf), hence a client of its own.
func NewClient(kc *k8s.Config) (dynamic.Interface, error) {
	var rc *rest.Config
	var err error
	switch kc.AuthType {
	case k8s.AuthTypeServiceAccount:
		rc, err = rest.InClusterConfig()
	case k8s.AuthTypeKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if kc.KubeConfig != "" {
			rules.ExplicitPath = kc.KubeConfig
		}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: kc.Context}).ClientConfig()
	default:
		err = fmt.Errorf("unknown auth_type %q", kc.AuthType)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client (auth_type %s): %w", kc.AuthType, err)
	}
	rc.UserAgent = "otelcol-dora"
	return dynamic.NewForConfig(rc)
}
