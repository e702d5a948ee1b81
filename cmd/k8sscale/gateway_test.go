package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The gateway's counters are read per cluster: only successes count, a
// series above 1 is a duplicate, a series at 0 is not a counted one.
func TestParseGatewayTally(t *testing.T) {
	exposition := `# TYPE platform_deployments_total counter
platform_deployments_total{cluster="cluster-0",deployment="svc-00000",environment="production",namespace="team-000",status="success"} 1
platform_deployments_total{cluster="cluster-0",deployment="svc-00001",environment="production",namespace="team-001",status="success"} 2
platform_deployments_total{cluster="cluster-0",deployment="svc-00001",environment="production",namespace="team-001",status="failure"} 5
platform_deployments_total{cluster="cluster-1",deployment="svc-00000",environment="production",namespace="team-000",status="success"} 1
platform_deployments_total{cluster="cluster-1",deployment="svc-00002",environment="production",namespace="team-000",status="success"} 0
platform_deployments_total{deployment="hook",environment="production",namespace="hooks",status="success"} 1
platform_deployments_created{cluster="cluster-1",status="success"} 9
`
	got, err := parseGatewayTally(strings.NewReader(exposition))
	require.NoError(t, err)
	assert.Equal(t, 5, got.total)
	assert.Equal(t, 4, got.series)
	assert.Equal(t, 1, got.duplicated)
	assert.Equal(t, map[string]int{"cluster-0": 3, "cluster-1": 1, "": 1}, got.byCluster)
}

func TestHeapAllocOf(t *testing.T) {
	h, err := heapAllocOf(strings.NewReader("heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 123\n# TotalAlloc = 456\n# HeapAlloc = 7890\n# Sys = 1\n"))
	require.NoError(t, err)
	assert.EqualValues(t, 7890, h)
	_, err = heapAllocOf(strings.NewReader("no stats\n"))
	assert.Error(t, err)
}
