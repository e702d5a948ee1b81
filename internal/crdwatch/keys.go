package crdwatch

import (
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unique"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// Workload is what the kubernetes section's keys find on a workload (a
// Rollout, or the Deployment a Canary targets): the deployed commit, the
// environment and the team.
type Workload struct {
	CommitSHA   string
	CommitTime  time.Time
	Environment string
	Team        string
}

// ReadWorkload looks the keys of kc up on u as the Kubernetes source does on
// a Deployment: each key on the object's annotations, its labels, then its
// pod template's annotations and labels; the first container's image tag
// as the commit when no key is set and image_tag_fallback is on.
func ReadWorkload(kc *k8s.Config, u *unstructured.Unstructured) Workload {
	var out Workload
	maps := [4]map[string]string{u.GetAnnotations(), u.GetLabels()}
	maps[2], _, _ = unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "annotations")
	maps[3], _, _ = unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels")
	lookup := func(key string) (string, bool) {
		for _, m := range maps {
			if v := strings.TrimSpace(m[key]); v != "" {
				return v, true
			}
		}
		return "", false
	}
	if kc.Environment.Key != "" {
		if v, ok := lookup(kc.Environment.Key); ok {
			out.Environment = unique.Make(v).Value()
		}
	}
	if kc.TeamKey != "" {
		if v, ok := lookup(kc.TeamKey); ok {
			out.Team = unique.Make(v).Value()
		}
	}
	for _, k := range kc.Commit.SHAKeys {
		if v, ok := lookup(k); ok {
			out.CommitSHA = strings.ToLower(v)
			break
		}
	}
	if out.CommitSHA == "" && kc.Commit.ImageTagFallback {
		containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		if len(containers) > 0 {
			if c, ok := containers[0].(map[string]any); ok {
				image, _ := c["image"].(string)
				out.CommitSHA = shaFromImage(image)
			}
		}
	}
	for _, k := range kc.Commit.TimeKeys {
		if v, ok := lookup(k); ok {
			if t, ok := parseCommitTime(v); ok {
				out.CommitTime = t
				break
			}
		}
	}
	return out
}

// EnvironmentFor is the environment of a workload in namespace whose
// environment key holds explicit (empty: not set), by the kubernetes
// section's rules: the key, the first namespace rule that matches, the
// default.
func EnvironmentFor(env *k8s.EnvironmentConfig, namespace, explicit string) string {
	if explicit != "" {
		return explicit
	}
	for _, r := range env.Namespaces {
		if ok, _ := path.Match(r.Pattern, namespace); ok {
			return r.Environment
		}
	}
	return env.Default
}

// The two functions below are the Kubernetes source's (internal/k8s,
// unexported there), so that a commit is read the same way from a Rollout
// or a Canary's target as from a Deployment.

var shaTag = regexp.MustCompile(`^(?:sha-|git-)?([0-9a-f]{7,40})$`)

// shaFromImage returns the image tag as a commit SHA when it looks like one.
func shaFromImage(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndexByte(image, '/')
	colon := strings.LastIndexByte(image, ':')
	if colon <= slash {
		return ""
	}
	m := shaTag.FindStringSubmatch(strings.ToLower(image[colon+1:]))
	if m == nil {
		return ""
	}
	return m[1]
}

// parseCommitTime accepts RFC 3339, Unix seconds and git's default date
// format.
func parseCommitTime(v string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, true
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && n < 100_000_000_000 {
		return time.Unix(n, 0).UTC(), true
	}
	if t, err := time.Parse("Mon Jan 2 15:04:05 2006 -0700", v); err == nil {
		return t, true
	}
	return time.Time{}, false
}
