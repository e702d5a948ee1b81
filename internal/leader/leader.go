// Package leader elects one replica of the receiver as the leader through a
// coordination.k8s.io Lease (client-go leaderelection), so that only one
// replica watches Kubernetes and emits the DORA metrics.
package leader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Config configures the election.
type Config struct {
	// LeaseName and LeaseNamespace name the Lease object.
	LeaseName      string `mapstructure:"lease_name"`
	LeaseNamespace string `mapstructure:"lease_namespace"`
	// Identity names this replica; empty means the pod name (HOSTNAME).
	Identity string `mapstructure:"identity"`
	// LeaseDuration is how long followers wait before taking over from a
	// leader that stopped renewing: the longest a crash goes unnoticed.
	LeaseDuration time.Duration `mapstructure:"lease_duration"`
	// RenewDeadline is how long the leader keeps trying to renew before it
	// steps down.
	RenewDeadline time.Duration `mapstructure:"renew_deadline"`
	// RetryPeriod is the pause between attempts.
	RetryPeriod time.Duration `mapstructure:"retry_period"`
}

// DefaultConfig is client-go's recommended timing.
func DefaultConfig() Config {
	return Config{
		LeaseName:     "otelcol-dora",
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
	}
}

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if c.LeaseName == "" {
		errs = append(errs, errors.New("lease_name: must not be empty"))
	}
	if c.LeaseDuration <= c.RenewDeadline {
		errs = append(errs, fmt.Errorf("lease_duration: %s must be longer than renew_deadline %s", c.LeaseDuration, c.RenewDeadline))
	}
	if c.RetryPeriod <= 0 || c.RenewDeadline <= c.RetryPeriod {
		errs = append(errs, fmt.Errorf("renew_deadline: %s must be longer than retry_period %s (which must be positive)", c.RenewDeadline, c.RetryPeriod))
	}
	return errors.Join(errs...)
}

// Callbacks are told of leadership changes. They run on the elector's
// goroutine and must not block for long.
type Callbacks struct {
	// OnStartedLeading: this replica leads; ctx ends when it stops leading.
	OnStartedLeading func(ctx context.Context)
	// OnStoppedLeading: this replica no longer leads (also on shutdown).
	OnStoppedLeading func()
	// OnNewLeader: the leader is now identity (possibly this replica).
	OnNewLeader func(identity string)
}

// Elector runs the election until its context ends, rejoining after it
// loses the lease, so a replica that stepped down can lead again.
type Elector struct {
	cfg      Config
	identity string
	client   kubernetes.Interface
	logger   *zap.Logger
	cb       Callbacks

	leading atomic.Bool
	mu      sync.Mutex
	leader  string
}

// New returns an elector; namespace is used when the config names none.
func New(client kubernetes.Interface, cfg Config, namespace string, logger *zap.Logger, cb Callbacks) (*Elector, error) {
	if cfg.LeaseNamespace == "" {
		cfg.LeaseNamespace = namespace
	}
	if cfg.LeaseNamespace == "" {
		return nil, errors.New("lease_namespace: required outside a pod (no namespace to default to)")
	}
	id := cfg.Identity
	if id == "" {
		id, _ = os.Hostname()
	}
	if id == "" {
		return nil, errors.New("identity: required (no hostname)")
	}
	return &Elector{cfg: cfg, identity: id, client: client, logger: logger, cb: cb}, nil
}

// Identity is this replica's name in the Lease.
func (e *Elector) Identity() string { return e.identity }

// IsLeader reports whether this replica holds the lease now.
func (e *Elector) IsLeader() bool { return e.leading.Load() }

// Leader is the identity of the current leader, as last observed.
func (e *Elector) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

// Run campaigns until ctx ends.
func (e *Elector) Run(ctx context.Context) {
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(e.electionConfig())
		if err != nil {
			// Only a programming error (validated config) gets here.
			e.logger.Error("Leader election misconfigured", zap.Error(err))
			return
		}
		le.Run(ctx)
		// Run returns when leadership is lost or ctx ends; campaign again
		// unless we are stopping.
		select {
		case <-ctx.Done():
		case <-time.After(e.cfg.RetryPeriod):
		}
	}
}

func (e *Elector) electionConfig() leaderelection.LeaderElectionConfig {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(e.cfg),
		Client:     e.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.identity},
	}
	return leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: e.cfg.LeaseDuration,
		RenewDeadline: e.cfg.RenewDeadline,
		RetryPeriod:   e.cfg.RetryPeriod,
		// Give the lease up on a clean stop, so a follower takes over at
		// once instead of after LeaseDuration.
		ReleaseOnCancel: true,
		Name:            e.cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				e.leading.Store(true)
				e.logger.Info("Became the leader", zap.String("identity", e.identity), zap.String("lease", e.cfg.LeaseNamespace+"/"+e.cfg.LeaseName))
				if e.cb.OnStartedLeading != nil {
					e.cb.OnStartedLeading(ctx)
				}
			},
			OnStoppedLeading: func() {
				was := e.leading.Swap(false)
				if was {
					e.logger.Info("Stopped leading", zap.String("identity", e.identity))
				}
				if e.cb.OnStoppedLeading != nil {
					e.cb.OnStoppedLeading()
				}
			},
			OnNewLeader: func(identity string) {
				e.mu.Lock()
				e.leader = identity
				e.mu.Unlock()
				if e.cb.OnNewLeader != nil {
					e.cb.OnNewLeader(identity)
				}
			},
		},
	}
}

func metaFor(c Config) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: c.LeaseName, Namespace: c.LeaseNamespace}
}
