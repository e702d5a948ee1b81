package engine

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Attribution (METRICS.md, "Team" and "Monorepo"): the team that owns a
// service, and which commits of a repository belong to which of the
// services deployed from it.

// ServiceKey names a service in every environment: the key of the path
// filters (Config.ServicePaths).
type ServiceKey struct {
	Namespace string
	Name      string
}

func keyOf(svc event.Service) ServiceKey {
	return ServiceKey{Namespace: svc.Namespace, Name: svc.Name}
}

// teamInfo is the team a service's events named last; fallback marks a
// guess (the repository owner) that a named team is not replaced by.
type teamInfo struct {
	name     string
	fallback bool
}

// noteTeam remembers the team of the service of a deployment or incident
// event: the latest non-empty one, except that a fallback never replaces a
// team that is not one. Teams are not part of a service's identity, so a
// team that changes moves the service's series to the new team attribute
// without splitting its state.
func (e *Engine) noteTeam(ev event.Event) {
	if ev.Team == "" || ev.Service.Name == "" {
		return
	}
	switch ev.Kind {
	case event.DeploymentStarted, event.DeploymentSucceeded, event.DeploymentFailed, event.DeploymentRolledBack,
		event.IncidentOpened, event.IncidentResolved:
	default:
		// Change events name a repository's service only by guess.
		return
	}
	cur, ok := e.teams[ev.Service]
	if ok && ev.TeamFallback && !cur.fallback {
		return
	}
	next := teamInfo{name: ev.Team, fallback: ev.TeamFallback}
	if cur != next {
		e.teams[ev.Service] = next
		// The attribute of every series of the service changes.
		e.version++
	}
}

// teamOf is the team attribute of a service's series; empty when unknown.
func (e *Engine) teamOf(svc event.Service) string { return e.teams[svc].name }

// pathFilters holds the configured path patterns of the services deployed
// from a monorepo, indexed so that a commit stores only the indices of the
// filters its paths match, not the paths themselves.
type pathFilters struct {
	keys     []ServiceKey
	patterns [][]string
	index    map[ServiceKey]int32
}

func newPathFilters(m map[ServiceKey][]string) pathFilters {
	f := pathFilters{index: map[ServiceKey]int32{}}
	for k, ps := range m {
		if len(ps) > 0 {
			f.keys = append(f.keys, k)
		}
	}
	slices.SortFunc(f.keys, func(a, b ServiceKey) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for i, k := range f.keys {
		f.index[k] = int32(i)
		f.patterns = append(f.patterns, slices.Clone(m[k]))
	}
	return f
}

// touched returns the indices of the filters that match one of paths.
func (f *pathFilters) touched(paths []string) []int32 {
	var out []int32
	for i, ps := range f.patterns {
		if matchesAny(ps, paths) {
			out = append(out, int32(i))
		}
	}
	return out
}

func matchesAny(patterns, paths []string) bool {
	for _, p := range paths {
		for _, pat := range patterns {
			if MatchPath(pat, p) {
				return true
			}
		}
	}
	return false
}

// notePaths records which service path filters a commit's paths match. An
// empty list is unknown (a source that lists no files for a merge commit);
// the first report with paths wins.
func (e *Engine) notePaths(c *commit, paths []string) {
	if c.pathsKnown() || len(paths) == 0 || len(e.filters.keys) == 0 {
		return
	}
	x := c.more()
	x.pathsKnown = true
	x.touches = e.filters.touched(paths)
}

// belongs reports whether a commit is a change of svc: always, unless svc
// has path filters and the commit's paths are known and match none of
// them. c is nil for a commit known only from a deployment event.
func (e *Engine) belongs(svc event.Service, c *commit) bool {
	if c == nil || !c.pathsKnown() {
		return true
	}
	i, ok := e.filters.index[keyOf(svc)]
	if !ok {
		return true
	}
	return slices.Contains(c.touches(), i)
}

// ValidatePathPatterns checks path patterns: not empty, and each segment a
// valid shell glob (see MatchPath).
func ValidatePathPatterns(patterns []string) error {
	var errs []error
	for i, p := range patterns {
		if strings.Trim(p, "/") == "" {
			errs = append(errs, fmt.Errorf("[%d]: %q is empty", i, p))
			continue
		}
		for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
			if _, err := path.Match(seg, ""); err != nil {
				errs = append(errs, fmt.Errorf("[%d]: %q is not a valid pattern: %w", i, p, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// MatchPath reports whether a repository path (a/b/c.go) matches pattern.
// Patterns are shell globs per path segment (*, ?, [...], as in path.Match,
// never crossing a /), and a segment ** matches any number of segments,
// none included: services/api/** matches every file under services/api,
// **/*.go every Go file. A pattern ending in / matches everything below
// it (services/api/ is services/api/**). Leading slashes are ignored on
// both sides.
func MatchPath(pattern, name string) bool {
	pattern = strings.TrimLeft(pattern, "/")
	if strings.HasSuffix(pattern, "/") {
		pattern += "**"
	}
	name = strings.TrimLeft(name, "/")
	if pattern == "" || name == "" {
		return false
	}
	return matchSegments(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			// Collapse runs of **, then try every split point.
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := range name {
				if matchSegments(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
