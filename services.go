package dorareceiver

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// ServiceMapping ties a source repository to the service it deploys, so
// that deployments reported by CI for the repository and rollouts seen in
// Kubernetes are the same series (and the same deployment).
type ServiceMapping struct {
	// Repository is "org/repo" (GitLab: "group/project"), case-insensitive.
	Repository string `mapstructure:"repository"`
	Namespace  string `mapstructure:"namespace"`
	// Deployment is the service name, the deployment attribute.
	Deployment string `mapstructure:"deployment"`
}

type serviceMap map[string]ServiceMapping

func newServiceMap(m []ServiceMapping) serviceMap {
	out := serviceMap{}
	for _, s := range m {
		out[strings.ToLower(s.Repository)] = s
	}
	return out
}

// resolve fills the service of an event that names only a repository: the
// configured mapping, else the repository's last path element.
func (m serviceMap) resolve(ev *event.Event) {
	if ev.Service.Name != "" || ev.Repository == "" {
		return
	}
	if s, ok := m[strings.ToLower(ev.Repository)]; ok {
		ev.Service.Namespace, ev.Service.Name = s.Namespace, s.Deployment
		return
	}
	ev.Service.Name = path.Base(ev.Repository)
}

func validateServices(m []ServiceMapping) error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range m {
		if s.Repository == "" {
			errs = append(errs, fmt.Errorf("services[%d]::repository: must not be empty", i))
		}
		if s.Deployment == "" {
			errs = append(errs, fmt.Errorf("services[%d]::deployment: must not be empty", i))
		}
		k := strings.ToLower(s.Repository)
		if seen[k] {
			errs = append(errs, fmt.Errorf("services[%d]::repository: %q is mapped twice", i, s.Repository))
		}
		seen[k] = true
	}
	return errors.Join(errs...)
}
