package generic

import (
	"fmt"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// PayloadOf is the generic form of a normalized event, the inverse of the
// parser, for whoever has events in hand and sends them through the generic
// source (the end-to-end test replays the engine's scenarios with it).
//
// Parsing the payload gives ev back with Source "generic", revisions in
// lower case and, for an incident without an environment, production.
// Fields the form does not carry (Team, TeamFallback) are left out; callers
// that must not lose anything compare the parsed event with ev.
func PayloadOf(ev event.Event) (Payload, error) {
	pl := Payload{
		ID:             ev.ID,
		Time:           ev.Time,
		Service:        ev.Service.Name,
		Namespace:      ev.Service.Namespace,
		Environment:    ev.Service.Environment,
		Repository:     ev.Repository,
		DeploymentID:   ev.DeploymentID,
		Revision:       ev.Revision,
		ParentRevision: ev.ParentRevision,
		CommitTime:     ev.CommitTime,
		Reason:         ev.Reason,
		IncidentID:     ev.IncidentID,
		Hotfix:         ev.Hotfix,
		Reverts:        ev.Reverts,
		ChangeID:       ev.ChangeID,
		Paths:          ev.Paths,
	}
	switch ev.Kind {
	case event.DeploymentStarted:
		pl.Type, pl.Status = "deployment", "started"
	case event.DeploymentSucceeded:
		pl.Type, pl.Status = "deployment", "success"
	case event.DeploymentFailed:
		pl.Type, pl.Status = "deployment", "failure"
	case event.DeploymentRolledBack:
		pl.Type, pl.Status = "deployment", "rolled_back"
		pl.PreviousDeploymentID = ev.PreviousDeploymentID
	case event.ChangeCommitted:
		pl.Type = "change"
	case event.ChangeMerged:
		pl.Type = "merge"
	case event.ChangeOpened:
		pl.Type = "pr_opened"
	case event.IncidentOpened:
		pl.Type, pl.State = "incident", "opened"
	case event.IncidentResolved:
		pl.Type, pl.State = "incident", "resolved"
	default:
		return pl, fmt.Errorf("event %q: kind %s has no generic form", ev.ID, ev.Kind)
	}
	if ev.PreviousDeploymentID != "" && ev.Kind != event.DeploymentRolledBack {
		return pl, fmt.Errorf("event %q: previous_deployment_id is carried by rollbacks only, not by %s", ev.ID, ev.Kind)
	}
	if ev.ParentRevision != "" && ev.Kind != event.ChangeCommitted {
		// The parser reads parent_revision of changes only.
		return pl, fmt.Errorf("event %q: parent_revision is carried by changes only, not by %s", ev.ID, ev.Kind)
	}
	return pl, nil
}
