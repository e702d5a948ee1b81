package crdwatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// maxRetries is how often a key whose sync failed is retried (with the
// queue's rate limiting) before it is dropped until its next change.
const maxRetries = 8

// SyncFunc handles the object stored under key (namespace/name): obj is
// the transformed object, nil when it no longer exists. initial is true
// when the object came with the informer's first list and this is its
// first sync: it existed when the source started. An error requeues the
// key with rate limiting (and initial kept).
type SyncFunc func(ctx context.Context, key string, obj runtime.Object, initial bool) error

// Options configure a Controller.
type Options struct {
	// Name names the controller in logs and its work queue.
	Name   string
	Client dynamic.Interface
	GVR    schema.GroupVersionResource
	Config Config
	// Transform reduces a listed or watched object to what the source
	// uses; the informer stores only that.
	Transform func(*unstructured.Unstructured) runtime.Object
	Sync      SyncFunc
	// Claims names the Deployments ("namespace/name") that an object rolls
	// out itself; nil: none (see Controller.Claims).
	Claims func(obj any) []string
	Logger *zap.Logger
	// OnWatchError is told of list and watch failures; nil ignores them.
	OnWatchError func(error)
}

// Controller runs one informer per watched namespace and a worker. The
// informers' handlers only add keys to the queue; the worker reads the
// current object from the store, so that a burst of changes to one object
// is handled once, at its latest state.
type Controller struct {
	opts    Options
	queue   workqueue.TypedRateLimitingInterface[string]
	stores  []cache.Indexer
	synced  []cache.InformerSynced
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	initMu  sync.Mutex
	initial map[string]bool
	// claimsWaited: Claims waits for the first lists once only, so that a
	// resource whose CRD is not installed (its list fails, forever) costs
	// the Kubernetes source one wait, not one per Deployment.
	claimsWaited sync.Once
}

// New returns a Controller; Start starts it.
func New(opts Options) *Controller {
	return &Controller{
		opts: opts,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: opts.Name}),
		initial: map[string]bool{},
	}
}

// Start starts the informers and, once they have listed, the worker. It
// does not wait for the lists: an unreachable API server (or a resource
// whose CRD is not installed yet) is retried in the background.
func (c *Controller) Start(context.Context) error {
	var ctx context.Context
	ctx, c.cancel = context.WithCancel(context.Background())
	namespaces := c.opts.Config.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	tweak := func(o *metav1.ListOptions) { o.LabelSelector = c.opts.Config.LabelSelector }
	c.opts.Logger.Info("Watching "+c.opts.GVR.Resource+"."+c.opts.GVR.Group,
		zap.Strings("namespaces", c.opts.Config.Namespaces), zap.String("label_selector", c.opts.Config.LabelSelector))
	for _, ns := range namespaces {
		indexers := cache.Indexers{}
		if c.opts.Claims != nil {
			indexers[claimsIndex] = func(obj any) ([]string, error) { return c.opts.Claims(obj), nil }
		}
		inf := dynamicinformer.NewFilteredDynamicInformer(c.opts.Client, c.opts.GVR, ns, 0, indexers, tweak).Informer()
		if err := inf.SetTransform(c.transform); err != nil {
			return err
		}
		if err := inf.SetWatchErrorHandlerWithContext(c.watchError); err != nil {
			return err
		}
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, initial bool) {
				if initial {
					if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
						c.initMu.Lock()
						c.initial[key] = true
						c.initMu.Unlock()
					}
				}
				c.enqueue(obj)
			},
			UpdateFunc: func(_, obj any) { c.enqueue(obj) },
			DeleteFunc: c.enqueue,
		})
		if err != nil {
			return err
		}
		c.synced = append(c.synced, reg.HasSynced)
		c.stores = append(c.stores, inf.GetIndexer())
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			inf.RunWithContext(ctx)
		}()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		// As in sample-controller: the worker starts once the stores hold
		// the first lists, so that initial objects are known as such.
		if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
			return
		}
		for c.processNext(ctx) {
		}
	}()
	return nil
}

// transform is the informer's transform: it may be called again on an
// object already transformed, or on a tombstone.
func (c *Controller) transform(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return c.opts.Transform(u), nil
	}
	return obj, nil
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		c.opts.Logger.Warn("Object without a key from the informer", zap.String("type", fmt.Sprintf("%T", obj)), zap.Error(err))
		return
	}
	c.queue.Add(key)
}

// processNext handles one key; false when the queue is shut down.
func (c *Controller) processNext(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	var obj runtime.Object
	for _, st := range c.stores {
		if o, ok, _ := st.GetByKey(key); ok {
			obj, _ = o.(runtime.Object)
			break
		}
	}
	c.initMu.Lock()
	initial := c.initial[key]
	c.initMu.Unlock()
	if err := c.opts.Sync(ctx, key, obj, initial); err != nil {
		if c.queue.NumRequeues(key) < maxRetries && ctx.Err() == nil {
			c.opts.Logger.Debug("Sync failed; retrying", zap.String("key", key), zap.Error(err))
			c.queue.AddRateLimited(key)
			return true
		}
		c.opts.Logger.Warn("Sync failed; dropped until the object changes", zap.String("key", key), zap.Error(err))
	}
	c.initMu.Lock()
	delete(c.initial, key)
	c.initMu.Unlock()
	c.queue.Forget(key)
	return true
}

func (c *Controller) watchError(ctx context.Context, r *cache.Reflector, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	cache.DefaultWatchErrorHandler(ctx, r, err)
	c.opts.Logger.Warn("List/watch failed; retrying (is the CRD installed, and may the collector list and watch it?)",
		zap.String("resource", c.opts.GVR.String()), zap.Error(err))
	if c.opts.OnWatchError != nil {
		c.opts.OnWatchError(err)
	}
}

// WaitForSync blocks until every informer has listed, or ctx ends.
func (c *Controller) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), c.synced...)
}

// Idle reports whether the informers have listed and the queue is empty
// (nothing waits to be handled; a retry waiting for its rate limit counts
// as waiting).
func (c *Controller) Idle() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	return c.queue.Len() == 0
}

// Get returns the stored object of key, if any.
func (c *Controller) Get(key string) (runtime.Object, bool) {
	for _, st := range c.stores {
		if o, ok, _ := st.GetByKey(key); ok {
			obj, ok := o.(runtime.Object)
			return obj, ok
		}
	}
	return nil, false
}

// List returns every stored object.
func (c *Controller) List() []any {
	var out []any
	for _, st := range c.stores {
		out = append(out, st.List()...)
	}
	return out
}

// Shutdown stops the informers and the worker, and waits for them.
func (c *Controller) Shutdown(context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	c.queue.ShutDown()
	c.wg.Wait()
	return nil
}

const claimsIndex = "claims"

// claimsWait bounds how long Claims waits for the first lists.
const claimsWait = 10 * time.Second

// Claims reports whether a stored object claims the Deployment
// namespace/name (Options.Claims). The first call waits for the informers'
// first lists, at most claimsWait: a Deployment seen by the Kubernetes
// source right after the start must not be counted before the resource
// that claims it is known. Later calls do not wait.
func (c *Controller) Claims(namespace, name string) bool {
	if c.opts.Claims == nil {
		return false
	}
	c.claimsWaited.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), claimsWait)
		defer cancel()
		c.WaitForSync(ctx)
	})
	key := namespace + "/" + name
	for _, st := range c.stores {
		if objs, err := st.ByIndex(claimsIndex, key); err == nil && len(objs) > 0 {
			return true
		}
	}
	return false
}
