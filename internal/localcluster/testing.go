package localcluster

import (
	"testing"
)

// StartForTest starts a cluster for t and stops it when t ends. Dir defaults
// to t.TempDir() and Logf to t.Logf. Any start-up failure, a missing binary
// included, fails the test: a test that needs a control plane must not pass
// silently without one.
func StartForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	c, err := Start(t.Context(), opts)
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
