package enginetest

import (
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// TestIncidentSources is the e2e test that replays the incident source
// stories through the binary, each incident told by its real source.
const TestIncidentSources = "TestIncidentSourcesEndToEnd"

// Names of the incident source stories, one per incident source that the
// generic source cannot stand in for.
const (
	StoryServiceNowIncident = "a deployment, a ServiceNow incident, its recovery"
	StoryJiraIncident       = "a deployment, a Jira incident, its recovery"
	StoryGitLabIncident     = "a deployment, a GitLab incident, its recovery"
)

// IncidentTrackerStories are the stories of the incident sources: api's
// deployment d1 succeeds; ten minutes later an incident opens, reported
// by the source; it is resolved half an hour later; a fix goes out after.
// The incident belongs to d1 (the latest production deployment started
// before it): one change failure (reason incident), recovered when the
// incident is resolved, before the fix (recovery on the first signal).
func IncidentTrackerStories() []Scenario {
	return []Scenario{
		incidentTrackerStory(StoryServiceNowIncident, event.SourceServiceNow),
		incidentTrackerStory(StoryJiraIncident, event.SourceJira),
		incidentTrackerStory(StoryGitLabIncident, event.SourceGitLab),
	}
}

func incidentTrackerStory(name, source string) Scenario {
	const (
		d1Start, d1Done         = -5 * time.Minute, time.Duration(0)
		opened, resolved        = 10 * time.Minute, 40 * time.Minute
		fixStart, fixDone       = 50 * time.Minute, 55 * time.Minute
		successes, incidentsRun = 2, 1
	)
	return Scenario{
		Name:       name,
		EngineOnly: "e2e " + TestIncidentSources + ": the deployments by the generic source, the incident by the " + source + " source with its real signature",
		Events: []event.Event{
			Started(API, "d1", "", d1Start),
			Succeeded(API, "d1", "", d1Done),
			From(source, Incident(event.IncidentOpened, API, source+"-1", opened)),
			From(source, Incident(event.IncidentResolved, API, source+"-1", resolved)),
			Started(API, "fix", "", fixStart),
			Succeeded(API, "fix", "", fixDone),
		},
		Now: At(2 * time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{API, "success"}: successes},
				DeploymentFailures: {{API, "incident"}: incidentsRun},
				Incidents:          {{API, "true"}: incidentsRun},
			},
			Histograms: map[string]Histogram{
				RecoveryTime: {{API, ""}: {secs(resolved - d1Done), 1}},
			},
		},
	}
}
