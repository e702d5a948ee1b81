package k8s

import (
	"context"
	"errors"
	"sync"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// newDeploymentInformer is the informer that client-go's factory builds for
// Deployments, with every list and watch request reported to
// s.requestDone: client-go retries a refused watch without telling the
// watch error handler, so without this an API server unreachable for
// minutes would go unreported, and a recovery would never be.
func (s *Source) newDeploymentInformer(ns string) cache.SharedIndexInformer {
	deployments := s.client.AppsV1().Deployments(ns)
	tweak := func(o *metav1.ListOptions) { o.LabelSelector = s.cfg.LabelSelector }
	list := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		tweak(&o)
		l, err := deployments.List(ctx, o)
		s.requestDone(err)
		return l, err
	}
	watchFn := func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		tweak(&o)
		w, err := deployments.Watch(ctx, o)
		s.requestDone(err)
		if err != nil {
			return nil, err
		}
		return newObservedWatch(w, func(err error) { s.watchEnded(ns, err) }), nil
	}
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc:  list,
		WatchFuncWithContext: watchFn,
	}, s.client)
	inf := cache.NewSharedIndexInformerWithOptions(lw, &appsv1.Deployment{}, cache.SharedIndexInformerOptions{})
	_ = inf.SetTransform(transformer(s.cfg))
	return inf
}

// watchEnded logs an error the API server sent in a watch stream. An
// expired watch (410 Gone: the resourceVersion it resumed from was
// compacted) is routine, but client-go only logs it at a debug level, and
// it means the informer lists every Deployment again.
func (s *Source) watchEnded(ns string, err error) {
	if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		s.logger.Info("Kubernetes watch expired (410 Gone); listing the Deployments again", zap.String("namespace", ns), zap.Error(err))
		return
	}
	s.logger.Warn("Kubernetes watch ended with an error; the informer retries", zap.String("namespace", ns), zap.Error(err))
}

// requestDone tracks whether the API server answers: the first failure
// after a success is reported (onWatchError), and so is the first success
// after failures (onRecovered). Failures in between are the informer's
// retries; the watch error handler still reports those it sees.
func (s *Source) requestDone(err error) {
	// A watch from a compacted resourceVersion (410 Gone) is the API
	// server working as designed: the informer lists again.
	if errors.Is(err, context.Canceled) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		return
	}
	failing := err != nil
	if s.apiFailing.Swap(failing) == failing {
		return
	}
	if failing {
		s.logger.Warn("Kubernetes API server request failed; the informer retries")
		if s.onWatchError != nil {
			s.onWatchError(err)
		}
		return
	}
	s.logger.Info("Kubernetes API server reachable again")
	if s.onRecovered != nil {
		s.onRecovered()
	}
}

// observedWatch passes a watch's events on, telling onError of the error
// events. (watch.Filter would do, but its goroutine outlives Stop while
// blocked on a send.)
type observedWatch struct {
	inner  watch.Interface
	result chan watch.Event
	done   chan struct{}
	once   sync.Once
}

func newObservedWatch(inner watch.Interface, onError func(error)) *observedWatch {
	w := &observedWatch{inner: inner, result: make(chan watch.Event), done: make(chan struct{})}
	go func() {
		defer close(w.result)
		for ev := range inner.ResultChan() {
			if ev.Type == watch.Error {
				onError(apierrors.FromObject(ev.Object))
			}
			select {
			case w.result <- ev:
			case <-w.done:
				return
			}
		}
	}()
	return w
}

func (w *observedWatch) ResultChan() <-chan watch.Event { return w.result }

func (w *observedWatch) Stop() {
	w.once.Do(func() {
		close(w.done)
		w.inner.Stop()
	})
}
