package enginetest

import (
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// The stories of the incident sources Opsgenie, incident.io and Grafana
// alerting: each one's incident, told as its sender tells it, after a
// deployment. e2e replays each through the binary with the source's own
// authenticated deliveries (EngineOnly names the test): the generic source alone
// would tell another sender's story.
const (
	StoryOpsgenie   = "an Opsgenie alert after a deployment, created and closed"
	StoryIncidentIO = "an incident.io incident after a deployment, live then closed"
	StoryGrafana    = "a Grafana alert after a deployment, firing then resolved"
)

// IncidentSourceStory is the shape of the three stories: d1 of API has
// finished when the incident opens (Opened); the sender redelivers the
// opening (the same event, counted once), incident.io tells it again under
// another delivery while it is live (Again; nil for Opsgenie, which sends
// one Create, and for Grafana, whose repeats of a firing alert are the same
// alert, so redeliveries), and the incident resolves (Resolved). The
// deployment is a change failure (incident), recovered at the resolution.
type IncidentSourceStory struct {
	Deployed, Opened, Resolved event.Event
	Again                      *event.Event
}

// incidentSourceStory builds the story of source; again says whether the
// sender tells the opening a second time under another id.
func incidentSourceStory(name, source string, again bool) Scenario {
	const (
		d1Done          = time.Duration(0)
		opened, resolve = 10 * time.Minute, 40 * time.Minute
	)
	open := From(source, Incident(event.IncidentOpened, API, source+"-1", opened))
	events := []event.Event{
		Succeeded(API, "d1", "", d1Done),
		open,
		open, // a redelivery: counted once
	}
	if again {
		// Another delivery saying the same incident is open: its own id,
		// the same incident, nothing new.
		events = append(events, WithID(open, open.ID+"/again"))
	}
	events = append(events, From(source, Incident(event.IncidentResolved, API, source+"-1", resolve)))
	return Scenario{
		Name:       name,
		EngineOnly: "e2e " + e2eTestOf[name] + ": the deployment by the generic source, the incident by the " + source + " source's own authenticated deliveries",
		Events:     events,
		Now:        At(time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{API, "success"}: 1},
				DeploymentFailures: {{API, "incident"}: 1},
				Incidents:          {{API, "true"}: 1},
			},
			Histograms: map[string]Histogram{
				// From d1's finish (before the incident) to its resolution.
				RecoveryTime: {{API, ""}: {secs(resolve - d1Done), 1}},
			},
		},
	}
}

// e2eTestOf names the e2e test that replays each story through the binary.
var e2eTestOf = map[string]string{
	StoryOpsgenie:   "TestOpsgenieEndToEnd",
	StoryIncidentIO: "TestIncidentIOEndToEnd",
	StoryGrafana:    "TestGrafanaEndToEnd",
}

// incidentSourceStories are the three stories, for Stories.
func incidentSourceStories() []Scenario {
	return []Scenario{
		incidentSourceStory(StoryOpsgenie, "opsgenie", false),
		incidentSourceStory(StoryIncidentIO, "incidentio", true),
		incidentSourceStory(StoryGrafana, "grafana", false),
	}
}

// IncidentSourceMoments splits one of the three stories into its moments,
// for the e2e test that replays it; ok is false when the story no longer
// has this shape.
func IncidentSourceMoments(sc Scenario) (m IncidentSourceStory, ok bool) {
	ev := sc.Events
	if len(ev) < 4 || len(ev) > 5 || ev[0].Kind != event.DeploymentSucceeded ||
		ev[1].Kind != event.IncidentOpened || ev[2].ID != ev[1].ID || ev[len(ev)-1].Kind != event.IncidentResolved {
		return m, false
	}
	m.Deployed, m.Opened, m.Resolved = ev[0], ev[1], ev[len(ev)-1]
	if len(ev) == 5 {
		if ev[3].Kind != event.IncidentOpened || ev[3].IncidentID != ev[1].IncidentID {
			return m, false
		}
		again := ev[3]
		m.Again = &again
	}
	return m, true
}
