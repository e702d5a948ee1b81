package engine

import (
	"slices"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Clusters (METRICS.md, "Cluster"): a service's cluster is part of its
// identity, so deployments, lead times, failures and recoveries are per
// cluster with nothing more to do. Commits are not per service: a commit
// pushed once meets its rollouts in every cluster, each recording its own
// lead time. Incidents are the exception: an incident tool names a
// service, not a cluster, and the incident must be counted once.
//
// An incident naming no cluster, of a service that runs in clusters, is
// counted in the cluster of its likely cause: of the service's production
// deployments (in every cluster, and without a cluster) that could have
// caused it (serviceState.causeOf: the latest started before it, within
// incident_window), the latest. With none, it stays without a cluster: one
// series with no cluster attribute, an outage (attributed="false"). Its
// resolution goes where it was opened.

// base is svc without its cluster.
func base(svc event.Service) event.Service {
	svc.Cluster = ""
	return svc
}

// noteCluster remembers that svc (new) runs in its cluster.
func (e *Engine) noteCluster(svc event.Service) {
	if svc.Cluster == "" {
		return
	}
	b := base(svc)
	if !slices.Contains(e.clusters[b], svc.Cluster) {
		e.clusters[b] = append(e.clusters[b], svc.Cluster)
		slices.Sort(e.clusters[b])
	}
}

// incidentCluster returns the service an incident event is counted in:
// its own, unless it names no cluster and the service runs in clusters
// (see above).
func (e *Engine) incidentCluster(ev event.Event) event.Service {
	svc := ev.Service
	clusters := e.clusters[svc]
	if svc.Cluster != "" || len(clusters) == 0 {
		return svc
	}
	// An incident already known (reopened, resolved) stays where it was
	// opened.
	if s := e.services[svc]; s != nil && s.incident(ev.IncidentID) != nil {
		return svc
	}
	for _, c := range clusters {
		in := svc
		in.Cluster = c
		if s := e.services[in]; s != nil && s.incident(ev.IncidentID) != nil {
			return in
		}
	}
	if ev.Kind != event.IncidentOpened {
		return svc
	}
	best, bestCause := svc, (*deploymentState)(nil)
	consider := func(in event.Service) {
		s := e.services[in]
		if s == nil || !s.production {
			return
		}
		if d := s.causeOf(ev.Time, e.cfg.IncidentWindow); d != nil && (bestCause == nil || d.started.After(bestCause.started)) {
			best, bestCause = in, d
		}
	}
	consider(svc)
	for _, c := range clusters {
		in := svc
		in.Cluster = c
		consider(in)
	}
	return best
}
