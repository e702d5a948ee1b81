package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary stand in for k8sscale's watch children,
// which run os.Executable() with "watch".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "watch" {
		if err := watchMain(os.Args[2:]); err != nil {
			os.Stderr.WriteString("k8sscale watch: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestScaleRunSmall runs the whole benchmark on a small cluster: the
// children sync, hold what they were given, and the source counts each
// rollout exactly once.
func TestScaleRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and creates hundreds of Deployments")
	}
	const n, namespaces = 300, 6
	res, err := run(options{deployments: n, namespaces: namespaces, workers: 16, dir: t.TempDir(), rolloutTimeout: defaultRolloutTimeout})
	require.NoError(t, err)

	require.Len(t, res.Plain, 2)
	require.Len(t, res.Source, 2)
	for _, r := range append(append([]syncReport{}, res.Plain...), res.Source...) {
		assert.Equal(t, n, r.Objects, r.Variant)
		assert.Positive(t, r.SyncSeconds, r.Variant)
		assert.Positive(t, r.heapPerObject(), r.Variant)
		assert.Positive(t, r.RSSKiB, r.Variant)
	}
	// The plain informer keeps whole objects (managedFields, the pod
	// template, status): several KiB each. The source keeps a compact one.
	assert.Greater(t, mean(res.Plain, heapPer), 4096.0)
	assert.Less(t, mean(res.Source, heapPer), mean(res.Plain, heapPer)/2)

	ro := res.Rollout
	assert.True(t, ro.Exact, "rollouts: %+v", ro)
	assert.EqualValues(t, n, ro.Started)
	assert.EqualValues(t, n, ro.Counted)
	assert.Zero(t, ro.Other)
	assert.Positive(t, ro.CountedPerSecond)
	assert.Positive(t, ro.CPUSeconds)

	md := res.markdown()
	assert.Contains(t, md, "## Kubernetes scale")
	assert.Contains(t, md, "exactly one per Deployment")
	assert.Equal(t, 4, strings.Count(md, "| plain client-go informer")+strings.Count(md, "| receiver's source"))
}
