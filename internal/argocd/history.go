package argocd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/history"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// ApplicationsResource is Argo CD's Application custom resource.
var ApplicationsResource = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// DefaultHistoryNamespace is where Argo CD keeps its Applications unless
// it is installed elsewhere or serves Applications in any namespace.
const DefaultHistoryNamespace = "argocd"

// DefaultHistoryPageSize is how many Applications one list request returns
// during an import.
const DefaultHistoryPageSize = 200

// maxHistoryEntries bounds the entries read of one Application's
// status.history (Argo CD keeps spec.revisionHistoryLimit of them, 10 by
// default).
const maxHistoryEntries = 1000

// HistoryConfig is the Argo CD history import: the Applications'
// status.history, read through the Kubernetes API (the kubernetes
// section's connection), no Argo CD API token.
type HistoryConfig struct {
	// Enabled imports the Applications' history; it needs get and list on
	// applications.argoproj.io in Namespaces.
	Enabled bool `mapstructure:"enabled"`
	// Namespaces holding Applications; empty reads all namespaces.
	Namespaces []string `mapstructure:"namespaces"`
}

// DefaultHistoryConfig reads the argocd namespace, once enabled.
func DefaultHistoryConfig() HistoryConfig {
	return HistoryConfig{Namespaces: []string{DefaultHistoryNamespace}}
}

// Validate checks the namespaces; errors name the key relative to the
// history section.
func (c *HistoryConfig) Validate() error {
	var errs []error
	for i, ns := range c.Namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("namespaces[%d]: %q is not a namespace name: %s", i, ns, msgs[0]))
		}
	}
	return errors.Join(errs...)
}

// HistorySource imports the successful syncs Argo CD recorded in its
// Applications' status.history (history.Source), as the events the live
// notifications give the same syncs (docs/sources/argocd.md, "History
// import").
type HistorySource struct {
	client   dynamic.Interface
	cfg      Config
	logger   *zap.Logger
	pageSize int64
	backoff  time.Duration
}

// HistoryOption customizes a HistorySource.
type HistoryOption func(*HistorySource)

// WithHistoryPageSize sets how many Applications one list request returns.
func WithHistoryPageSize(n int64) HistoryOption {
	return func(h *HistorySource) {
		if n > 0 {
			h.pageSize = n
		}
	}
}

// NewHistorySource returns the importer of the Applications in
// cfg.History.Namespaces, read through client; the rest of cfg
// (default_environment) maps them as the live source does.
func NewHistorySource(client dynamic.Interface, cfg Config, logger *zap.Logger, opts ...HistoryOption) *HistorySource {
	h := &HistorySource{client: client, cfg: cfg, logger: logger, pageSize: DefaultHistoryPageSize, backoff: time.Second}
	for _, o := range opts {
		o(h)
	}
	return h
}

var _ history.Source = (*HistorySource)(nil)

// Name is the event source name.
func (h *HistorySource) Name() string { return event.SourceArgoCD }

// Import lists the Applications namespace by namespace, page by page, and
// hands on one batch per page; a batch's cursor is the namespace/name of
// its last Application, after which an interrupted import resumes.
func (h *HistorySource) Import(ctx context.Context, w history.Window, cursor string, sink history.Sink) error {
	var after [2]string
	if cursor != "" {
		ns, name, ok := strings.Cut(cursor, "/")
		if !ok || ns == "" || name == "" {
			return fmt.Errorf("argocd history: cursor %q is not namespace/name", cursor)
		}
		after = [2]string{ns, name}
	}
	namespaces := slices.Clone(h.cfg.History.Namespaces)
	sort.Strings(namespaces)
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	done := 0
	for _, ns := range namespaces {
		if ns != metav1.NamespaceAll && ns < after[0] {
			continue
		}
		opts := metav1.ListOptions{Limit: h.pageSize}
		for {
			var list *unstructured.UnstructuredList
			err := h.retry(ctx, func() (err error) {
				list, err = h.client.Resource(ApplicationsResource).Namespace(ns).List(ctx, opts)
				return err
			})
			if apierrors.IsResourceExpired(err) && opts.Continue != "" {
				// The continue token expired: list again, the cursor
				// skips what is done.
				opts.Continue = ""
				continue
			}
			if err != nil {
				return listError(err, ns)
			}
			var b history.Batch
			for i := range list.Items {
				app := &list.Items[i]
				key := [2]string{app.GetNamespace(), app.GetName()}
				if key[0] < after[0] || (key[0] == after[0] && key[1] <= after[1]) {
					continue
				}
				for _, ev := range h.applicationHistory(app) {
					if w.Contains(ev.Time) {
						b.Events = append(b.Events, ev)
					}
				}
				done++
				after = key
				b.Cursor = key[0] + "/" + key[1]
			}
			if b.Cursor != "" {
				b.Done = done
				if err := sink.Apply(ctx, b); err != nil {
					return err
				}
			}
			if list.GetContinue() == "" {
				break
			}
			opts.Continue = list.GetContinue()
		}
	}
	return nil
}

// retry runs list with the Kubernetes importer's retries (5xx, 429,
// timeouts, the connection; k8s.RetryList); the next run resumes from the
// cursor after the last failure.
func (h *HistorySource) retry(ctx context.Context, list func() error) error {
	return k8s.RetryList(ctx, h.logger, h.backoff, "Listing Argo CD Applications", list)
}

// listError names the setting to fix when the API server refuses the
// list; other errors end this run, which resumes from its cursor.
func listError(err error, ns string) error {
	where := "all namespaces"
	if ns != "" {
		where = "namespace " + ns
	}
	wrapped := fmt.Errorf("listing applications.argoproj.io in %s: %w", where, err)
	switch {
	case apierrors.IsUnauthorized(err):
		return &history.SettingError{Setting: "kubernetes::auth_type", Err: wrapped}
	case apierrors.IsForbidden(err):
		return &history.SettingError{Setting: "webhooks::argocd::history::namespaces (and the RBAC rules: get, list on applications.argoproj.io)", Err: wrapped}
	case apierrors.IsNotFound(err):
		return &history.SettingError{Setting: "webhooks::argocd::history::enabled (the Application CRD is not installed in this cluster)", Err: wrapped}
	}
	return fmt.Errorf("argocd history: %w", wrapped)
}

// applicationHistory returns the deployments of app's status.history: the
// sync-succeeded event the documented notification template renders for
// the same sync, so that the import and the live delivery are one event.
// Entries that repeat the previous entry's revision are re-syncs of the
// same revision (self-heal, a changed parameter), which the documented
// trigger notifies once (oncePer the revision): they are not deployments.
func (h *HistorySource) applicationHistory(app *unstructured.Unstructured) []event.Event {
	entries, _, _ := unstructured.NestedSlice(app.Object, "status", "history")
	if len(entries) > maxHistoryEntries {
		entries = entries[len(entries)-maxHistoryEntries:]
	}
	type entry struct {
		id                                int64
		revision, repo, started, deployed string
	}
	var list []entry
	for _, raw := range entries {
		m, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		var e entry
		e.id, _, _ = unstructured.NestedInt64(m, "id")
		e.revision, _, _ = unstructured.NestedString(m, "revision")
		if revs, ok, _ := unstructured.NestedStringSlice(m, "revisions"); ok && e.revision == "" {
			// Multi-source: the notification renders no revision (the
			// sync result's revision is empty), so none here; the
			// revisions still tell re-syncs apart.
			e.revision = "\x00" + strings.Join(revs, ",")
		} else {
			e.repo, _, _ = unstructured.NestedString(m, "source", "repoURL")
		}
		e.deployed, _, _ = unstructured.NestedString(m, "deployedAt")
		e.started, _, _ = unstructured.NestedString(m, "deployStartedAt")
		if e.started == "" {
			// Written by Argo CD before deployStartedAt existed: the
			// sync's start is not known, its end names it.
			e.started = e.deployed
		}
		list = append(list, e)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].id < list[j].id })

	env, _, _ := unstructured.NestedString(app.Object, "metadata", "labels", "environment")
	destNS, _, _ := unstructured.NestedString(app.Object, "spec", "destination", "namespace")
	project, _, _ := unstructured.NestedString(app.Object, "spec", "project")
	p := Provider{cfg: h.cfg}
	var out []event.Event
	for i, e := range list {
		if i > 0 && list[i-1].revision == e.revision {
			continue
		}
		rev := e.revision
		if strings.HasPrefix(rev, "\x00") {
			rev = ""
		}
		pl := Payload{
			Event: EventSyncSucceeded, App: app.GetName(), Namespace: destNS, Project: project,
			Revision: rev, Repo: e.repo, Environment: env, Phase: "Succeeded",
			StartedAt: e.started, FinishedAt: e.deployed,
		}
		pl.clean()
		ev, err := p.toEvent(&pl)
		if err != nil {
			h.logger.Debug("Argo CD history entry skipped", zap.String("application", app.GetNamespace()+"/"+app.GetName()), zap.Int64("id", e.id), zap.Error(err))
			continue
		}
		out = append(out, ev)
	}
	return out
}
