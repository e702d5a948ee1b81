package dorareceiver

import (
	"errors"

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
// configured, on the connection of kc (one watched cluster's section),
// reporting errors through onErr; it returns them as that cluster's
// claimers. Their events go to sink.
func (r *doraReceiver) progressiveSources(kc *k8s.Config, logger *zap.Logger, sink k8s.Sink, onErr func(error)) ([]claimer, error) {
	ac, fc := r.cfg.ArgoRollouts.Get(), r.cfg.Flagger.Get()
	if ac == nil && fc == nil {
		return nil, nil
	}
	client, err := crdwatch.NewClient(kc)
	if err != nil {
		return nil, err
	}
	var claimers []claimer
	if ac != nil {
		s := argorollouts.New(ac, kc, client, logger.With(zap.String("source", event.SourceArgoRollouts)), sink, onErr)
		r.sources = append(r.sources, s)
		claimers = append(claimers, s)
	}
	if fc != nil {
		s := flagger.New(fc, kc, client, logger.With(zap.String("source", event.SourceFlagger)), sink, onErr)
		r.sources = append(r.sources, s)
		claimers = append(claimers, s)
	}
	r.claimers = append(r.claimers, claimers...)
	return claimers, nil
}

// kubernetesSink is the sink of a cluster's Kubernetes source: a
// Deployment that a Rollout or a Canary of the same cluster rolls out is
// counted by that resource's source, not again as a Deployment.
func (r *doraReceiver) kubernetesSink(claimers []claimer, next k8s.Sink) k8s.Sink {
	return func(ev event.Event) error {
		for _, c := range claimers {
			if c.Claims(ev.Service.Namespace, ev.Service.Name) {
				r.logger.Debug("Deployment rollout left to its Rollout or Canary",
					zap.String("namespace", ev.Service.Namespace), zap.String("deployment", ev.Service.Name), zap.Stringer("kind", ev.Kind))
				return nil
			}
		}
		return next(ev)
	}
}
