package dorareceiver

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// TeamsConfig says where the optional team attribute of a service comes
// from. The first that applies wins:
//  1. the team of the service's entry in services;
//  2. Static, by "<namespace>/<deployment>", then by "<deployment>";
//  3. for Kubernetes, the kubernetes::team_key label or annotation of the
//     Deployment;
//  4. for events that name a repository, its owner (everything before the
//     repository's name: "acme" for acme/api, "acme/platform" for GitLab's
//     acme/platform/billing), when FromRepositoryOwner is set. A team found
//     this way is a fallback: it never replaces a team the service got
//     otherwise.
//
// Without any of them a service has no team attribute.
type TeamsConfig struct {
	// Static maps services to teams: keys are "<namespace>/<deployment>"
	// or "<deployment>" (any namespace).
	Static map[string]string `mapstructure:"static"`
	// FromRepositoryOwner takes the repository owner as the team of
	// services that have no other.
	FromRepositoryOwner bool `mapstructure:"from_repository_owner"`
}

func (c *TeamsConfig) validate() error {
	var errs []error
	keys := make([]string, 0, len(c.Static))
	for k := range c.Static {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ns, name, namespaced := strings.Cut(k, "/")
		if !namespaced {
			ns, name = "", k
		}
		switch {
		case name == "" || (namespaced && ns == "") || strings.Contains(name, "/"):
			errs = append(errs, fmt.Errorf("teams::static::%s: the key must be <namespace>/<deployment> or <deployment>", k))
		case strings.TrimSpace(c.Static[k]) == "":
			errs = append(errs, fmt.Errorf("teams::static::%s: the team must not be empty", k))
		}
	}
	return errors.Join(errs...)
}

// validateServiceTeams reports services entries that give one service two
// different teams.
func validateServiceTeams(m []ServiceMapping) []error {
	var errs []error
	first := map[engine.ServiceKey]int{}
	for i, s := range m {
		if s.Team == "" {
			continue
		}
		if strings.TrimSpace(s.Team) == "" {
			errs = append(errs, fmt.Errorf("services[%d]::team: must not be blank", i))
			continue
		}
		k := engine.ServiceKey{Namespace: s.Namespace, Name: s.Deployment}
		j, ok := first[k]
		if !ok {
			first[k] = i
			continue
		}
		if m[j].Team != s.Team {
			errs = append(errs, fmt.Errorf("services[%d]::team: %q, but services[%d] gives %s/%s the team %q", i, s.Team, j, s.Namespace, s.Deployment, m[j].Team))
		}
	}
	return errs
}

// teamResolver sets the team of events (see TeamsConfig).
type teamResolver struct {
	services  map[engine.ServiceKey]string
	static    map[string]string
	fromOwner bool
}

func newTeamResolver(m []ServiceMapping, c TeamsConfig) teamResolver {
	r := teamResolver{services: map[engine.ServiceKey]string{}, static: c.Static, fromOwner: c.FromRepositoryOwner}
	for _, s := range m {
		k := engine.ServiceKey{Namespace: s.Namespace, Name: s.Deployment}
		if _, ok := r.services[k]; !ok && s.Team != "" {
			r.services[k] = s.Team
		}
	}
	return r
}

// resolve sets ev.Team: the first of the services entry's team, the static
// map, the team the source gave (Kubernetes' team key), the repository
// owner (a fallback).
func (r teamResolver) resolve(ev *event.Event) {
	svc := ev.Service
	if svc.Name == "" {
		return
	}
	if t, ok := r.services[engine.ServiceKey{Namespace: svc.Namespace, Name: svc.Name}]; ok {
		ev.Team, ev.TeamFallback = t, false
		return
	}
	if t, ok := r.static[svc.Namespace+"/"+svc.Name]; ok && svc.Namespace != "" {
		ev.Team, ev.TeamFallback = t, false
		return
	}
	if t, ok := r.static[svc.Name]; ok {
		ev.Team, ev.TeamFallback = t, false
		return
	}
	if ev.Team != "" {
		return
	}
	if r.fromOwner && ev.Repository != "" {
		if owner := path.Dir(ev.Repository); owner != "." && owner != "/" {
			ev.Team, ev.TeamFallback = owner, true
		}
	}
}

// servicePaths gives the engine the path filters of the services entries,
// by service. A service mapped from several repositories has the paths of
// all its entries, and none when one of its entries has none (all of that
// repository's commits are its changes).
func servicePaths(m []ServiceMapping) map[engine.ServiceKey][]string {
	out := map[engine.ServiceKey][]string{}
	unfiltered := map[engine.ServiceKey]bool{}
	for _, s := range m {
		k := engine.ServiceKey{Namespace: s.Namespace, Name: s.Deployment}
		if len(s.Paths) == 0 {
			unfiltered[k] = true
			continue
		}
		for _, p := range s.Paths {
			if !slices.Contains(out[k], p) {
				out[k] = append(out[k], p)
			}
		}
	}
	for k := range unfiltered {
		delete(out, k)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
