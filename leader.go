package dorareceiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/leader"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Leader election (internal/leader) lets several replicas run with one
// state: only the replica holding the Lease opens the storage, restores the
// state, watches Kubernetes and emits. Followers keep their webhook server
// up and answer deliveries 503 + Retry-After, and their ready_path 503, so
// a Service with a readinessProbe sends deliveries to the leader only.
//
// A leader that loses the lease stops watching and emitting, saves a last
// snapshot if it can, closes the storage and reports a fatal status, so
// the collector exits and Kubernetes restarts it as a follower, as
// client-go controllers do: a replica never leads twice with an engine
// that already holds state.

// LeaderElectionConfig is the leader_election section.
type LeaderElectionConfig struct {
	// LeaseName and LeaseNamespace name the coordination.k8s.io Lease;
	// the namespace defaults to the pod's (POD_NAMESPACE, or the service
	// account's namespace file).
	LeaseName      string `mapstructure:"lease_name"`
	LeaseNamespace string `mapstructure:"lease_namespace"`
	// Identity names this replica in the Lease; empty means HOSTNAME (the
	// pod name).
	Identity string `mapstructure:"identity"`
	// LeaseDuration is how long followers wait before taking over from a
	// leader that stopped renewing (the longest a crash goes unnoticed);
	// RenewDeadline how long the leader retries renewing before it stops;
	// RetryPeriod the pause between attempts.
	LeaseDuration time.Duration `mapstructure:"lease_duration"`
	RenewDeadline time.Duration `mapstructure:"renew_deadline"`
	RetryPeriod   time.Duration `mapstructure:"retry_period"`
	// AuthType, KubeConfig and Context reach the API server when there is
	// no kubernetes section; with one, its settings are used.
	AuthType   string `mapstructure:"auth_type"`
	KubeConfig string `mapstructure:"kubeconfig"`
	Context    string `mapstructure:"context"`
}

func defaultLeaderElectionConfig() LeaderElectionConfig {
	d := leader.DefaultConfig()
	return LeaderElectionConfig{
		LeaseName:     d.LeaseName,
		LeaseDuration: d.LeaseDuration,
		RenewDeadline: d.RenewDeadline,
		RetryPeriod:   d.RetryPeriod,
	}
}

func (c *LeaderElectionConfig) electionConfig() leader.Config {
	return leader.Config{
		LeaseName:      c.LeaseName,
		LeaseNamespace: c.LeaseNamespace,
		Identity:       c.Identity,
		LeaseDuration:  c.LeaseDuration,
		RenewDeadline:  c.RenewDeadline,
		RetryPeriod:    c.RetryPeriod,
	}
}

// Validate checks the timings; what depends on the rest of the config is
// checked by Config.validateLeaderElection.
func (c *LeaderElectionConfig) Validate() error {
	lc := c.electionConfig()
	return lc.Validate()
}

// serviceAccountNamespaceFile holds the pod's namespace in a pod.
var serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// podNamespace is the namespace this collector runs in, "" outside a pod.
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile(serviceAccountNamespaceFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// electionConnection is the API server connection of the election: the
// kubernetes section's when there is one. With kubernetes::clusters, one
// Lease still elects the leader of all of them: on the API server that
// leader_election's own auth_type names, else on the cluster the receiver
// runs in (the entry with auth_type serviceAccount), else on the first
// cluster listed.
func (cfg *Config) electionConnection() *k8s.Config {
	le := cfg.LeaderElection.Get()
	kc := cfg.Kubernetes.Get()
	if kc == nil || (len(kc.Clusters) > 0 && le.AuthType != "") {
		return &k8s.Config{AuthType: le.AuthType, KubeConfig: le.KubeConfig, Context: le.Context}
	}
	if len(kc.Clusters) == 0 {
		return kc
	}
	for _, cl := range kc.Clusters {
		if cl.AuthType == k8s.AuthTypeServiceAccount {
			return kc.ForCluster(cl)
		}
	}
	return kc.ForCluster(kc.Clusters[0])
}

func (cfg *Config) validateLeaderElection() error {
	le := cfg.LeaderElection.Get()
	if le == nil {
		return nil
	}
	var errs []error
	kc := cfg.Kubernetes.Get()
	switch {
	case kc != nil && len(kc.Clusters) > 0:
		// Optional: the Lease may live on an API server of its own.
		if le.AuthType == "" {
			if le.KubeConfig != "" || le.Context != "" {
				errs = append(errs, errors.New("leader_election::auth_type: kubeconfig and context are set without auth_type; set auth_type: kubeConfig to hold the Lease there, or remove them to use the clusters' (docs/multicluster.md)"))
			}
		} else if err := k8s.ValidateAuth(le.AuthType, le.KubeConfig, le.Context); err != nil {
			errs = append(errs, fmt.Errorf("leader_election::%w", err))
		}
	case kc != nil:
		if le.AuthType != "" || le.KubeConfig != "" || le.Context != "" {
			errs = append(errs, errors.New("leader_election::auth_type: the kubernetes section's connection settings are used; set auth_type, kubeconfig and context there only"))
		}
	default:
		if le.AuthType == "" {
			errs = append(errs, fmt.Errorf("leader_election::auth_type: required without a kubernetes section, to reach the API server that holds the Lease (%s or %s)", k8s.AuthTypeServiceAccount, k8s.AuthTypeKubeConfig))
		} else if err := k8s.ValidateAuth(le.AuthType, le.KubeConfig, le.Context); err != nil {
			errs = append(errs, fmt.Errorf("leader_election::%w", err))
		}
	}
	if le.LeaseNamespace == "" && podNamespace() == "" {
		errs = append(errs, errors.New("leader_election::lease_namespace: required outside a pod (no POD_NAMESPACE and no service account namespace file to default to)"))
	}
	return errors.Join(errs...)
}

// electionIdentity is the replica's name in the Lease.
func electionIdentity(le *LeaderElectionConfig) string {
	if le.Identity != "" {
		return le.Identity
	}
	if h := os.Getenv("HOSTNAME"); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

// startElection campaigns for the Lease in the background.
func (r *doraReceiver) startElection(le *LeaderElectionConfig) error {
	client, err := k8s.NewClient(r.cfg.electionConnection())
	if err != nil {
		return fmt.Errorf("leader_election: %w", err)
	}
	lc := le.electionConfig()
	lc.Identity = electionIdentity(le)
	elector, err := leader.New(client, lc, podNamespace(), r.logger.With(zap.String("component", "leader_election")), leader.Callbacks{
		OnStartedLeading: r.lead,
		OnStoppedLeading: func() {
			// No delivery is taken from here on; lead tears down.
			r.isLeader.Store(false)
			r.leadMu.Lock()
			led := r.led
			r.leadMu.Unlock()
			if led {
				// Never campaign again: this engine holds state.
				r.electionCancel()
			}
		},
	})
	if err != nil {
		return fmt.Errorf("leader_election::%w", err)
	}
	r.elector = elector
	r.retryAfter = lc.LeaseDuration
	ctx, cancel := context.WithCancel(context.Background())
	r.electionCancel = cancel
	r.electionDone = make(chan struct{})
	r.logger.Info("Leader election started; this replica follows until it holds the Lease",
		zap.String("identity", elector.Identity()), zap.String("lease", lc.LeaseName))
	go func() {
		defer close(r.electionDone)
		elector.Run(ctx)
	}()
	return nil
}

// stopElection stops campaigning and, when this replica holds the Lease,
// releases it (the state was saved and the storage closed before), so a
// follower takes over at once.
func (r *doraReceiver) stopElection(ctx context.Context) error {
	if r.electionCancel == nil {
		return nil
	}
	r.electionCancel()
	select {
	case <-r.electionDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("leader_election: releasing the lease: %w", ctx.Err())
	}
}

// lead runs while this replica holds the Lease: ctx ends when it loses it.
func (r *doraReceiver) lead(ctx context.Context) {
	r.leadMu.Lock()
	if r.led || r.isClosing() {
		r.leadMu.Unlock()
		r.electionCancel()
		return
	}
	err := r.startLeadingLocked(ctx)
	r.leadMu.Unlock()
	if err != nil {
		err = fmt.Errorf("leader_election: starting as the leader: %w", err)
		r.logger.Error("Could not start as the leader; stepping down", zap.Error(err))
		_ = r.stepDown(context.Background(), false)
		r.electionCancel()
		componentstatus.ReportStatus(r.host, componentstatus.NewFatalErrorEvent(err))
		return
	}
	<-ctx.Done()
	// Lost the lease (renew_deadline passed), or Shutdown stopped us.
	if err := r.stepDown(context.Background(), false); err != nil {
		r.logger.Warn("Stepping down", zap.Error(err))
	}
	if !r.isClosing() {
		err := errors.New("leader_election: lost the lease; stopped watching and emitting, exiting so that this replica restarts as a follower")
		r.logger.Error(err.Error())
		componentstatus.ReportStatus(r.host, componentstatus.NewFatalErrorEvent(err))
	}
}

func (r *doraReceiver) isClosing() bool {
	select {
	case <-r.closing:
		return true
	default:
		return false
	}
}

// notReady refuses deliveries on a follower (webhook.Options.Ready).
func (r *doraReceiver) notReady() *webhook.NotReady {
	if r.isLeader.Load() {
		return nil
	}
	nr := &webhook.NotReady{Error: "this replica is not the leader; retry", RetryAfter: r.retryAfter}
	if r.elector != nil {
		nr.Leader = r.elector.Leader()
	}
	if nr.RetryAfter == 0 {
		nr.RetryAfter = time.Second
	}
	return nr
}

// health is the health_path body: every replica is alive; it tells which
// one leads.
func (r *doraReceiver) health() any {
	h := map[string]any{"status": "ok", "leader": r.isLeader.Load()}
	if r.elector != nil {
		h["identity"] = r.elector.Identity()
		h["leader_identity"] = r.elector.Leader()
	}
	return h
}
