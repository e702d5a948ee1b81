package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// burstCollector runs otelcol-dora with the generic webhook source, the
// Prometheus exporter and file_storage on dir (the shipped snapshot
// interval), with fresh ports: each call is a new process on the same
// state.
func burstCollector(t *testing.T, bin, dir string) (webhookURL, metricsURL string, p *collectorProcess) {
	t.Helper()
	base, metricsURL, p := storageCollector(t, bin, dir, "")
	return base + "/events", metricsURL, p
}

// burstOutcome is what a sender learned from one attempt.
type burstOutcome struct {
	ok       bool // answered 2xx
	accepted bool // the answer said the event was new to the receiver
}

// sendBurstDelivery posts one signed generic delivery; any failure to get
// an answer (the collector is being killed or restarted) is not ok.
func sendBurstDelivery(client *http.Client, url string, body []byte) burstOutcome {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return burstOutcome{}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(generic.SignatureHeader, "sha256="+webhook.SignHMACSHA256(genericSecret, body))
	resp, err := client.Do(req)
	if err != nil {
		return burstOutcome{}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode/100 != 2 {
		return burstOutcome{}
	}
	var answer struct {
		Accepted int `json:"accepted"`
	}
	if json.Unmarshal(raw, &answer) != nil {
		return burstOutcome{}
	}
	return burstOutcome{ok: true, accepted: answer.Accepted == 1}
}

// TestKill9DuringWebhookBurst: several senders deliver a burst of
// distinct deployments to the real binary with file_storage; it is killed
// with SIGKILL (by PID) in the middle and started again on the same
// storage. Like real senders, they retry every delivery that got no 2xx
// (until it does) and redeliver some that did. In the end the Prometheus
// endpoint counts exactly one deployment per distinct delivery: every
// acknowledged one once, the ones in flight at the kill once after their
// retry, none twice; and no delivery is answered "accepted" (new) twice.
func TestKill9DuringWebhookBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	const (
		deliveries = 2000
		senders    = 8
	)
	bin := collectorBinary(t)
	dir := t.TempDir()
	webhookURL, _, first := burstCollector(t, bin, dir)
	var url atomic.Pointer[string]
	url.Store(&webhookURL)

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	bodies := make([][]byte, deliveries)
	for i := range bodies {
		var err error
		bodies[i], err = json.Marshal(generic.Payload{
			Type: "deployment", ID: fmt.Sprintf("burst-%d", i), Time: base.Add(time.Duration(i) * time.Second),
			Service: fmt.Sprintf("svc-%d", i%5), Environment: "production", Status: "success",
			DeploymentID: fmt.Sprintf("deploy-%d", i), Revision: fmt.Sprintf("rev-%d", i),
		})
		require.NoError(t, err)
	}

	var (
		acked           atomic.Int64 // distinct deliveries answered 2xx
		failedAttempts  atomic.Int64
		mu              sync.Mutex
		acceptedTimes   = make([]int, deliveries)  // 2xx answers saying "new"
		ackedIdx        = make([]bool, deliveries) // answered 2xx at least once
		ackedBeforeKill = make([]bool, deliveries)
	)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	// deliver sends body i until it is answered 2xx.
	deliver := func(i int) {
		for {
			out := sendBurstDelivery(client, *url.Load(), bodies[i])
			if out.ok {
				mu.Lock()
				ackedIdx[i] = true
				if out.accepted {
					acceptedTimes[i]++
				}
				mu.Unlock()
				return
			}
			failedAttempts.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for i := range work {
				deliver(i)
				acked.Add(1)
				// Some senders deliver twice (a timeout on their side).
				if i%10 == 0 {
					deliver(i)
				}
			}
		})
	}
	go func() {
		for i := range deliveries {
			work <- i
		}
		close(work)
	}()

	// Kill in the middle of the burst.
	require.Eventually(t, func() bool { return acked.Load() >= deliveries/2 }, 3*time.Minute, time.Millisecond)
	first.kill(t)
	killedAt := acked.Load()
	mu.Lock()
	copy(ackedBeforeKill, ackedIdx)
	mu.Unlock()
	t.Logf("killed with SIGKILL after %d of %d deliveries were acknowledged", killedAt, deliveries)

	webhookURL, metricsURL, second := burstCollector(t, bin, dir)
	url.Store(&webhookURL)
	assert.Contains(t, second.log(), "DORA state restored from storage")
	wg.Wait()
	// After the crash, senders redeliver some of what was acknowledged
	// before it.
	redelivered := 0
	for i := range deliveries {
		if ackedBeforeKill[i] && i%7 == 0 {
			deliver(i)
			redelivered++
		}
	}
	t.Logf("%d attempts failed (killed, restarting) and were retried; %d acknowledged deliveries redelivered after the restart",
		failedAttempts.Load(), redelivered)
	assert.Less(t, killedAt, int64(deliveries), "the kill came after the burst")
	assert.Positive(t, failedAttempts.Load(), "no delivery was in flight at the kill")

	for i, n := range acceptedTimes {
		assert.LessOrEqual(t, n, 1, "delivery %d was answered as new %d times", i, n)
	}
	waitMetric(t, metricsURL, "platform_deployments_total", map[string]string{}, deliveries)
	m := scrape(t, metricsURL)
	assert.EqualValues(t, deliveries, m.sum("platform_deployments_total", map[string]string{"status": "success"}))
	for s := range 5 {
		assert.EqualValues(t, deliveries/5, m.sum("platform_deployments_total", map[string]string{"deployment": fmt.Sprintf("svc-%d", s)}), "svc-%d", s)
	}
}
