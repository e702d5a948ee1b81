package dorareceiver

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
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
	// Team owns the service: the team attribute of its series, before any
	// other source of a team (see TeamsConfig).
	Team string `mapstructure:"team"`
	// Paths are the files of the repository that belong to the service
	// (globs with **, see attribution.go): in a monorepo a commit is a
	// change of the service only when it touches one of them. Empty: every
	// commit of the repository.
	Paths []string `mapstructure:"paths"`
}

// serviceMap resolves the service and the team of events.
type serviceMap struct {
	// byRepo maps a repository (lower case) to its service; a monorepo's
	// entry has no Deployment: the repository alone does not tell which of
	// its services an event is about.
	byRepo map[string]ServiceMapping
	// monorepos maps a repository with several services to its entries.
	monorepos map[string][]ServiceMapping
	// namespaces maps a deployment name to the namespaces the entries
	// naming it give, in config order, without repeats.
	namespaces map[string][]string
	// envOf is the environment of a namespace as the Kubernetes source
	// derives it (its namespace rules, else its default); nil: none known.
	envOf func(namespace string) string
	teams teamResolver
}

func newServiceMap(m []ServiceMapping, teams TeamsConfig) serviceMap {
	out := serviceMap{
		byRepo:     map[string]ServiceMapping{},
		monorepos:  map[string][]ServiceMapping{},
		namespaces: map[string][]string{},
		teams:      newTeamResolver(m, teams),
	}
	for _, s := range m {
		if !slices.Contains(out.namespaces[s.Deployment], s.Namespace) {
			out.namespaces[s.Deployment] = append(out.namespaces[s.Deployment], s.Namespace)
		}
		k := strings.ToLower(s.Repository)
		if first, dup := out.byRepo[k]; dup {
			if len(out.monorepos[k]) == 0 {
				out.monorepos[k] = []ServiceMapping{first}
			}
			out.monorepos[k] = append(out.monorepos[k], s)
			out.byRepo[k] = ServiceMapping{}
			continue
		}
		out.byRepo[k] = s
	}
	return out
}

// withNamespaceEnvironments lets resolve tell the namespaces of one
// deployment apart by environment, with the Kubernetes source's rules.
func (m serviceMap) withNamespaceEnvironments(env k8s.EnvironmentConfig) serviceMap {
	m.envOf = func(namespace string) string {
		for _, r := range env.Namespaces {
			if ok, _ := path.Match(r.Pattern, namespace); ok {
				return r.Environment
			}
		}
		return env.Default
	}
	return m
}

// kubernetesEnvironments is the Kubernetes source's environment rules, its
// defaults when the source is off (Get, unlike GetOrInsertDefault, does not
// turn it on).
func kubernetesEnvironments(cfg *Config) k8s.EnvironmentConfig {
	if kc := cfg.Kubernetes.Get(); kc != nil {
		return kc.Environment
	}
	return k8s.DefaultConfig().Environment
}

// resolve fills the service of an event that names only a repository (the
// configured mapping; else the service its sender hints at, which also
// picks one of a monorepo's services; else the repository's last path
// element), or the namespace of one that names a service but no namespace
// (namespaceOf), then its team.
func (m serviceMap) resolve(ev *event.Event) {
	defer m.teams.resolve(ev)
	if ev.Service.Name == "" {
		m.resolveRepository(ev)
	}
	if ev.Service.Name != "" && ev.Service.Namespace == "" {
		ev.Service.Namespace = m.namespaceOf(ev.Service.Name, ev.Service.Environment)
	}
}

// resolveRepository names the service of an event that names none.
func (m serviceMap) resolveRepository(ev *event.Event) {
	k := strings.ToLower(ev.Repository)
	if s, ok := m.byRepo[k]; ok && s.Deployment != "" && ev.Repository != "" {
		ev.Service.Namespace, ev.Service.Name = s.Namespace, s.Deployment
		return
	}
	if ev.ServiceHint != "" {
		for _, s := range m.monorepos[k] {
			if strings.EqualFold(s.Deployment, ev.ServiceHint) {
				ev.Service.Namespace, ev.Service.Name = s.Namespace, s.Deployment
				return
			}
		}
		ev.Service.Name = ev.ServiceHint
		return
	}
	if ev.Repository != "" {
		ev.Service.Name = path.Base(ev.Repository)
	}
}

// namespaceOf is the namespace of a service that a source names without
// one (CDEvents subjects, Alertmanager and PagerDuty services, the generic
// service, a span's service.name): the namespace of the services entries
// whose deployment is that name, when they give one; when they give
// several, the one whose environment (by the Kubernetes namespace rules)
// is the event's, when exactly one is. Else none: guessing would move the
// event onto another service's series.
func (m serviceMap) namespaceOf(name, environment string) string {
	candidates := m.namespaces[name]
	if len(candidates) == 1 {
		return candidates[0]
	}
	if m.envOf == nil || environment == "" {
		return ""
	}
	found := ""
	for _, ns := range candidates {
		if m.envOf(ns) != environment {
			continue
		}
		if found != "" {
			return ""
		}
		found = ns
	}
	return found
}

func validateServices(m []ServiceMapping) error {
	var errs []error
	first := map[string]int{}
	type repoService struct{ repo, namespace, deployment string }
	services := map[repoService]bool{}
	for i, s := range m {
		if s.Repository == "" {
			errs = append(errs, fmt.Errorf("services[%d]::repository: must not be empty", i))
		}
		if s.Deployment == "" {
			errs = append(errs, fmt.Errorf("services[%d]::deployment: must not be empty", i))
		}
		if err := engine.ValidatePathPatterns(s.Paths); err != nil {
			errs = append(errs, prefixErrors(fmt.Sprintf("services[%d]::paths", i), err))
		}
		k := strings.ToLower(s.Repository)
		rs := repoService{k, s.Namespace, s.Deployment}
		twice := services[rs]
		services[rs] = true
		j, seen := first[k]
		if !seen {
			first[k] = i
			continue
		}
		// A monorepo: one entry per service, each with its paths.
		switch {
		case len(s.Paths) == 0 || len(m[j].Paths) == 0:
			errs = append(errs, fmt.Errorf("services[%d]::repository: %q is mapped twice; a repository with several services (a monorepo) needs paths on each of its entries", i, s.Repository))
		case twice:
			errs = append(errs, fmt.Errorf("services[%d]::deployment: %q is mapped twice for %q; list all its paths in one entry", i, s.Deployment, s.Repository))
		}
	}
	errs = append(errs, validateServiceTeams(m)...)
	return errors.Join(errs...)
}
