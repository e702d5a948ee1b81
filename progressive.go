package dorareceiver

import (
	"errors"

	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/argorollouts"
	"github.com/otelcol-dora/dorareceiver/internal/crdwatch"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/flagger"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// claimer is a progressive-delivery source that rolls some Deployments out
// itself (a Rollout's workloadRef, a Canary's target and its primary).
type claimer interface {
	Claims(namespace, name string) bool
}

// validateProgressive checks the argo_rollouts and flagger sections
// against the kubernetes section, whose connection and keys they use.
func (cfg *Config) validateProgressive() error {
	var errs []error
	if cfg.Kubernetes.HasValue() {
		return nil
	}
	if cfg.ArgoRollouts.HasValue() {
		errs = append(errs, errors.New("argo_rollouts: needs the kubernetes section (its API-server connection, environment rules and commit keys apply to Rollouts)"))
	}
	if cfg.Flagger.HasValue() {
		errs = append(errs, errors.New("flagger: needs the kubernetes section (its API-server connection, environment rules and commit keys apply to Canaries)"))
	}
	return errors.Join(errs...)
}

// progressiveSources builds the Argo Rollouts and Flagger sources that are
// configured, on the kubernetes section's connection.
func (r *doraReceiver) progressiveSources(kc *k8s.Config) error {
	ac, fc := r.cfg.ArgoRollouts.Get(), r.cfg.Flagger.Get()
	if ac == nil && fc == nil {
		return nil
	}
	client, err := crdwatch.NewClient(kc)
	if err != nil {
		return err
	}
	onErr := func(err error) {
		componentstatus.ReportStatus(r.host, componentstatus.NewRecoverableErrorEvent(err))
	}
	if ac != nil {
		s := argorollouts.New(ac, kc, client, r.logger.With(zap.String("source", event.SourceArgoRollouts)), r.applyOwn, onErr)
		r.sources = append(r.sources, s)
		r.claimers = append(r.claimers, s)
	}
	if fc != nil {
		s := flagger.New(fc, kc, client, r.logger.With(zap.String("source", event.SourceFlagger)), r.applyOwn, onErr)
		r.sources = append(r.sources, s)
		r.claimers = append(r.claimers, s)
	}
	return nil
}

// applyKubernetes is the sink of the Kubernetes source: a Deployment that
// a Rollout or a Canary rolls out is counted by that resource's source,
// not again as a Deployment.
func (r *doraReceiver) applyKubernetes(ev event.Event) error {
	for _, c := range r.claimers {
		if c.Claims(ev.Service.Namespace, ev.Service.Name) {
			r.logger.Debug("Deployment rollout left to its Rollout or Canary",
				zap.String("namespace", ev.Service.Namespace), zap.String("deployment", ev.Service.Name), zap.Stringer("kind", ev.Kind))
			return nil
		}
	}
	return r.applyOwn(ev)
}

// applyOwn is the sink of the receiver's own cluster sources (Kubernetes,
// Argo Rollouts, Flagger): their events are about the cluster the
// receiver watches, named by the cluster setting (empty: none). An agent
// forwards them to its logs pipeline instead (agent.go).
func (r *doraReceiver) applyOwn(ev event.Event) error {
	ev.Service.Cluster = r.cfg.Cluster
	if r.agent() {
		return r.forward(ev)
	}
	return r.applyAsync(ev)
}
