package k8s

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// Annotations the Deployment controller writes on the ReplicaSets it owns.
const (
	// RevisionAnnotation is the rollout number of a ReplicaSet (and, on the
	// Deployment, of its current ReplicaSet).
	RevisionAnnotation = "deployment.kubernetes.io/revision"
	// RevisionHistoryAnnotation lists, comma-separated, the earlier
	// revisions a ReplicaSet held: a rollback to its template moves the
	// ReplicaSet to a new revision and keeps the old one here.
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
)

// maxRevisionHistoryChars bounds what is read of the revision-history
// annotation: the Deployment controller keeps it under 2000 characters
// (maxRevHistoryLengthInChars), anything longer was not written by it.
const maxRevisionHistoryChars = 2000

// DefaultHistoryPageSize is how many Deployments (and ReplicaSets) one list
// request returns during an import.
const DefaultHistoryPageSize = 500

// historyRetries is how many times a failing list request is tried again
// (5xx, 429, timeouts) before the import gives up until its next run.
const historyRetries = 4

// HistorySource imports the past rollouts of the watched Deployments from
// their ReplicaSets (history.Source). It emits the events the live tracker
// emits for the same rollouts, with the same identities where both can
// know one (docs/sources/kubernetes.md, "History import").
type HistorySource struct {
	client   kubernetes.Interface
	cfg      *Config
	logger   *zap.Logger
	pageSize int64
	now      func() time.Time
	backoff  time.Duration
	// live is the live source whose tracker names the current rollouts;
	// nil when there is none.
	live *Source
}

// HistoryOption customizes a HistorySource.
type HistoryOption func(*HistorySource)

// WithHistoryPageSize sets how many objects one list request returns
// (Limit); the rest is read page by page (Continue).
func WithHistoryPageSize(n int64) HistoryOption {
	return func(h *HistorySource) {
		if n > 0 {
			h.pageSize = n
		}
	}
}

// WithLiveSource lets the import name each Deployment's current rollout as
// the live source's tracker does, and leave to it the rollouts that began
// after it started tracking (with storage: those it counted, or will count,
// itself).
func WithLiveSource(s *Source) HistoryOption { return func(h *HistorySource) { h.live = s } }

// NewHistorySource returns the importer of the Deployments cfg watches
// (namespaces, label_selector), read through client.
func NewHistorySource(client kubernetes.Interface, cfg *Config, logger *zap.Logger, opts ...HistoryOption) *HistorySource {
	h := &HistorySource{client: client, cfg: cfg, logger: logger, pageSize: DefaultHistoryPageSize, now: time.Now, backoff: time.Second}
	for _, o := range opts {
		o(h)
	}
	return h
}

var _ history.Source = (*HistorySource)(nil)

// Name is the event source name.
func (h *HistorySource) Name() string { return event.SourceKubernetes }

// Import reads the Deployments in the order the API server lists them
// (namespace, then name) and hands on one batch per page of Deployments;
// a batch's cursor is the namespace/name of its last Deployment, after
// which an interrupted import resumes.
func (h *HistorySource) Import(ctx context.Context, w history.Window, cursor string, sink history.Sink) error {
	after, err := parseHistoryCursor(cursor)
	if err != nil {
		return err
	}
	namespaces := slices.Clone(h.cfg.Namespaces)
	sort.Strings(namespaces)
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	// done counts the Deployments an earlier run did too (skipped here),
	// but only once: not again when a list starts over.
	done, total, relisted := 0, 0, false
	for _, ns := range namespaces {
		if ns != metav1.NamespaceAll && ns < after.Namespace {
			continue
		}
		opts := metav1.ListOptions{LabelSelector: h.cfg.LabelSelector, Limit: h.pageSize}
		first := true
		for {
			var list *appsv1.DeploymentList
			err := h.retry(ctx, func() (err error) {
				list, err = h.client.AppsV1().Deployments(ns).List(ctx, opts)
				return err
			})
			if apierrors.IsResourceExpired(err) && opts.Continue != "" {
				// The continue token outlived the etcd compaction: list
				// again from the start, the cursor skips what is done.
				opts.Continue, first, relisted = "", false, true
				continue
			}
			if err != nil {
				return h.listError(err, "deployments", ns)
			}
			if first && len(namespaces) == 1 && list.RemainingItemCount != nil {
				total = len(list.Items) + int(*list.RemainingItemCount)
			}
			first = false
			b := history.Batch{Total: total}
			for i := range list.Items {
				d := &list.Items[i]
				key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
				if !cursorBefore(after, key) {
					// Done by an earlier run (or an earlier page of a
					// list started again).
					if !relisted {
						done++
					}
					continue
				}
				evs, err := h.deploymentHistory(ctx, d, w)
				if err != nil {
					return err
				}
				b.Events = append(b.Events, evs...)
				done++
				b.Cursor = key.Namespace + "/" + key.Name
				after = key
			}
			if b.Cursor != "" {
				b.Done = done
				if err := sink.Apply(ctx, b); err != nil {
					return err
				}
			}
			if list.Continue == "" {
				break
			}
			opts.Continue = list.Continue
		}
	}
	return nil
}

// parseHistoryCursor reads a cursor written by Import: the namespace/name
// of the last Deployment done.
func parseHistoryCursor(cursor string) (types.NamespacedName, error) {
	if cursor == "" {
		return types.NamespacedName{}, nil
	}
	ns, name, ok := strings.Cut(cursor, "/")
	if !ok || ns == "" || name == "" {
		return types.NamespacedName{}, fmt.Errorf("kubernetes history: cursor %q is not namespace/name", cursor)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// cursorBefore reports whether key comes after the cursor in list order.
func cursorBefore(after, key types.NamespacedName) bool {
	if after.Namespace != key.Namespace {
		return after.Namespace < key.Namespace
	}
	return after.Name < key.Name
}

func (h *HistorySource) retry(ctx context.Context, list func() error) error {
	return RetryList(ctx, h.logger, h.backoff, "Kubernetes list", list)
}

// RetryList runs list, a history import's request to the API server, until
// it succeeds, fails for a reason that retrying does not mend, or has
// failed historyRetries more times, waiting longer each time from first;
// what names the request in the warning. The Kubernetes and the Argo CD
// importers share it.
func RetryList(ctx context.Context, logger *zap.Logger, first time.Duration, what string, list func() error) error {
	wait := first
	for attempt := 0; ; attempt++ {
		err := list()
		if err == nil || attempt == historyRetries || !retriable(err) {
			return err
		}
		logger.Warn(what+" failed; retrying", zap.Duration("in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func retriable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true // the connection: refused, reset, timed out
	}
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err)
}

// listError names the setting to fix when the API server refuses the
// list, so that this source's import stops and the others go on.
func (h *HistorySource) listError(err error, resource, ns string) error {
	where := "all namespaces"
	if ns != "" {
		where = "namespace " + ns
	}
	switch {
	case apierrors.IsUnauthorized(err):
		return &history.SettingError{Setting: "kubernetes::auth_type", Err: fmt.Errorf("listing %s in %s: %w", resource, where, err)}
	case apierrors.IsForbidden(err):
		return &history.SettingError{Setting: "kubernetes::namespaces (and the RBAC rules: list on apps/" + resource + ")", Err: fmt.Errorf("listing %s in %s: %w", resource, where, err)}
	}
	return fmt.Errorf("kubernetes history: listing %s in %s: %w", resource, where, err)
}

// deploymentHistory lists the ReplicaSets d owns and returns the events of
// its rollouts in w.
func (h *HistorySource) deploymentHistory(ctx context.Context, d *appsv1.Deployment, w history.Window) ([]event.Event, error) {
	if d.Spec.Selector == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, nil // not a selector the controller would act on
	}
	var owned []*appsv1.ReplicaSet
	opts := metav1.ListOptions{LabelSelector: sel.String(), Limit: h.pageSize}
	for {
		var list *appsv1.ReplicaSetList
		err := h.retry(ctx, func() (err error) {
			list, err = h.client.AppsV1().ReplicaSets(d.Namespace).List(ctx, opts)
			return err
		})
		if apierrors.IsResourceExpired(err) && opts.Continue != "" {
			opts.Continue, owned = "", owned[:0]
			continue
		}
		if err != nil {
			return nil, h.listError(err, "replicasets", d.Namespace)
		}
		for i := range list.Items {
			if rs := &list.Items[i]; metav1.IsControlledBy(rs, d) {
				owned = append(owned, rs)
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	var live liveRollout
	if h.live != nil {
		live = h.live.tracker.current(types.NamespacedName{Namespace: d.Namespace, Name: d.Name}, d.UID)
	}
	var evs []event.Event
	for _, ev := range pastRollouts(d, owned, h.cfg, live, h.now()) {
		if w.Contains(ev.Time) {
			evs = append(evs, ev)
		}
	}
	return evs, nil
}

// liveRollout is what the live tracker knows of a Deployment: its current
// template and rollout, and since when it tracks (restored from storage).
type liveRollout struct {
	known bool
	hash  uint64
	id    string
	// preexisting: the tracker found the rollout finished and counts none
	// of it.
	preexisting bool
	// since is set when the tracker's state was restored: rollouts that
	// began at or after it are the live source's.
	since time.Time
}

// current returns what the tracker knows of the Deployment key with uid.
func (t *tracker) current(key types.NamespacedName, uid types.UID) liveRollout {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out liveRollout
	if t.restored {
		out.since = t.since
	}
	if tr, ok := t.deployments[key]; ok && tr.uid == uid {
		out.known, out.hash, out.id = true, tr.hash, tr.rollout.id(key.Namespace, key.Name, uid)
		out.preexisting = tr.rollout.preexisting
	}
	return out
}

// revisionRolloutID names a past rollout by the revision that introduced
// its template: the generation that did (what rolloutID uses) is not kept
// on ReplicaSets. "@revision-" never parses as a generation.
func revisionRolloutID(namespace, name string, uid types.UID, revision int64) string {
	return namespace + "/" + name + "/" + string(uid) + "@revision-" + strconv.FormatInt(revision, 10)
}

// pastRollout is one template revision of a Deployment, read from its
// ReplicaSets.
type pastRollout struct {
	revision int64
	// lastRevision is the last of its restarts' revisions (revision when
	// it has none).
	lastRevision int64
	hash         uint64
	rs           *appsv1.ReplicaSet
	// start is the ReplicaSet's creation when the revision created it;
	// zero for a rollback to an existing ReplicaSet (see pastRollouts).
	start    time.Time
	rollback bool
	// restarts is set when later revisions restarted the rollout's pods
	// (`kubectl rollout restart`); restarted is the first one's creation.
	restarts  bool
	restarted time.Time
}

// pastRollouts turns a Deployment's ReplicaSets into the events the live
// tracker would have emitted for its rollouts, oldest first:
//
//   - each revision whose template differs from the previous one is a
//     rollout (a revision that only changed the restartedAt annotation,
//     `kubectl rollout restart`, is not, as live);
//   - a rollout whose template equals an earlier one is a rollback
//     (DeploymentRolledBack naming the rollout it replaced), otherwise a
//     DeploymentStarted;
//   - a rollout superseded by a later one succeeded at its start unless
//     the next one rolled it back (the rollback then marks it failed);
//   - the current rollout's outcome is read from the Deployment's status,
//     as live, unless a restart came after it (the status is then the
//     restart's): it is then taken as a superseded one.
//
// A ReplicaSet reused by a rollback keeps its creation time: the rollback's
// time is unknown and taken as the latest it can be, the next rollout's (or
// restart's) start, or for the current rollout the Deployment's
// Progressing condition's time. With a live source restored from storage,
// what it counts itself is left out (see liveRollout).
func pastRollouts(d *appsv1.Deployment, rss []*appsv1.ReplicaSet, cfg *Config, live liveRollout, now time.Time) []event.Event {
	type held struct {
		rs      *appsv1.ReplicaSet
		created bool
	}
	byRevision := map[int64]held{}
	for _, rs := range rss {
		rev, ok := parseRevision(rs.Annotations[RevisionAnnotation])
		if !ok {
			continue
		}
		revs := append(parseRevisionHistory(rs.Annotations[RevisionHistoryAnnotation]), rev)
		first := slices.Min(revs)
		for _, r := range revs {
			if _, dup := byRevision[r]; !dup {
				byRevision[r] = held{rs: rs, created: r == first}
			}
		}
	}
	revisions := slices.Sorted(maps.Keys(byRevision))
	var rollouts []pastRollout
	for _, rev := range revisions {
		hd := byRevision[rev]
		hash := rsTemplateHash(hd.rs)
		if n := len(rollouts); n > 0 && rollouts[n-1].hash == hash {
			// A restart: the same template, no new rollout. The first
			// one bounds when the rollout happened.
			if rollouts[n-1].restarted.IsZero() && hd.created {
				rollouts[n-1].restarted = hd.rs.CreationTimestamp.Time
			}
			rollouts[n-1].restarts = true
			rollouts[n-1].lastRevision = rev
			continue
		}
		r := pastRollout{revision: rev, lastRevision: rev, hash: hash, rs: hd.rs}
		if hd.created {
			r.start = hd.rs.CreationTimestamp.Time
		}
		for i := len(rollouts) - 1; i >= 0 && i >= len(rollouts)-maxHistory; i-- {
			if rollouts[i].hash == hash {
				r.rollback = true
				break
			}
		}
		rollouts = append(rollouts, r)
	}
	if len(rollouts) == 0 {
		return nil
	}

	cur := compact(d, cfg)
	last := len(rollouts) - 1
	// The last revision is the Deployment's current rollout when its
	// template is the Deployment's; otherwise a newer template is on its
	// way (the controller has not made its ReplicaSet yet) and the live
	// source counts it.
	isCurrent := rollouts[last].hash == cur.TemplateHash
	// The status tells the current rollout's outcome, unless a restart
	// came after it: the status is then the restart's, which live does
	// not count either way.
	statusOutcome := isCurrent && !rollouts[last].restarts
	// Unknown starts (rollbacks to a reused ReplicaSet) take the latest
	// time they can have.
	upper := now
	if statusOutcome && !cur.Progressing.LastUpdateTime.IsZero() && cur.Progressing.LastUpdateTime.Before(now) {
		upper = cur.Progressing.LastUpdateTime
	}
	for i := last; i >= 0; i-- {
		if r := rollouts[i].restarted; !r.IsZero() && r.Before(upper) {
			upper = r
		}
		if rollouts[i].start.IsZero() || rollouts[i].start.After(upper) {
			rollouts[i].start = upper
		}
		upper = rollouts[i].start
	}

	env := cfg.Environment.environmentFor(d.Namespace, cur.Environment)
	ids := make([]string, len(rollouts))
	for i, r := range rollouts {
		ids[i] = revisionRolloutID(d.Namespace, d.Name, d.UID, r.revision)
	}
	if isCurrent {
		// As the live source's first list names it: by the Deployment's
		// revision, which is its current ReplicaSet's (the last of the
		// rollout's restarts), so that its outcome, seen live after the
		// import, is the same rollout's; as the tracker named it when it
		// knows it.
		ids[last] = revisionRolloutID(d.Namespace, d.Name, d.UID, rollouts[last].lastRevision)
		if live.known && live.hash == cur.TemplateHash {
			ids[last] = live.id
		}
	}
	// The live source's own rollout, with a state restored from storage:
	// one it saw start, or found running, and counts (counted) itself.
	liveCounts := !live.since.IsZero() && live.known && live.hash == cur.TemplateHash && !live.preexisting
	var out []event.Event
	for i, r := range rollouts {
		current := isCurrent && i == last
		switch {
		case current && liveCounts:
			continue
		case !current && !live.since.IsZero() && !r.start.Before(live.since.Truncate(time.Second)):
			// Began while the live source tracked this Deployment: it
			// counted the rollout (or, for several while it was down,
			// their last), under the id it gave it.
			continue
		}
		info := cur
		if !current {
			info = compact(replicaSetAsDeployment(d, r.rs), cfg)
		}
		mk := func(kind event.Kind, at time.Time) event.Event {
			return event.Event{
				Kind: kind, Source: event.SourceKubernetes, ID: ids[i] + "/" + kind.String(), Time: at,
				Service:      event.Service{Namespace: d.Namespace, Name: d.Name, Environment: env},
				DeploymentID: ids[i], Revision: info.CommitSHA, CommitTime: info.CommitTime, Team: cur.Team,
			}
		}
		if r.rollback && i > 0 {
			ev := mk(event.DeploymentRolledBack, r.start)
			ev.PreviousDeploymentID = ids[i-1]
			out = append(out, ev)
		} else {
			out = append(out, mk(event.DeploymentStarted, r.start))
		}
		if !current || !statusOutcome {
			if i == last || !rollouts[i+1].rollback {
				// Superseded, not rolled back: assumed to have succeeded,
				// when it started (its finish is not kept).
				out = append(out, mk(event.DeploymentSucceeded, r.start))
			}
			continue
		}
		switch evaluate(cur) {
		case phaseSucceeded:
			out = append(out, mk(event.DeploymentSucceeded, conditionTime(cur, rollout{started: r.start}, now)))
		case phaseFailed:
			ev := mk(event.DeploymentFailed, conditionTime(cur, rollout{started: r.start}, now))
			ev.Reason = reasonProgressDeadlineExceeded
			out = append(out, ev)
		}
	}
	return out
}

// replicaSetAsDeployment is the Deployment as it was when rs was its
// current ReplicaSet, as far as the commit keys go: the controller copies
// the Deployment's annotations to the ReplicaSet it rolls out, and the
// ReplicaSet's template is the Deployment's then.
func replicaSetAsDeployment(d *appsv1.Deployment, rs *appsv1.ReplicaSet) *appsv1.Deployment {
	c := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Namespace: d.Namespace, Name: d.Name, UID: d.UID, Generation: d.Generation,
		Annotations: rs.Annotations, Labels: rs.Labels,
	}}
	c.Spec.Template = *withoutHashLabel(&rs.Spec.Template)
	return c
}

// rsTemplateHash is templateHash of the Deployment template rs was made
// from: its template without the pod-template-hash label the controller
// adds.
func rsTemplateHash(rs *appsv1.ReplicaSet) uint64 {
	return templateHash(withoutHashLabel(&rs.Spec.Template))
}

func withoutHashLabel(t *corev1.PodTemplateSpec) *corev1.PodTemplateSpec {
	if _, ok := t.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; !ok {
		return t
	}
	c := *t
	c.Labels = maps.Clone(t.Labels)
	delete(c.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	return &c
}

// parseRevision reads a revision annotation: a positive integer.
func parseRevision(s string) (int64, bool) {
	if len(s) > 19 {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// parseRevisionHistory reads the revision-history annotation; what is not
// a revision is skipped.
func parseRevisionHistory(s string) []int64 {
	if s == "" || len(s) > maxRevisionHistoryChars {
		return nil
	}
	var out []int64
	for f := range strings.SplitSeq(s, ",") {
		if n, ok := parseRevision(strings.TrimSpace(f)); ok {
			out = append(out, n)
		}
	}
	return out
}
