package persist

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// eventVersion is the newest codec version of a logged event. Version 2
// adds the import mark (imported, import_from); it is written only for
// imported events, so that a build that knows only version 1 refuses them
// (ErrNewerVersion) rather than counting imported history as live. Live
// events are still written as version 1.
const eventVersion = 2

type loggedEventJSON struct {
	Version int       `json:"version"`
	Event   eventJSON `json:"event"`
}

// eventJSON is event.Event, version 1. The kind is its name, so that the
// log does not depend on the order of the event.Kind constants.
type eventJSON struct {
	Kind        string    `json:"kind"`
	Source      string    `json:"source"`
	ID          string    `json:"id,omitempty"`
	Time        time.Time `json:"time"`
	Namespace   string    `json:"namespace,omitempty"`
	Name        string    `json:"name,omitempty"`
	Environment string    `json:"environment,omitempty"`
	// Cluster is absent from events logged before clusters existed (and
	// from a single-cluster installation's): cluster "".
	Cluster              string    `json:"cluster,omitempty"`
	Repository           string    `json:"repository,omitempty"`
	ServiceHint          string    `json:"service_hint,omitempty"`
	DeploymentID         string    `json:"deployment_id,omitempty"`
	PreviousDeploymentID string    `json:"previous_deployment_id,omitempty"`
	Revision             string    `json:"revision,omitempty"`
	ParentRevision       string    `json:"parent_revision,omitempty"`
	CommitTime           time.Time `json:"commit_time,omitzero"`
	Reason               string    `json:"reason,omitempty"`
	IncidentID           string    `json:"incident_id,omitempty"`
	Hotfix               bool      `json:"hotfix,omitempty"`
	Reverts              string    `json:"reverts,omitempty"`
	RevertsChange        string    `json:"reverts_change,omitempty"`
	ChangeID             string    `json:"change_id,omitempty"`
	Team                 string    `json:"team,omitempty"`
	TeamFallback         bool      `json:"team_fallback,omitempty"`
	Paths                []string  `json:"paths,omitempty"`
	// Version 2.
	Imported   bool      `json:"imported,omitempty"`
	ImportFrom time.Time `json:"import_from,omitzero"`
}

func encodeEvent(ev event.Event) ([]byte, error) {
	if !ev.Kind.Valid() {
		return nil, fmt.Errorf("persist: event %s/%s of unknown kind %d", ev.Source, ev.ID, ev.Kind)
	}
	version := 1
	if ev.Imported {
		version = 2
	}
	return json.Marshal(loggedEventJSON{Version: version, Event: eventJSON{
		Kind: ev.Kind.String(), Source: ev.Source, ID: ev.ID, Time: ev.Time,
		Namespace: ev.Service.Namespace, Name: ev.Service.Name, Environment: ev.Service.Environment, Cluster: ev.Service.Cluster,
		Repository: ev.Repository, ServiceHint: ev.ServiceHint, DeploymentID: ev.DeploymentID, PreviousDeploymentID: ev.PreviousDeploymentID,
		Revision: ev.Revision, ParentRevision: ev.ParentRevision, CommitTime: ev.CommitTime, Reason: ev.Reason,
		IncidentID: ev.IncidentID, Hotfix: ev.Hotfix, Reverts: ev.Reverts, RevertsChange: ev.RevertsChange, ChangeID: ev.ChangeID,
		Team: ev.Team, TeamFallback: ev.TeamFallback, Paths: ev.Paths,
		Imported: ev.Imported, ImportFrom: ev.ImportFrom,
	}})
}

func decodeEvent(b []byte) (event.Event, error) {
	var l loggedEventJSON
	if err := json.Unmarshal(b, &l); err != nil {
		return event.Event{}, err
	}
	if err := checkVersion("a logged event", l.Version, eventVersion); err != nil {
		return event.Event{}, err
	}
	e := l.Event
	kind, ok := event.ParseKind(e.Kind)
	if !ok {
		return event.Event{}, fmt.Errorf("unknown event kind %q", e.Kind)
	}
	return event.Event{
		Kind: kind, Source: e.Source, ID: e.ID, Time: e.Time,
		Service:    event.Service{Namespace: e.Namespace, Name: e.Name, Environment: e.Environment, Cluster: e.Cluster},
		Repository: e.Repository, ServiceHint: e.ServiceHint, DeploymentID: e.DeploymentID, PreviousDeploymentID: e.PreviousDeploymentID,
		Revision: e.Revision, ParentRevision: e.ParentRevision, CommitTime: e.CommitTime, Reason: e.Reason,
		IncidentID: e.IncidentID, Hotfix: e.Hotfix, Reverts: e.Reverts, RevertsChange: e.RevertsChange, ChangeID: e.ChangeID,
		Team: e.Team, TeamFallback: e.TeamFallback, Paths: e.Paths,
		Imported: e.Imported, ImportFrom: e.ImportFrom,
	}, nil
}
