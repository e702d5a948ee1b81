package engine

// Stats counts what the engine holds, for the receiver's memory guard
// (limits::max_state_bytes): read only, O(services + incidents held).
type Stats struct {
	// Services are the services (namespace, name, environment) with state.
	Services int
	// Series are the stored cumulative series (counters and histograms)
	// plus the rolling series of the production services that deployed:
	// one per window.
	Series int
	// PendingChanges are the commits and change requests remembered.
	PendingChanges int
	// OpenIncidents are the incidents held that are not resolved.
	OpenIncidents int
}

// Stats counts the engine's state.
func (e *Engine) Stats() Stats {
	st := Stats{
		Services: len(e.services),
		Series: len(e.deployments) + len(e.failures) + len(e.dropped) + len(e.incidents) + len(e.rework) +
			len(e.leadTime) + len(e.stages) + len(e.recovery),
		PendingChanges: e.commits.len() + len(e.changes.changes),
	}
	for _, s := range e.services {
		if s.production && s.deployed {
			st.Series += len(e.cfg.RollingWindows)
		}
		for _, inc := range s.incidents {
			if inc.resolved.IsZero() {
				st.OpenIncidents++
			}
		}
	}
	return st
}
