// Package event defines the normalized delivery events that every source
// (Kubernetes, webhooks, CI/CD spans) produces and the engine consumes.
//
// Sources do I/O and read clocks; the events they emit carry every time the
// engine needs, so that the engine stays a pure function of its input.
package event

import "time"

// Kind says what happened.
type Kind uint8

const (
	// KindUnknown is the zero value; the engine rejects it.
	KindUnknown Kind = iota
	// DeploymentStarted: a deployment (rollout) of a new revision began.
	DeploymentStarted
	// DeploymentSucceeded: the deployment reached production and is serving.
	DeploymentSucceeded
	// DeploymentFailed: the deployment did not complete (for example
	// ProgressDeadlineExceeded) or was reported failed by CI.
	DeploymentFailed
	// DeploymentRolledBack: a rollback to an earlier revision began; the
	// deployment named by PreviousDeploymentID is abandoned as failed and the
	// rollback itself is the deployment named by DeploymentID.
	DeploymentRolledBack
	// ChangeCommitted: a commit reached version control.
	ChangeCommitted
	// IncidentOpened: an incident started affecting a service.
	IncidentOpened
	// IncidentResolved: the incident ended.
	IncidentResolved
	// ChangeMerged: a change (pull or merge request) was merged; Revision is
	// the merge commit, Time the merge time.
	ChangeMerged
	// ChangeOpened: a change (pull or merge request) was opened for review;
	// ChangeID names it, Time is when it was opened. The engine links it to
	// the ChangeMerged event with the same ChangeID for the lead time stages
	// (coding, review). No source emits it yet.
	ChangeOpened
)

var kindNames = [...]string{
	KindUnknown:          "unknown",
	DeploymentStarted:    "deployment_started",
	DeploymentSucceeded:  "deployment_succeeded",
	DeploymentFailed:     "deployment_failed",
	DeploymentRolledBack: "deployment_rolled_back",
	ChangeCommitted:      "change_committed",
	IncidentOpened:       "incident_opened",
	IncidentResolved:     "incident_resolved",
	ChangeMerged:         "change_merged",
	ChangeOpened:         "change_opened",
}

// Valid reports whether k is one of the kinds above, other than KindUnknown.
func (k Kind) Valid() bool { return k > KindUnknown && k <= ChangeOpened }

// ParseKind returns the kind named name (Kind.String), and false for a name
// that is not one of the valid kinds.
func ParseKind(name string) (Kind, bool) {
	for k := DeploymentStarted; k.Valid(); k++ {
		if kindNames[k] == name {
			return k, true
		}
	}
	return KindUnknown, false
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Source names, used in Event.Source and in logs.
const (
	SourceKubernetes   = "kubernetes"
	SourceGitHub       = "github"
	SourceGitLab       = "gitlab"
	SourceBitbucket    = "bitbucket"
	SourceBitbucketDC  = "bitbucket_dc"
	SourceAzureDevOps  = "azure_devops"
	SourceArgoCD       = "argocd"
	SourceFlux         = "flux"
	SourceAlertmanager = "alertmanager"
	SourcePagerDuty    = "pagerduty"
	SourceServiceNow   = "servicenow"
	SourceJira         = "jira"
	SourceCDEvents     = "cdevents"
	SourceGeneric      = "generic"
	SourceSpans        = "otlp_spans"
	// SourceArgoRollouts and SourceFlagger are the progressive-delivery
	// sources: Argo Rollouts' Rollout and Flagger's Canary resources.
	SourceArgoRollouts = "argo_rollouts"
	SourceFlagger      = "flagger"
)

// Service is what is deployed where. Its fields are the attributes of every
// metric (namespace, deployment, environment, and cluster when set).
type Service struct {
	Namespace   string
	Name        string
	Environment string
	// Cluster names the Kubernetes cluster the service runs in: set on the
	// events of a receiver's own Kubernetes sources (its cluster setting)
	// and on those an agent forwards; empty for a single-cluster
	// installation, whose series then carry no cluster attribute. The same
	// service in two clusters is two services (two series).
	Cluster string
}

// Event is one normalized delivery event.
type Event struct {
	Kind Kind
	// Source is the producer (SourceKubernetes, "github", ...).
	Source string
	// ID identifies this event within Source (a webhook delivery id, a
	// rollout transition); the engine ignores an ID it has already applied,
	// so redeliveries and replays are counted once. Empty disables the check.
	ID string
	// Time is when the event happened at its origin, not when it was received.
	Time time.Time
	// Service is the workload the event is about. Sources that only know
	// the repository leave Name empty and set Repository; the receiver maps
	// repositories to services (see the services setting).
	Service Service
	// Repository is the source repository ("org/api"), when known.
	Repository string
	// ServiceHint is a service name that a sender gives without knowing
	// the workload (a CI span's service.name). With Service.Name empty, the
	// receiver uses it when the services setting does not map Repository
	// to one service: to pick a monorepo's service, else as the name.
	ServiceHint string

	// DeploymentID identifies one deployment across its started, succeeded
	// and failed events (for Kubernetes: the Deployment and its pod-template
	// revision).
	DeploymentID string
	// PreviousDeploymentID is the deployment a rollback abandons.
	PreviousDeploymentID string
	// Revision is the commit SHA deployed (deployment events) or committed
	// (change events), when known.
	Revision string
	// ParentRevision is the commit before Revision on its branch, for change
	// events from pushes: the engine follows these links to find the
	// commits a deployment ships.
	ParentRevision string
	// CommitTime is when Revision was committed, when the source knows it.
	CommitTime time.Time
	// Reason says why a deployment failed (ProgressDeadlineExceeded, ...).
	Reason string

	// IncidentID identifies an incident across its opened and resolved events.
	IncidentID string
	// Hotfix marks a deployment made to fix a production problem: the
	// deployment it follows counts as a change failure (reason hotfix) and
	// the hotfix as rework. On a change event (a merged pull request with a
	// hotfix label or from a hotfix branch) it marks the change's commit:
	// the production deployment that ships it is a hotfix.
	Hotfix bool
	// Reverts is the revision that Revision reverts, when the source knows
	// it (a change event for a revert commit, or a deployment of one). A
	// production deployment that ships the revert fails the deployment that
	// shipped the reverted revision (reason revert).
	Reverts string
	// RevertsChange is the ChangeID of the change (pull or merge request)
	// that Revision reverts, when the source names only the change (GitHub's
	// revert pull requests say "Reverts owner/repo#N"): the engine resolves
	// it to that change's merge commit, known from its ChangeMerged event.
	RevertsChange string
	// ChangeID identifies a change (pull or merge request) across its
	// ChangeOpened and ChangeMerged events, when the source knows it
	// (for example "github/acme/api/pull/42").
	ChangeID string

	// Team owns the service, when known (the receiver resolves it from its
	// services and teams settings, a Kubernetes label or annotation, or the
	// repository owner). It is metadata of the service, not part of its
	// identity: the engine keeps the latest non-empty team per service and
	// puts it on the service's series as the team attribute.
	Team string
	// TeamFallback marks a Team that is only a guess (the repository
	// owner): it does not replace a team the service already has from an
	// event without the mark.
	TeamFallback bool
	// Paths are the files a change event's commit touched (added, removed
	// or modified), relative to the repository root, when the source gives
	// them; nil or empty means unknown. In a monorepo a commit belongs only
	// to the services whose configured paths it touches.
	Paths []string

	// Imported marks an event read from a system's history by the history
	// import (internal/history) rather than delivered live. The engine
	// puts it in the rolling history (so rolling values and levels reflect
	// the history at once) but not in the cumulative counters and
	// histograms, whose rate() would otherwise show the whole history as a
	// jump at the import's time (METRICS.md, "Imported history").
	Imported bool
	// ImportFrom is the start of the import window that read an imported
	// event: the service it is about has been observed since then, even
	// when its first event in the window came later.
	ImportFrom time.Time
}
