package k8s

import (
	"encoding/json"
	"hash/fnv"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unique"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// restartedAtAnnotation is what `kubectl rollout restart` sets on the pod
// template. A restart ships no change, so it is left out of the template
// hash and is not a deployment.
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// Deployment is the part of an apps/v1 Deployment the source uses. The
// informer stores this instead of the full object (see transformer), which
// keeps memory per watched Deployment small: the pod template is reduced to
// a hash, only the commit, environment and team values are kept from
// labels and annotations, and the object metadata is the few fields the
// tracker reads (Meta) rather than a whole metav1.ObjectMeta.
type Deployment struct {
	Meta

	// Replicas is the desired count (spec.replicas, default 1).
	Replicas int32
	// TemplateHash identifies the pod template revision.
	TemplateHash uint64
	// CommitSHA and CommitTime are the deployed commit, when found.
	CommitSHA  string
	CommitTime time.Time
	// Environment is the value of the environment key, if set.
	Environment string
	// Team is the value of the team key, if set.
	Team string
	// Revision is the deployment.kubernetes.io/revision annotation: the
	// revision of the ReplicaSet the controller last rolled out; 0 when
	// absent. It names a rollout found running (see tracker.observe) as
	// the history import names it.
	Revision int64

	ObservedGeneration int64
	UpdatedReplicas    int32
	AvailableReplicas  int32
	// Progressing is the Progressing condition, if present.
	Progressing Condition
}

// Condition is the part of a DeploymentCondition the source uses.
type Condition struct {
	Status         corev1.ConditionStatus
	Reason         string
	LastUpdateTime time.Time
}

// GetObjectKind implements runtime.Object. The informer knows the kind;
// nothing reads it from stored objects.
func (d *Deployment) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object. Deployment holds only values
// and immutable strings, so a shallow copy is deep.
func (d *Deployment) DeepCopyObject() runtime.Object {
	c := *d
	return &c
}

var _ runtime.Object = (*Deployment)(nil)

// transformer returns the informer transform that reduces Deployments to
// *Deployment before they are stored.
func transformer(cfg *Config) cache.TransformFunc {
	return func(obj any) (any, error) {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			// Already transformed, or a tombstone: the informer may call a
			// transform more than once on the same object.
			return obj, nil
		}
		return compact(d, cfg), nil
	}
}

func compact(d *appsv1.Deployment, cfg *Config) *Deployment {
	out := &Deployment{
		Meta: Meta{
			Name: d.Name,
			// Many Deployments share a namespace: intern it.
			Namespace:  unique.Make(d.Namespace).Value(),
			UID:        d.UID,
			Generation: d.Generation,
			// Tells a Deployment created while the receiver was down
			// from one that existed before (with storage).
			CreationTimestamp: d.CreationTimestamp,
		},
		Replicas:           1,
		TemplateHash:       templateHash(&d.Spec.Template),
		ObservedGeneration: d.Status.ObservedGeneration,
		UpdatedReplicas:    d.Status.UpdatedReplicas,
		AvailableReplicas:  d.Status.AvailableReplicas,
	}
	if d.Spec.Replicas != nil {
		out.Replicas = *d.Spec.Replicas
	}
	if rev, ok := parseRevision(d.Annotations[RevisionAnnotation]); ok {
		out.Revision = rev
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			// A handful of values shared by every Deployment: intern
			// them rather than keep a copy per object.
			out.Progressing = Condition{Status: unique.Make(c.Status).Value(), Reason: unique.Make(c.Reason).Value(), LastUpdateTime: c.LastUpdateTime.Time}
		}
	}
	if cfg.Environment.Key != "" {
		if v, ok := lookup(d, cfg.Environment.Key); ok {
			out.Environment = unique.Make(v).Value()
		}
	}
	if cfg.TeamKey != "" {
		if v, ok := lookup(d, cfg.TeamKey); ok {
			// Many Deployments share a team: intern it.
			out.Team = unique.Make(v).Value()
		}
	}
	for _, k := range cfg.Commit.SHAKeys {
		if v, ok := lookup(d, k); ok {
			out.CommitSHA = strings.ToLower(v)
			break
		}
	}
	if out.CommitSHA == "" && cfg.Commit.ImageTagFallback && len(d.Spec.Template.Spec.Containers) > 0 {
		out.CommitSHA = shaFromImage(d.Spec.Template.Spec.Containers[0].Image)
	}
	for _, k := range cfg.Commit.TimeKeys {
		if v, ok := lookup(d, k); ok {
			if t, ok := parseCommitTime(v); ok {
				out.CommitTime = t
				break
			}
		}
	}
	return out
}

// lookup finds key on the Deployment's annotations and labels, then on its
// pod template's: CI tools set either.
func lookup(d *appsv1.Deployment, key string) (string, bool) {
	for _, m := range []map[string]string{d.Annotations, d.Labels, d.Spec.Template.Annotations, d.Spec.Template.Labels} {
		if v := strings.TrimSpace(m[key]); v != "" {
			return v, true
		}
	}
	return "", false
}

// templateHash is a stable hash of the pod template, the same in every
// process, so it can name a revision across restarts.
func templateHash(t *corev1.PodTemplateSpec) uint64 {
	if _, ok := t.Annotations[restartedAtAnnotation]; ok {
		c := *t
		c.Annotations = maps.Clone(t.Annotations)
		delete(c.Annotations, restartedAtAnnotation)
		t = &c
	}
	h := fnv.New64a()
	// encoding/json sorts map keys, so equal templates hash equal.
	_ = json.NewEncoder(h).Encode(t)
	return h.Sum64()
}

var shaTag = regexp.MustCompile(`^(?:sha-|git-)?([0-9a-f]{7,40})$`)

// shaFromImage returns the image tag as a commit SHA when it looks like one.
// Digests are not commits, and plain version tags (v1.2.3) are not either.
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

// parseCommitTime accepts RFC 3339 (what CI systems and `git log
// --format=%cI` write), Unix seconds, and git's default date format (what
// OpenShift builds put in io.openshift.build.commit.date).
func parseCommitTime(v string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, true
	}
	// Past 1e11 (year 5138) it is milliseconds or finer, not seconds: the
	// commit time is unknown rather than far in the future (which the
	// receiver refuses, with the deployment).
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && n < 100_000_000_000 {
		return time.Unix(n, 0).UTC(), true
	}
	if t, err := time.Parse("Mon Jan 2 15:04:05 2006 -0700", v); err == nil {
		return t, true
	}
	return time.Time{}, false
}
