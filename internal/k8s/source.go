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
	"k8s.io/client-go/util/workqueue"

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
	// informers counts the informers' goroutines, worker the worker's.
	informers sync.WaitGroup
	worker    sync.WaitGroup
	synced    []cache.InformerSynced
	// stores are the informers' caches by watched namespace ("" for all):
	// the worker reads the latest object of a key there.
	stores map[string]cache.Store

	// queue holds the keys (namespace/name) of the Deployments that
	// changed: the informers' handlers only add to it, so that a slow sink
	// (storage retried with backoff) never holds them, and the changes a
	// Deployment went through meanwhile are applied as one, from its
	// latest state, as after a relist.
	queue workqueue.TypedInterface[string]
	// firstList holds the objects of the informers' first list that the
	// worker has not applied yet: they are observed as existing ones
	// (tracker.observe's initial) before any later state of the same
	// Deployment. The source has synced once it is empty.
	firstListMu sync.Mutex
	firstList   map[string]*Deployment

	// store keeps the tracker's state across restarts; nil keeps it in
	// memory only. saveMu serializes the worker's applying (observe, sink,
	// save) with the other saves, so that no state is saved before the
	// events it implies are taken; sinkFailed stops saving once an event
	// was not.
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
	s := &Source{cfg: cfg, client: client, logger: logger, sink: sink, now: time.Now, tracker: newTracker(&cfg.Environment),
		stores: map[string]cache.Store{}, firstList: map[string]*Deployment{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// NewClient builds a Kubernetes client from the auth settings of cfg.
func NewClient(cfg *Config) (kubernetes.Interface, error) {
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// History import clients' rate: one list per Deployment (its ReplicaSets)
// at client-go's default 5 requests a second would take half an hour for
// 10,000 Deployments; the API server's priority and fairness still
// protects it.
const (
	historyQPS   = 50
	historyBurst = 100
)

// NewHistoryClient builds the client of the history import (see
// NewHistorySource): the auth settings of cfg, a higher request rate than
// the informers need.
func NewHistoryClient(cfg *Config) (kubernetes.Interface, error) {
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = historyQPS, historyBurst
	return kubernetes.NewForConfig(rc)
}

func restConfig(cfg *Config) (*rest.Config, error) {
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
	return rc, nil
}

// Start starts one Deployment informer per watched namespace (one for all
// namespaces when none are listed) and the worker that applies their
// changes. It does not wait for the initial sync: an unreachable API server
// is retried in the background, and Deployments listed first are still
// recognized as existing ones whenever the list succeeds.
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
	s.queue = workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Name: "dora-deployments"})
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
			AddFunc:    s.enqueueAdded,
			UpdateFunc: func(_, obj any) { s.enqueue(obj) },
			DeleteFunc: s.enqueue,
		})
		if err != nil {
			return err
		}
		s.synced = append(s.synced, reg.HasSynced)
		s.stores[ns] = inf.GetStore()
		s.informers.Add(1)
		go func() {
			defer s.informers.Done()
			inf.RunWithContext(ctx)
		}()
	}
	s.worker.Add(1)
	go func() {
		defer s.worker.Done()
		for s.applyNext() {
		}
	}()
	if s.store != nil {
		s.worker.Add(1)
		go func() {
			defer s.worker.Done()
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

// WaitForSync blocks until the Deployments of every informer's first list
// have been applied, or ctx ends.
func (s *Source) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.HasSynced)
}

// HasSynced reports whether every informer has delivered its first list
// and the worker has applied all of it.
func (s *Source) HasSynced() bool {
	for _, synced := range s.synced {
		if !synced() {
			return false
		}
	}
	s.firstListMu.Lock()
	defer s.firstListMu.Unlock()
	return len(s.firstList) == 0
}

// Watched is the number of Deployments being tracked.
func (s *Source) Watched() int { return s.tracker.len() }

// Shutdown stops the informers, lets the worker apply what they queued,
// waits for it and saves the state.
func (s *Source) Shutdown(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	s.informers.Wait()
	if s.queue != nil {
		s.queue.ShutDown()
	}
	s.worker.Wait()
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.saveLocked(ctx)
	return nil
}

// enqueueAdded queues an added Deployment; one of the first list is also
// kept as it was listed (see firstList).
func (s *Source) enqueueAdded(obj any, firstList bool) {
	if d, ok := obj.(*Deployment); ok && firstList {
		key := d.Namespace + "/" + d.Name
		s.firstListMu.Lock()
		s.firstList[key] = d
		s.firstListMu.Unlock()
	}
	s.enqueue(obj)
}

// enqueue queues the key of a changed or deleted Deployment.
func (s *Source) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		s.logger.Warn("Unexpected object from the Deployment informer", zap.String("type", fmt.Sprintf("%T", obj)), zap.Error(err))
		return
	}
	s.queue.Add(key)
}

// applyNext applies the next queued Deployment; false once the queue is
// shut down and empty.
func (s *Source) applyNext() bool {
	key, shutdown := s.queue.Get()
	if shutdown {
		return false
	}
	defer s.queue.Done(key)
	s.apply(key)
	return true
}

// apply reads the latest state of the Deployment named by key from the
// informer's cache and folds it into the tracker, handing the events it
// implies to the sink; a Deployment no longer in the cache is forgotten.
func (s *Source) apply(key string) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return
	}
	store := s.stores[metav1.NamespaceAll]
	if store == nil {
		store = s.stores[namespace]
	}
	var latest *Deployment
	if store != nil {
		if obj, exists, _ := store.GetByKey(key); exists {
			latest, _ = obj.(*Deployment)
		}
	}
	s.firstListMu.Lock()
	listed := s.firstList[key]
	s.firstListMu.Unlock()

	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	changed := false
	if listed != nil {
		s.observe(listed, true)
	}
	switch {
	case latest == nil:
		s.tracker.forget(namespace, name)
		changed = true
	case latest != listed:
		s.observe(latest, false)
		changed = true
	}
	if changed {
		s.saveLocked(context.Background())
	}
	if listed != nil {
		// Only now: the source has synced once every listed object is
		// applied.
		s.firstListMu.Lock()
		delete(s.firstList, key)
		s.firstListMu.Unlock()
	}
}

// observe folds one observation of d into the tracker and hands the events
// it implies to the sink; saveMu is held.
func (s *Source) observe(d *Deployment, firstList bool) {
	for _, ev := range s.tracker.observe(d, firstList, s.now()) {
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
