package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

func inCluster(c string) event.Service {
	return event.Service{Namespace: "shop", Name: "api", Environment: "production", Cluster: c}
}

// clusterCounters renders a snapshot's counters as "cluster label=value".
func clusterCounters(points []CounterPoint) []string {
	var out []string
	for _, p := range points {
		out = append(out, fmt.Sprintf("%s %s=%d", p.Service.Cluster, p.Label, p.Value))
	}
	return out
}

// An incident that names a service but no cluster, while the service runs
// in two clusters, is counted once: in the cluster whose production
// deployment is its likely cause (the latest started before it within
// incident_window), failing that deployment; its resolution, naming no
// cluster either, recovers it there. A redelivery is recognized.
func TestIncidentWithoutClusterCountedOnceInItsCause(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	apply := func(ev event.Event) Outcome {
		t.Helper()
		out, err := e.Apply(ev)
		require.NoError(t, err)
		return out
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	apply(event.Event{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: "api/1", Time: at(10 * time.Minute), Service: inCluster("eu-1"), DeploymentID: "api/1"})
	apply(event.Event{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: "api/1", Time: at(30 * time.Minute), Service: inCluster("us-1"), DeploymentID: "api/1"})

	opened := event.Event{Kind: event.IncidentOpened, Source: "pagerduty", ID: "inc-1/opened", Time: at(40 * time.Minute), Service: inCluster(""), IncidentID: "inc-1"}
	out := apply(opened)
	assert.Equal(t, inCluster("us-1"), out.Moved, "the series changed are us-1's")
	assert.True(t, apply(opened).Duplicate, "a redelivery")
	apply(event.Event{Kind: event.IncidentResolved, Source: "pagerduty", ID: "inc-1/resolved", Time: at(50 * time.Minute), Service: inCluster(""), IncidentID: "inc-1"})

	s := e.Snapshot()
	assert.Equal(t, []string{"us-1 true=1"}, clusterCounters(s.Incidents), "once, attributed, in the cluster of the latest deployment")
	assert.Equal(t, []string{"us-1 incident=1"}, clusterCounters(s.Failures))
	require.Len(t, s.RecoveryTime, 1)
	assert.Equal(t, "us-1", s.RecoveryTime[0].Service.Cluster)
	assert.EqualValues(t, 1, s.RecoveryTime[0].Histogram.Count)
	assert.InDelta(t, (20 * time.Minute).Seconds(), s.RecoveryTime[0].Histogram.Sum, 0.001, "from us-1's failed deployment to the resolution")

	// An incident long after every deployment: an outage, counted once,
	// with no cluster.
	apply(event.Event{Kind: event.IncidentOpened, Source: "pagerduty", ID: "inc-2/opened", Time: at(72 * time.Hour), Service: inCluster(""), IncidentID: "inc-2"})
	assert.Equal(t, []string{" false=1", "us-1 true=1"}, clusterCounters(e.Snapshot().Incidents))
}

// In a single-cluster installation (no clusters at all) incidents are
// what they were: the service's own.
func TestIncidentWithoutClustersUnchanged(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	_, err = e.Apply(event.Event{Kind: event.DeploymentSucceeded, Time: t0, Service: inCluster(""), DeploymentID: "api/1"})
	require.NoError(t, err)
	out, err := e.Apply(event.Event{Kind: event.IncidentOpened, Time: t0.Add(time.Minute), Service: inCluster(""), IncidentID: "inc-1"})
	require.NoError(t, err)
	assert.Zero(t, out.Moved)
	assert.Equal(t, []string{" true=1"}, clusterCounters(e.Snapshot().Incidents))
}

// The clusters a service runs in are derived from the saved services: an
// incident after a restore goes to its cluster too.
func TestIncidentClusterAfterRestore(t *testing.T) {
	e, err := New(DefaultConfig(), t0)
	require.NoError(t, err)
	_, err = e.Apply(event.Event{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: "api/1", Time: t0, Service: inCluster("eu-1"), DeploymentID: "api/1"})
	require.NoError(t, err)
	r := restore(t, DefaultConfig(), encode(t, e))
	_, err = r.Apply(event.Event{Kind: event.IncidentOpened, Time: t0.Add(time.Minute), Service: inCluster(""), IncidentID: "inc-1"})
	require.NoError(t, err)
	assert.Equal(t, []string{"eu-1 true=1"}, clusterCounters(r.Snapshot().Incidents))
}
