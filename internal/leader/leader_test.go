package leader

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// Short timings so the test runs in seconds; the relations between them
// are client-go's.
func fastConfig() Config {
	return Config{LeaseName: "otelcol-dora", LeaseNamespace: "default", LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 250 * time.Millisecond}
}

type replica struct {
	elector *Elector
	cancel  context.CancelFunc
	done    chan struct{}
	// cut makes every API request of this replica fail, like a killed
	// process or a network partition: it can neither renew nor release.
	cut *atomic.Bool
}

type cuttable struct {
	next http.RoundTripper
	cut  *atomic.Bool
}

func (c cuttable) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		return nil, errors.New("connection cut by the test")
	}
	return c.next.RoundTrip(r)
}

func startReplica(t *testing.T, cp *localcluster.Cluster, id string) *replica {
	cfg := fastConfig()
	cfg.Identity = id
	cut := &atomic.Bool{}
	rc := cp.RESTConfig()
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return cuttable{next: rt, cut: cut} }
	client, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	e, err := New(client, cfg, "", zaptest.NewLogger(t), Callbacks{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{elector: e, cancel: cancel, done: make(chan struct{}), cut: cut}
	go func() { defer close(r.done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func leaderOf(rs ...*replica) (*replica, int) {
	var leader *replica
	n := 0
	for _, r := range rs {
		if r.elector.IsLeader() {
			leader = r
			n++
		}
	}
	return leader, n
}

func TestElectionAgainstAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries; run through make test")
	}
	cp := localcluster.StartForTest(t, localcluster.Options{})

	a := startReplica(t, cp, "replica-a")
	b := startReplica(t, cp, "replica-b")
	c := startReplica(t, cp, "replica-c")

	// Never two leaders at once, whatever happens below.
	var twoLeaders atomic.Bool
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
				if _, n := leaderOf(a, b, c); n > 1 {
					twoLeaders.Store(true)
				}
			}
		}
	}()
	defer func() { close(stopWatch); <-watchDone; assert.False(t, twoLeaders.Load(), "two replicas led at once") }()

	var first *replica
	require.Eventually(t, func() bool {
		var n int
		first, n = leaderOf(a, b, c)
		return n == 1
	}, 10*time.Second, 20*time.Millisecond, "nobody became the leader")
	for _, r := range []*replica{a, b, c} {
		require.Eventually(t, func() bool { return r.elector.Leader() == first.elector.Identity() }, 5*time.Second, 20*time.Millisecond,
			"%s knows the leader", r.elector.Identity())
	}

	// The leader stops cleanly: it releases the lease and a follower takes
	// over within a retry period or two, not a whole lease duration.
	stopped := time.Now()
	first.cancel()
	<-first.done
	rest := others(first, a, b, c)
	var second *replica
	require.Eventually(t, func() bool {
		var n int
		second, n = leaderOf(rest...)
		return n == 1
	}, 5*time.Second, 10*time.Millisecond)
	t.Logf("clean handover after %s", time.Since(stopped))

	// The new leader dies without releasing the lease (its connection is
	// cut first, as for kill -9): a follower takes over once the lease
	// expires.
	killed := time.Now()
	second.cut.Store(true)
	second.cancel()
	<-second.done
	last := others(second, rest...)
	require.Len(t, last, 1)
	require.Eventually(t, func() bool { return last[0].elector.IsLeader() }, 3*fastConfig().LeaseDuration, 10*time.Millisecond)
	took := time.Since(killed)
	t.Logf("takeover after a crash: %s (lease duration %s)", took, fastConfig().LeaseDuration)
	assert.Less(t, took, fastConfig().LeaseDuration+2*fastConfig().RetryPeriod+time.Second, "takeover within the lease duration")
}

func others(out *replica, rs ...*replica) []*replica {
	var o []*replica
	for _, r := range rs {
		if r != out {
			o = append(o, r)
		}
	}
	return o
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	require.NoError(t, c.Validate())
	c.LeaseName = ""
	c.RenewDeadline = c.LeaseDuration
	err := c.Validate()
	assert.ErrorContains(t, err, "lease_name: must not be empty")
	assert.ErrorContains(t, err, "lease_duration: 15s must be longer than renew_deadline 15s")
}
