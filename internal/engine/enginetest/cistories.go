package enginetest

import (
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// The stories of the CI systems that report deployments of their own
// (issue 17): Jenkins through its OpenTelemetry plugin's spans, Tekton
// through its CloudEvents, a repository whose deployments are its releases.
// Each is push, deploy, fail, recover, told by the source that tells it in
// a real delivery, so each is replayed through the binary by an e2e test of
// its own (EngineOnly).

// Names of the CI stories, which e2e's tests replay by name.
const (
	StoryJenkins  = "Jenkins: push, deploy, fail, recover"
	StoryTekton   = "Tekton: push, deploy, fail, recover"
	StoryReleases = "releases as deployments: push, release, incident, recover"
)

// ciStory: c1 is pushed (on c0, never pushed) and d1 ships it; c2 is pushed
// and d2, which would ship it, fails; c3 (the fix) is pushed and d3 ships
// c2 and c3: c2 runs in production only then. d3 is the recovery from d2's
// failure.
func ciStory(name, source, engineOnly, reason string) Scenario {
	const (
		c1At, d1Done = -40 * time.Minute, time.Duration(0)
		c2At, d2Fail = 20 * time.Minute, 30 * time.Minute
		c3At, d3Done = 40 * time.Minute, 50 * time.Minute
	)
	pushed := func(ev event.Event) event.Event { return From(event.SourceGitHub, ev) }
	fail := Failed(API, "d2", reason, d2Fail)
	fail.Revision = "c2"
	return Scenario{
		Name:       name,
		EngineOnly: engineOnly,
		Events: []event.Event{
			pushed(Change("c1", "c0", c1At)),
			From(source, Succeeded(API, "d1", "c1", d1Done)),
			pushed(Change("c2", "c1", c2At)),
			From(source, fail),
			pushed(Change("c3", "c2", c3At)),
			From(source, Succeeded(API, "d3", "c3", d3Done)),
		},
		Now: At(2 * time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{API, "success"}: 2, {API, "failure"}: 1},
				DeploymentFailures: {{API, reason}: 1},
			},
			Histograms: map[string]Histogram{
				LeadTime:     {{API, ""}: {secs(d1Done-c1At) + secs(d3Done-c2At) + secs(d3Done-c3At), 3}},
				RecoveryTime: {{API, ""}: {secs(d3Done - d2Fail), 1}},
			},
		},
	}
}

func storyJenkins() Scenario {
	return ciStory(StoryJenkins, event.SourceSpans,
		"e2e TestJenkinsStoryEndToEnd: the pushes by the GitHub source, the builds of the deploy job as the Jenkins OpenTelemetry plugin exports them, over OTLP",
		"failure")
}

func storyTekton() Scenario {
	return ciStory(StoryTekton, event.SourceCDEvents,
		"e2e TestTektonStoryEndToEnd: the pushes by the GitHub source, the PipelineRuns of the deploy pipeline as Tekton's CloudEvents",
		"PipelineFailed")
}

// storyReleases: a release cannot fail; the failure is an incident that the
// second release causes. c1 and c2 are pushed; release v1 ships c1, v2
// ships c2; an incident opens after v2 and is resolved: v2 is a change
// failure, from the deployment that failed (v2, the release) to the
// incident's resolution.
func storyReleases() Scenario {
	const (
		c1At, v1At   = -40 * time.Minute, time.Duration(0)
		c2At, v2At   = 20 * time.Minute, 30 * time.Minute
		opened, done = 35 * time.Minute, 55 * time.Minute
	)
	pushed := func(ev event.Event) event.Event { return From(event.SourceGitHub, ev) }
	return Scenario{
		Name: StoryReleases,
		EngineOnly: "e2e TestReleasesStoryEndToEnd: the pushes, the tag pushes and the incident " +
			"(an issue labelled incident) by the GitHub source, with release_deployments",
		Events: []event.Event{
			pushed(Change("c1", "c0", c1At)),
			pushed(Succeeded(API, "v1", "c1", v1At)),
			pushed(Change("c2", "c1", c2At)),
			pushed(Succeeded(API, "v2", "c2", v2At)),
			pushed(Incident(event.IncidentOpened, API, "i1", opened)),
			pushed(Incident(event.IncidentResolved, API, "i1", done)),
		},
		Now: At(2 * time.Hour),
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{API, "success"}: 2},
				DeploymentFailures: {{API, "incident"}: 1},
				Incidents:          {{API, "true"}: 1},
			},
			Histograms: map[string]Histogram{
				LeadTime:     {{API, ""}: {secs(v1At-c1At) + secs(v2At-c2At), 2}},
				RecoveryTime: {{API, ""}: {secs(done - v2At), 1}},
			},
		},
	}
}
