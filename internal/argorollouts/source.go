package argorollouts

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// Config configures the source: which Rollouts it watches. The API-server
// connection, the environment rules and the commit and team keys are the
// kubernetes section's.
type Config struct {
	crdwatch.Config `mapstructure:",squash"`
}

// Validate reports problems naming the key, relative to argo_rollouts.
func (c *Config) Validate() error { return c.Config.Validate() }

// Source watches Rollouts and sends their rollouts to a Sink.
type Source struct {
	ctrl    *crdwatch.Controller
	tracker *tracker
	sink    k8s.Sink
	logger  *zap.Logger
	now     func() time.Time
}

// New returns a Source on client; kc is the kubernetes section (its
// environment rules and keys). onWatchError is told of list and watch
// failures (nil: not).
func New(cfg *Config, kc *k8s.Config, client dynamic.Interface, logger *zap.Logger, sink k8s.Sink, onWatchError func(error)) *Source {
	s := &Source{tracker: newTracker(&kc.Environment), sink: sink, logger: logger, now: time.Now}
	s.ctrl = crdwatch.New(crdwatch.Options{
		Name:         "argo_rollouts",
		Client:       client,
		GVR:          GVR,
		Config:       cfg.Config,
		Transform:    func(u *unstructured.Unstructured) runtime.Object { return compact(u, kc) },
		Sync:         s.sync,
		Claims:       claims,
		Logger:       logger,
		OnWatchError: onWatchError,
	})
	return s
}

// claims: a Rollout with a workloadRef takes its template from that
// Deployment, which Argo Rollouts scales down; the Deployment's own
// rollouts are the Rollout's, not counted again by the Kubernetes source.
func claims(obj any) []string {
	if r, ok := obj.(*Rollout); ok && r.WorkloadRef != "" {
		return []string{r.Namespace + "/" + r.WorkloadRef}
	}
	return nil
}

// Start starts watching; see crdwatch.Controller.Start.
func (s *Source) Start(ctx context.Context) error { return s.ctrl.Start(ctx) }

// Shutdown stops watching.
func (s *Source) Shutdown(ctx context.Context) error { return s.ctrl.Shutdown(ctx) }

// WaitForSync blocks until the first lists are in, or ctx ends.
func (s *Source) WaitForSync(ctx context.Context) bool { return s.ctrl.WaitForSync(ctx) }

// Idle reports whether every change seen has been handled.
func (s *Source) Idle() bool { return s.ctrl.Idle() }

// Claims reports whether a Rollout rolls the Deployment namespace/name
// out (its workloadRef).
func (s *Source) Claims(namespace, name string) bool { return s.ctrl.Claims(namespace, name) }

func (s *Source) sync(_ context.Context, key string, obj runtime.Object, initial bool) error {
	if obj == nil {
		s.tracker.forget(key)
		return nil
	}
	r, ok := obj.(*Rollout)
	if !ok {
		return fmt.Errorf("unexpected object %T from the Rollout informer", obj)
	}
	next, events := s.tracker.observe(key, r, initial, s.now())
	for _, ev := range events {
		s.logger.Debug("Rollout event", zap.Stringer("kind", ev.Kind), zap.String("rollout", ev.DeploymentID),
			zap.String("environment", ev.Service.Environment), zap.String("revision", ev.Revision), zap.String("reason", ev.Reason))
		if err := s.sink(ev); err != nil {
			// Not taken: the state is not advanced, so the key's retry
			// derives the events again (the ones taken are deduplicated
			// by their ids).
			return fmt.Errorf("event %s not recorded: %w", ev.ID, err)
		}
	}
	s.tracker.commit(key, next)
	return nil
}
