package gitpush

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
)

// Triggers of a release deployment.
const (
	TriggerRelease = "release" // a published release (GitHub), a created release (GitLab)
	TriggerTag     = "tag"     // a pushed tag
)

// ReleaseDeployment makes the releases, or the tag pushes, of matching
// repositories deployments, for teams whose "deploy" is a release: the
// tagged commit is the deployed revision, so the commits pushed before it
// on its branch get their lead times.
type ReleaseDeployment struct {
	// Repository is the repository's full name (acme/api, a GitLab
	// group/sub/project) or a path.Match glob (acme/*).
	Repository string `mapstructure:"repository"`
	// Trigger is release (the default) or tag.
	Trigger string `mapstructure:"trigger"`
	// Tags is a path.Match glob on the tag name; empty: every tag.
	Tags string `mapstructure:"tags"`
	// Environment is the deployment's environment; empty: production.
	Environment string `mapstructure:"environment"`
	// Prereleases counts GitHub pre-releases too.
	Prereleases bool `mapstructure:"prereleases"`
}

// CheckReleaseDeployments validates the entries of key; errors name the
// key and the entry.
func CheckReleaseDeployments(key string, rs []ReleaseDeployment) error {
	var errs []error
	for i, r := range rs {
		at := fmt.Sprintf("%s[%d]", key, i)
		if strings.TrimSpace(r.Repository) == "" {
			errs = append(errs, fmt.Errorf("%s.repository: must not be empty", at))
		} else if _, err := path.Match(r.Repository, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s.repository: %q is not a valid glob: %v", at, r.Repository, err))
		}
		if _, err := path.Match(r.Tags, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s.tags: %q is not a valid glob: %v", at, r.Tags, err))
		}
		switch r.Trigger {
		case "", TriggerRelease, TriggerTag:
		default:
			errs = append(errs, fmt.Errorf("%s.trigger: %q must be release or tag", at, r.Trigger))
		}
	}
	return errors.Join(errs...)
}

// MatchRelease returns the first entry of rs for trigger that matches repo
// and tag, with its defaults filled in.
func MatchRelease(rs []ReleaseDeployment, trigger, repo, tag string) (ReleaseDeployment, bool) {
	for _, r := range rs {
		t := r.Trigger
		if t == "" {
			t = TriggerRelease
		}
		if t != trigger {
			continue
		}
		if ok, _ := path.Match(strings.ToLower(r.Repository), strings.ToLower(repo)); !ok {
			continue
		}
		if r.Tags != "" {
			if ok, _ := path.Match(r.Tags, tag); !ok {
				continue
			}
		}
		if r.Environment == "" {
			r.Environment = "production"
		}
		r.Trigger = t
		return r, true
	}
	return ReleaseDeployment{}, false
}

// TagMemory remembers the commit of recent tags (repository and tag name),
// for releases whose payload names a branch, not the tagged commit
// (GitHub's target_commitish): the tag's push names the commit. Bounded:
// past its size the oldest entries are forgotten. In memory only.
type TagMemory struct {
	mu    sync.Mutex
	size  int
	order []string
	shas  map[string]string
}

// NewTagMemory returns a memory of at most size tags.
func NewTagMemory(size int) *TagMemory {
	return &TagMemory{size: size, shas: make(map[string]string, size)}
}

func tagKey(repo, tag string) string { return strings.ToLower(repo) + "\x00" + tag }

// Remember notes that tag of repo names sha.
func (m *TagMemory) Remember(repo, tag, sha string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := tagKey(repo, tag)
	if _, ok := m.shas[k]; !ok {
		if len(m.order) >= m.size {
			delete(m.shas, m.order[0])
			m.order = m.order[1:]
		}
		m.order = append(m.order, k)
	}
	m.shas[k] = sha
}

// Commit returns the commit tag of repo names, if remembered.
func (m *TagMemory) Commit(repo, tag string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.shas[tagKey(repo, tag)]
}
