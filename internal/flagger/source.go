package flagger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// Config configures the source: which Canaries it watches. The API-server
// connection, the environment rules and the commit and team keys are the
// kubernetes section's.
type Config struct {
	crdwatch.Config `mapstructure:",squash"`
}

// Validate reports problems naming the key, relative to flagger.
func (c *Config) Validate() error { return c.Config.Validate() }

var deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}

// getTimeout bounds reading a target Deployment.
const getTimeout = 10 * time.Second

// Source watches Canaries and sends their rollouts to a Sink.
type Source struct {
	ctrl    *crdwatch.Controller
	client  dynamic.Interface
	kc      *k8s.Config
	tracker *tracker
	sink    k8s.Sink
	logger  *zap.Logger
	now     func() time.Time
}

// New returns a Source on client; kc is the kubernetes section.
func New(cfg *Config, kc *k8s.Config, client dynamic.Interface, logger *zap.Logger, sink k8s.Sink, onWatchError func(error)) *Source {
	s := &Source{client: client, kc: kc, tracker: newTracker(&kc.Environment), sink: sink, logger: logger, now: time.Now}
	s.ctrl = crdwatch.New(crdwatch.Options{
		Name:         "flagger",
		Client:       client,
		GVR:          GVR,
		Config:       cfg.Config,
		Transform:    func(u *unstructured.Unstructured) runtime.Object { return compact(u) },
		Sync:         s.sync,
		Claims:       claims,
		Logger:       logger,
		OnWatchError: onWatchError,
	})
	return s
}

// claims: the Deployment a Canary targets and the primary Flagger makes
// of it. Their own rollouts are Flagger's mechanics (the target scaled up
// for the analysis and to zero after it, the primary updated at
// promotion): the Canary counts each revision once, not the Kubernetes
// source.
func claims(obj any) []string {
	if c, ok := obj.(*Canary); ok && c.TargetKind == "Deployment" && c.Target != "" {
		return []string{c.Namespace + "/" + c.Target, c.Namespace + "/" + c.Target + primarySuffix}
	}
	return nil
}

// Start starts watching.
func (s *Source) Start(ctx context.Context) error { return s.ctrl.Start(ctx) }

// Shutdown stops watching.
func (s *Source) Shutdown(ctx context.Context) error { return s.ctrl.Shutdown(ctx) }

// WaitForSync blocks until the first lists are in, or ctx ends.
func (s *Source) WaitForSync(ctx context.Context) bool { return s.ctrl.WaitForSync(ctx) }

// Idle reports whether every change seen has been handled.
func (s *Source) Idle() bool { return s.ctrl.Idle() }

// Claims reports whether a Canary rolls the Deployment namespace/name out
// (its target, or the target's primary).
func (s *Source) Claims(namespace, name string) bool { return s.ctrl.Claims(namespace, name) }

func (s *Source) sync(ctx context.Context, key string, obj runtime.Object, initial bool) error {
	if obj == nil {
		s.tracker.forget(key)
		return nil
	}
	c, ok := obj.(*Canary)
	if !ok {
		return fmt.Errorf("unexpected object %T from the Canary informer", obj)
	}
	next, events := s.tracker.observe(key, c, initial, s.now(), func() crdwatch.Workload { return s.workload(ctx, c) })
	for _, ev := range events {
		s.logger.Debug("Canary event", zap.Stringer("kind", ev.Kind), zap.String("rollout", ev.DeploymentID),
			zap.String("environment", ev.Service.Environment), zap.String("revision", ev.Revision), zap.String("reason", ev.Reason))
		if err := s.sink(ev); err != nil {
			return fmt.Errorf("event %s not recorded: %w", ev.ID, err)
		}
	}
	s.tracker.commit(key, next)
	return nil
}

// workload reads the commit, environment and team keys on the target
// Deployment, as the Kubernetes source reads them: the Canary itself does
// not carry the pod template. Not found (another kind, or not readable):
// none.
func (s *Source) workload(ctx context.Context, c *Canary) crdwatch.Workload {
	if c.TargetKind != "Deployment" || c.Target == "" || strings.ContainsRune(c.Target, '/') {
		return crdwatch.Workload{}
	}
	ctx, cancel := context.WithTimeout(ctx, getTimeout)
	defer cancel()
	u, err := s.client.Resource(deploymentsGVR).Namespace(c.Namespace).Get(ctx, c.Target, metav1.GetOptions{})
	if err != nil {
		s.logger.Debug("Target Deployment not read; the revision has no commit", zap.String("canary", c.Namespace+"/"+c.Name), zap.Error(err))
		return crdwatch.Workload{}
	}
	return crdwatch.ReadWorkload(s.kc, u)
}
