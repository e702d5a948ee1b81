package k8s

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Sink receives the events the source produces. It returns once the event
// is durable (with storage), or an error when it could not be taken; the
// source then saves no more of its state, so that the event is derived
// again at the next start.
type Sink func(event.Event) error

// Source watches Deployments and sends their rollouts to a Sink.
type Source struct {
	cfg    *Config
	client kubernetes.Interface
	logger *zap.Logger
	sink   Sink
	now    func() time.Time
	// onWatchError is told of list/watch failures (the receiver reports
	// them as component status); nil ignores them.
	onWatchError func(error)
	// onRecovered is told when the API server answers again after list or
	// watch requests failed; apiFailing is whether the last one failed.
	onRecovered func()
	apiFailing  atomic.Bool

	tracker *tracker
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	synced  []cache.InformerSynced
	stores  []cache.Store

	// store keeps the tracker's state across restarts; nil keeps it in
	// memory only. saveMu serializes handling (observe, sink, save) with
	// the other saves, so that no state is saved before the events it
	// implies are taken; sinkFailed stops saving once an event was not.
	store      Store
	saveMu     sync.Mutex
	sinkFailed bool
}

// Option customizes a Source.
type Option func(*Source)

// WithWatchErrorHandler is told of each list or watch failure; the informer
// retries on its own with backoff.
func WithWatchErrorHandler(f func(error)) Option { return func(s *Source) { s.onWatchError = f } }

// WithWatchRecoveredHandler is told when the API server answers the
// informer again after failures (the receiver reports StatusOK).
func WithWatchRecoveredHandler(f func()) Option { return func(s *Source) { s.onRecovered = f } }

// WithStore keeps the rollout tracker's per-Deployment state in store, so
// that after a restart nothing already counted is counted again and what
// happened while the receiver was down is counted once (see
// tracker.observe).
func WithStore(store Store) Option { return func(s *Source) { s.store = store } }

// New returns a Source that uses client. Use NewClient to build one from cfg.
func New(cfg *Config, client kubernetes.Interface, logger *zap.Logger, sink Sink, opts ...Option) *Source {
	s := &Source{cfg: cfg, client: client, logger: logger, sink: sink, now: time.Now, tracker: newTracker(&cfg.Environment)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// NewClient builds a Kubernetes client from the auth settings of cfg.
func NewClient(cfg *Config) (kubernetes.Interface, error) {
	var rc *rest.Config
	var err error
	switch cfg.AuthType {
	case AuthTypeServiceAccount:
		rc, err = rest.InClusterConfig()
	case AuthTypeKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if cfg.KubeConfig != "" {
			rules.ExplicitPath = cfg.KubeConfig
		}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: cfg.Context}).ClientConfig()
	default:
		err = fmt.Errorf("unknown auth_type %q", cfg.AuthType)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client (auth_type %s): %w", cfg.AuthType, err)
	}
	rc.UserAgent = "otelcol-dora"
	// Protobuf is smaller and cheaper to decode than JSON for large lists.
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	return kubernetes.NewForConfig(rc)
}

// Start starts one Deployment informer per watched namespace (one for all
// namespaces when none are listed). It does not wait for the initial sync:
// an unreachable API server is retried in the background, and Deployments
// listed first are still recognized as existing ones whenever the list
// succeeds.
func (s *Source) Start(startCtx context.Context) error {
	if s.store != nil {
		saved, err := s.store.LoadDeployments(startCtx)
		if err != nil {
			return fmt.Errorf("kubernetes: loading the saved rollout state: %w", err)
		}
		if err := s.tracker.restore(saved, s.now()); err != nil {
			return fmt.Errorf("kubernetes: loading the saved rollout state: %w", err)
		}
		s.logger.Info("Rollout state restored", zap.Int("deployments", len(saved.Deployments)), zap.Time("tracking_since", s.tracker.since))
	}
	// The informers outlive Start's context, which only bounds start-up.
	var ctx context.Context
	ctx, s.cancel = context.WithCancel(context.Background())
	namespaces := s.cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		inf := s.newDeploymentInformer(ns)
		if err := inf.SetWatchErrorHandlerWithContext(s.watchError); err != nil {
			return err
		}
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, initial bool) { s.handle(obj, initial) },
			UpdateFunc: func(_, obj any) { s.handle(obj, false) },
			DeleteFunc: s.handleDelete,
		})
		if err != nil {
			return err
		}
		s.synced = append(s.synced, reg.HasSynced)
		s.stores = append(s.stores, inf.GetStore())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			inf.RunWithContext(ctx)
		}()
	}
	if s.store != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.afterSync(ctx)
		}()
	}
	return nil
}

// afterSync waits for the first lists, then forgets the saved Deployments
// that no longer exist and saves the state of all of them at once (the
// first list's observations are not saved one by one).
func (s *Source) afterSync(ctx context.Context) {
	if !s.WaitForSync(ctx) {
		return
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	live := map[string]bool{}
	for _, st := range s.stores {
		for _, k := range st.ListKeys() {
			live[k] = true
		}
	}
	if n := s.tracker.prune(func(k types.NamespacedName) bool { return live[k.String()] }); n > 0 {
		s.logger.Info("Forgot Deployments deleted while the receiver was down", zap.Int("deployments", n))
	}
	s.saveLocked(ctx)
}

// saveLocked saves what changed in the tracker; saveMu is held. A failure
// is logged and retried with the next save.
func (s *Source) saveLocked(ctx context.Context) {
	if s.store == nil || s.sinkFailed {
		return
	}
	since, put, deleted, keys, changed := s.tracker.changes()
	if !changed {
		return
	}
	if err := s.store.SaveDeployments(ctx, since, put, deleted); err != nil {
		s.tracker.redirty(keys)
		s.logger.Warn("Saving the rollout state failed; retrying with the next change", zap.Error(err))
	}
}

// WaitForSync blocks until every informer has delivered its initial list,
// or ctx ends.
func (s *Source) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.synced...)
}

// HasSynced reports whether every informer has delivered its initial list
// to the source's handlers.
func (s *Source) HasSynced() bool {
	for _, synced := range s.synced {
		if !synced() {
			return false
		}
	}
	return true
}

// Watched is the number of Deployments being tracked.
func (s *Source) Watched() int { return s.tracker.len() }

// Shutdown stops the informers, waits for them and saves the state.
func (s *Source) Shutdown(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.saveLocked(ctx)
	return nil
}

func (s *Source) handle(obj any, initial bool) {
	d, ok := obj.(*Deployment)
	if !ok {
		s.logger.Warn("Unexpected object from the Deployment informer", zap.String("type", fmt.Sprintf("%T", obj)))
		return
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	for _, ev := range s.tracker.observe(d, initial, s.now()) {
		s.logger.Debug("Rollout event",
			zap.Stringer("kind", ev.Kind),
			zap.String("namespace", d.Namespace),
			zap.String("deployment", d.Name),
			zap.String("environment", ev.Service.Environment),
			zap.String("rollout", ev.DeploymentID),
			zap.String("revision", ev.Revision))
		if err := s.sink(ev); err != nil {
			// Not taken (the receiver is stopping): save nothing more, so
			// that the next start derives the event again.
			s.sinkFailed = true
			s.logger.Warn("Rollout event not recorded; it will be derived again at the next start",
				zap.String("rollout", ev.DeploymentID), zap.Stringer("kind", ev.Kind), zap.Error(err))
			return
		}
	}
	if !initial {
		s.saveLocked(context.Background())
	}
}

func (s *Source) handleDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if d, ok := obj.(*Deployment); ok {
		s.saveMu.Lock()
		defer s.saveMu.Unlock()
		s.tracker.forget(d.Namespace, d.Name)
		s.saveLocked(context.Background())
	}
}

func (s *Source) watchError(ctx context.Context, r *cache.Reflector, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	// Keep client-go's own handling (it recognizes expired watches and
	// logs), and tell the receiver so it can report component status.
	cache.DefaultWatchErrorHandler(ctx, r, err)
	s.logger.Warn("Kubernetes list/watch failed; retrying", zap.Error(err))
	if s.onWatchError != nil {
		s.onWatchError(err)
	}
}
