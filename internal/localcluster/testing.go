package localcluster

import (
	"fmt"
	"path/filepath"
	"testing"
)

// StartForTest starts a cluster for t and stops it when t ends. Dir defaults
// to t.TempDir() and Logf to t.Logf. Any start-up failure, a missing binary
// included, fails the test: a test that needs a control plane must not pass
// silently without one. Under -short (make unit, the fast tests) it skips.
func StartForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if testing.Short() {
		// make unit: the fast tests only, no control plane.
		t.Skip("starts a control plane; run through make test")
	}
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	// Ports are picked free, then bound by the child processes a moment
	// later; a test package running in parallel can take one in between.
	// A fresh attempt picks new ports.
	var c *Cluster
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		opts.Dir = filepath.Join(dir, fmt.Sprintf("attempt-%d", attempt))
		if c, err = Start(t.Context(), opts); err == nil {
			break
		}
		t.Logf("localcluster: start attempt %d failed: %v", attempt, err)
	}
	if err != nil {
		t.Fatalf("%v", err)
	}
	// Registered after t.TempDir, so it runs before the directory and its
	// logs are removed.
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{apiServerBin, controllerManagerBin} {
				if tail := c.logTail(name, logTailLines); tail != "" {
					t.Logf("%s log (%s) ends with:\n%s", name, c.logPath(name), tail)
				}
			}
		}
		if err := c.Stop(); err != nil {
			t.Errorf("localcluster: stop: %v", err)
		}
	})
	return c
}
