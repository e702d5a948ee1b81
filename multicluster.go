package dorareceiver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	hist "github.com/otelcol-dora/dorareceiver/internal/history"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// A central receiver can watch several API servers directly
// (kubernetes::clusters, docs/multicluster.md): one Kubernetes source per
// cluster, each with its own client, informers, work queue, worker and
// saved state (persist.Store.ClusterStore), and, when configured, its own
// Argo Rollouts and Flagger sources. Their events carry the cluster's name
// (event.Service.Cluster), so the series are those the agent topology
// gives. A cluster whose API server is down only stops that cluster's
// counting: its informers retry on their own, and the component status
// names the clusters that fail.

// validateClusterSetting refuses the cluster setting with
// kubernetes::clusters, whose entries name their clusters: one name would
// not say which.
func (cfg *Config) validateClusterSetting() error {
	if kc := cfg.Kubernetes.Get(); kc != nil && len(kc.Clusters) > 0 && cfg.Cluster != "" {
		return fmt.Errorf("cluster: %q is set with kubernetes::clusters, whose entries name each cluster; remove cluster", cfg.Cluster)
	}
	return nil
}

// startKubernetesLocked builds the sources of every watched cluster;
// r.leadMu is held. They start with the other sources.
func (r *doraReceiver) startKubernetesLocked(kc *k8s.Config) error {
	r.clusterStatus = newClusterStatus(r.reportStatus)
	for _, w := range kc.WatchedClusters() {
		logger := r.logger
		if w.Name != "" {
			logger = logger.With(zap.String("cluster", w.Name))
		}
		onErr := func(err error) { r.clusterStatus.failed(w.Name, err) }
		sink := r.clusterSink(w.Name)
		claimers, err := r.progressiveSources(w.Config, logger, sink, onErr)
		if err != nil {
			return clusterError(w.Name, err)
		}
		client, err := k8s.NewClient(w.Config)
		if err != nil {
			return clusterError(w.Name, err)
		}
		opts := []k8s.Option{
			k8s.WithWatchErrorHandler(onErr),
			k8s.WithWatchRecoveredHandler(func() { r.clusterStatus.recovered(w.Name) }),
		}
		if store := r.core.Store(); store != nil {
			opts = append(opts, k8s.WithStore(store.ClusterStore(w.Name)))
		}
		live := k8s.New(w.Config, client, logger.With(zap.String("source", event.SourceKubernetes)), r.kubernetesSink(claimers, sink), opts...)
		r.sources = append(r.sources, live)
		if w.Config.ImportHistory && !r.agent() {
			// The live source is asked which rollouts it counts itself, so
			// the import and the first list count each once.
			hc, err := k8s.NewHistoryClient(w.Config)
			if err != nil {
				return clusterError(w.Name, err)
			}
			imp := k8s.NewHistorySource(hc, w.Config, logger.With(zap.String("source", event.SourceKubernetes)), k8s.WithLiveSource(live))
			r.clusterHistory = append(r.clusterHistory, clusterHistory{Source: imp, cluster: w.Name, setting: r.cfg.Cluster})
		}
	}
	return nil
}

// clusterHistory is the history import of one watched cluster: its events
// carry the cluster's name as clusterSink's do (the cluster setting for
// the single-cluster form), and its saved progress is the cluster's own.
type clusterHistory struct {
	hist.Source
	// cluster is the entry's name in kubernetes::clusters, "" for the
	// single-cluster form, whose events carry setting (the cluster
	// setting).
	cluster, setting string
}

func (c clusterHistory) Name() string {
	if c.cluster == "" {
		return c.Source.Name()
	}
	return c.Source.Name() + "/" + c.cluster
}

func (c clusterHistory) Import(ctx context.Context, w hist.Window, cursor string, sink hist.Sink) error {
	name := c.cluster
	if name == "" {
		name = c.setting
	}
	return c.Source.Import(ctx, w, cursor, clusterBatches{next: sink, cluster: name})
}

type clusterBatches struct {
	next    hist.Sink
	cluster string
}

func (s clusterBatches) Apply(ctx context.Context, b hist.Batch) error {
	for i := range b.Events {
		b.Events[i].Service.Cluster = s.cluster
	}
	return s.next.Apply(ctx, b)
}

// clusterSink is the sink of the sources of the named cluster: their
// events carry the cluster's name. The single-cluster form's ("") carry the
// cluster setting (empty: none). An agent forwards them to its logs
// pipeline instead of applying them (agent.go).
func (r *doraReceiver) clusterSink(cluster string) k8s.Sink {
	if cluster == "" {
		cluster = r.cfg.Cluster
	}
	return func(ev event.Event) error {
		ev.Service.Cluster = cluster
		if r.agent() {
			// An agent forwards them to its logs pipeline (agent.go).
			return r.forward(ev)
		}
		return r.applyAsync(ev)
	}
}

func clusterError(cluster string, err error) error {
	if cluster == "" {
		return err
	}
	return fmt.Errorf("kubernetes::clusters %q: %w", cluster, err)
}

// reportStatus reports the receiver's component status.
func (r *doraReceiver) reportStatus(ev *componentstatus.Event) {
	componentstatus.ReportStatus(r.host, ev)
}

// clusterStatus turns the failures and recoveries of the watched clusters
// into one component status: OK once every cluster answers again, else a
// recoverable error naming the clusters that do not.
type clusterStatus struct {
	report func(*componentstatus.Event)

	mu      sync.Mutex
	failing map[string]error
}

func newClusterStatus(report func(*componentstatus.Event)) *clusterStatus {
	return &clusterStatus{report: report, failing: map[string]error{}}
}

func (s *clusterStatus) failed(cluster string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing[cluster] = err
	s.reportLocked()
}

func (s *clusterStatus) recovered(cluster string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failing, cluster)
	s.reportLocked()
}

// reportLocked reports the status of all clusters; s.mu is held.
func (s *clusterStatus) reportLocked() {
	if len(s.failing) == 0 {
		s.report(componentstatus.NewEvent(componentstatus.StatusOK))
		return
	}
	names := make([]string, 0, len(s.failing))
	for n := range s.failing {
		names = append(names, n)
	}
	slices.Sort(names)
	errs := make([]error, 0, len(names))
	for _, n := range names {
		errs = append(errs, clusterError(n, s.failing[n]))
	}
	err := errors.Join(errs...)
	if len(names) > 1 || names[0] != "" {
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = fmt.Sprintf("%q", n)
		}
		err = fmt.Errorf("kubernetes: API server of cluster %s not answering; the other clusters are still watched: %w", strings.Join(quoted, ", "), err)
	}
	s.report(componentstatus.NewRecoverableErrorEvent(err))
}
