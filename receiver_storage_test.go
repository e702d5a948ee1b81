package dorareceiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/ingest"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
	"github.com/otelcol-dora/dorareceiver/internal/persist"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
)

var storageID = component.MustNewIDWithName("file_storage", "dora")

// extensionHost is a collector host with extensions.
type extensionHost map[component.ID]component.Component

func (h extensionHost) GetExtensions() map[component.ID]component.Component { return h }

// storedSettings are the settings of every receiver of these tests: the
// same id, so the same storage, across restarts (as in a collector).
func storedSettings() receiver.Settings {
	set := receivertest.NewNopSettings(metadata.Type)
	set.ID = component.NewID(metadata.Type)
	return set
}

// storedReceiver is a dora receiver with webhooks and storage, started on
// host. stop shuts it down; a test that never calls it leaves it as after
// kill -9 (nothing flushed, the client not closed) until the test ends.
type storedReceiver struct {
	url  string
	next *flakyConsumer
	rcv  receiver.Metrics
	stop func()
}

func startStoredReceiver(t *testing.T, host component.Host, configure func(*Config)) *storedReceiver {
	t.Helper()
	r, err := tryStartStoredReceiver(t, host, configure)
	require.NoError(t, err)
	return r
}

func tryStartStoredReceiver(t *testing.T, host component.Host, configure func(*Config)) (*storedReceiver, error) {
	t.Helper()
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	cfg.Services = []ServiceMapping{{Repository: "acme/api", Namespace: "shop", Deployment: "api"}}
	id := storageID
	cfg.Storage = &id
	if configure != nil {
		configure(cfg)
	}
	require.NoError(t, cfg.Validate())
	next := &flakyConsumer{}
	rcv, err := NewFactory().CreateMetrics(context.Background(), storedSettings(), cfg, next)
	require.NoError(t, err)
	if err := rcv.Start(context.Background(), host); err != nil {
		return nil, err
	}
	var once sync.Once
	stop := func() { once.Do(func() { require.NoError(t, rcv.Shutdown(context.Background())) }) }
	t.Cleanup(stop)
	return &storedReceiver{url: "http://" + wc.ServerConfig.NetAddr.Endpoint + "/events", next: next, rcv: rcv, stop: stop}, nil
}

// deliver posts a signed generic delivery and returns the answer.
func (r *storedReceiver) deliver(t *testing.T, body []byte) reply {
	t.Helper()
	return post(t, r.url, "application/json", body, true)
}

// counters reads, from the latest emission, the values of the series the
// tests send, and the start time of the cumulative series.
type counters struct {
	success, failure, leadTimes int64
	start                       pcommon.Timestamp
}

func (r *storedReceiver) counters() counters {
	md := latest(r.next)
	var c counters
	c.success, _ = counterValue(md, "platform.deployments", map[string]string{"namespace": "shop", "deployment": "api", "status": "success"})
	c.failure, _ = counterValue(md, "platform.deployments", map[string]string{"namespace": "shop", "deployment": "api", "status": "failure"})
	c.leadTimes = int64(histogramCount(md, "platform.lead_time", map[string]string{"namespace": "shop", "deployment": "api"}))
	forEachMetric(md, "platform.deployments", func(m pmetric.Metric) {
		if m.Sum().DataPoints().Len() > 0 {
			c.start = m.Sum().DataPoints().At(0).StartTimestamp()
		}
	})
	return c
}

// waitCounters waits for an emission with want (the start time is not
// compared when want's is zero).
func (r *storedReceiver) waitCounters(t *testing.T, want counters) {
	t.Helper()
	require.Eventually(t, func() bool {
		got := r.counters()
		if want.start == 0 {
			got.start = 0
		}
		return got == want
	}, 10*time.Second, 10*time.Millisecond, "want %+v, last %+v", want, r.counters())
}

func changeJSON(id, rev, parent string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"change","id":%q,"time":%q,"repository":"acme/api","revision":%q,"parent_revision":%q}`,
		id, at.UTC().Format(time.RFC3339), rev, parent)
}

func deployJSON(id, status, rev string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"deployment","id":%q,"time":%q,"repository":"acme/api","environment":"production","status":%q,"deployment_id":%q,"revision":%q}`,
		id, at.UTC().Format(time.RFC3339), status, id, rev)
}

// history is a few deliveries: the start of api's history, two commits, a
// deployment shipping them (two lead times), a failed deployment.
func history(now time.Time) [][]byte {
	return [][]byte{
		deployJSON("d0", "success", "r0", now.Add(-3*time.Hour)),
		changeJSON("c1", "r1", "r0", now.Add(-2*time.Hour)),
		changeJSON("c2", "r2", "r1", now.Add(-time.Hour)),
		deployJSON("d1", "success", "r2", now.Add(-30*time.Minute)),
		deployJSON("d2", "failure", "r3", now.Add(-10*time.Minute)),
	}
}

var afterHistory = counters{success: 2, failure: 1, leadTimes: 2}

// TestStorageKeepsStateAcrossRestarts: a receiver stopped and started
// again on the same storage shows the same counters with the same start
// time, recognizes a redelivery of what it accepted before, and goes on
// counting from there. The first receiver closed its storage client.
func TestStorageKeepsStateAcrossRestarts(t *testing.T) {
	ext := persisttest.NewExtension()
	host := extensionHost{storageID: ext}
	now := time.Now().Truncate(time.Second)

	first := startStoredReceiver(t, host, nil)
	for i, body := range history(now) {
		r := first.deliver(t, body)
		require.Equal(t, http.StatusOK, r.status, "delivery %d: %v", i, r.body)
		require.EqualValues(t, 1, r.body["accepted"], "delivery %d", i)
	}
	before := first.counters()
	require.Equal(t, afterHistory, counters{success: before.success, failure: before.failure, leadTimes: before.leadTimes})
	require.NotZero(t, before.start)
	first.stop()
	for _, c := range ext.Clients() {
		assert.True(t, c.Closed(), "Shutdown closes the storage client")
	}

	second := startStoredReceiver(t, host, nil)
	// The restored totals are sent at start, without a new delivery.
	second.waitCounters(t, before)

	for i, body := range history(now) {
		r := second.deliver(t, body)
		require.Equal(t, http.StatusOK, r.status, "redelivery %d: %v", i, r.body)
		assert.EqualValues(t, 0, r.body["accepted"], "redelivery %d", i)
		assert.EqualValues(t, 1, r.body["duplicates"], "redelivery %d", i)
	}
	r := second.deliver(t, deployJSON("d3", "success", "r3", now))
	require.Equal(t, http.StatusOK, r.status, r.body)
	want := before
	want.success++
	second.waitCounters(t, want)
}

// TestStorageSurvivesACrash: a receiver that never shut down (kill -9: no
// last snapshot, the client left open) loses nothing that it answered 2xx:
// every accepted delivery was logged before the answer. With
// snapshot_every 2 the state is in a snapshot and a short log, both read
// back.
func TestStorageSurvivesACrash(t *testing.T) {
	ext := persisttest.NewExtension()
	host := extensionHost{storageID: ext}
	now := time.Now().Truncate(time.Second)
	snapshotEvery := func(cfg *Config) { cfg.SnapshotEvery = 2 }

	crashed := startStoredReceiver(t, host, snapshotEvery)
	for _, body := range history(now) {
		require.Equal(t, http.StatusOK, crashed.deliver(t, body).status)
	}
	before := crashed.counters()
	keys := ext.Clients()[0].Keys()
	assert.Contains(t, keys, persist.KeySnapshot)
	assert.Contains(t, keys, persist.EventKey(5), "the last event is logged, after the snapshot of the first four")
	assert.NotContains(t, keys, persist.EventKey(1), "the snapshot replaced the events it covers")

	// Not stopped: the next one starts on what the storage holds now.
	restarted := startStoredReceiver(t, host, snapshotEvery)
	restarted.waitCounters(t, before)
	r := restarted.deliver(t, history(now)[3])
	assert.EqualValues(t, 1, r.body["duplicates"], "the redelivery of an acknowledged event is recognized")
	restarted.waitCounters(t, before)
}

// TestStorageFailureRefusesDeliveries: when the storage fails, a delivery
// is answered 503 (the sender retries) and nothing of it is applied; the
// retry, once the storage works, is counted once.
func TestStorageFailureRefusesDeliveries(t *testing.T) {
	ext := persisttest.NewExtension()
	host := extensionHost{storageID: ext}
	now := time.Now().Truncate(time.Second)
	rcv := startStoredReceiver(t, host, nil)
	require.Equal(t, http.StatusOK, rcv.deliver(t, deployJSON("d0", "success", "r0", now.Add(-time.Hour))).status)
	rcv.waitCounters(t, counters{success: 1})

	ext.Fail(errors.New("disk I/O error"))
	body := deployJSON("d1", "success", "r1", now)
	r := rcv.deliver(t, body)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "5", r.header.Get("Retry-After"))
	assert.Contains(t, r.body["error"], "storage is unavailable: disk I/O error; retry later")
	// Nothing applied: the retry below is new to the engine, and the
	// emission it waits for has two deployments, not three.

	ext.Fail(nil)
	r = rcv.deliver(t, body)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.EqualValues(t, 1, r.body["accepted"], "the retry is new to the engine")
	rcv.waitCounters(t, counters{success: 2})

	// And it was logged: a restart keeps it.
	rcv.stop()
	again := startStoredReceiver(t, host, nil)
	again.waitCounters(t, counters{success: 2})
}

// TestStorageSettingErrors: a storage setting naming a missing extension,
// or one that is not a storage extension, fails the start naming it; so
// does state written by a newer version.
func TestStorageSettingErrors(t *testing.T) {
	_, err := tryStartStoredReceiver(t, componenttest.NewNopHost(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `storage: extension "file_storage/dora" not found`)

	_, err = tryStartStoredReceiver(t, extensionHost{storageID: notStorage{}}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `storage: extension "file_storage/dora" is not a storage extension`)

	ext := persisttest.NewExtension()
	c, err := ext.GetClient(context.Background(), component.KindReceiver, component.NewID(metadata.Type), "")
	require.NoError(t, err)
	require.NoError(t, c.Set(context.Background(), persist.KeyFormat, []byte(`{"version":2}`)))
	_, err = tryStartStoredReceiver(t, extensionHost{storageID: ext}, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, persist.ErrNewerVersion)
	assert.Contains(t, err.Error(), `storage: loading the state saved in "file_storage/dora"`)
	for _, c := range ext.Clients()[1:] {
		assert.True(t, c.Closed(), "a failed start closes the client")
	}
}

type notStorage struct{}

func (notStorage) Start(context.Context, component.Host) error { return nil }
func (notStorage) Shutdown(context.Context) error              { return nil }

// TestNoStorageWarnsOnce: without the storage setting the receiver keeps
// its state in memory and says so, once, at start.
func TestNoStorageWarnsOnce(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	set := receivertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	cfg := createDefaultConfig()
	wc := cfg.Webhooks.GetOrInsertDefault()
	wc.ServerConfig.NetAddr.Endpoint = freeEndpoint(t)
	wc.Generic.GetOrInsertDefault().Secret = testSecret
	rcv, err := NewFactory().CreateMetrics(context.Background(), set, cfg, &flakyConsumer{})
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	post(t, "http://"+wc.ServerConfig.NetAddr.Endpoint+"/events", "application/json", deploymentJSON("a", "success", time.Now()), true)
	require.NoError(t, rcv.Shutdown(context.Background()))
	warned := logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet("No storage configured")
	require.Equal(t, 1, warned.Len())
	assert.Contains(t, warned.All()[0].Message, "counters restart from zero when the collector restarts")
}

// TestKubernetesEventsWaitForStorage: a rollout event that cannot be
// logged is retried, with backoff, until the storage works (then it is
// counted once), or until the receiver stops (then the source is told, so
// that it saves nothing more and derives the event again at the next
// start).
func TestKubernetesEventsWaitForStorage(t *testing.T) {
	ext := persisttest.NewExtension()
	rcv := startStoredReceiver(t, extensionHost{storageID: ext}, nil)
	r := rcv.rcv.(*shared).doraReceiver
	rollout := func(id string) event.Event {
		return event.Event{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: id + "/deployment_succeeded", Time: time.Now(),
			Service: event.Service{Namespace: "shop", Name: "api", Environment: "production"}, DeploymentID: id}
	}

	ext.Fail(errors.New("disk I/O error"))
	done := make(chan error, 1)
	go func() { done <- r.applyAsync(rollout("shop/api/u1@2")) }()
	// Refused, then retried after its backoff: still waiting.
	require.Eventually(t, func() bool { return ext.Refused() >= 2 }, 10*time.Second, time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("returned while the storage fails: %v", err)
	default:
	}
	assert.EqualValues(t, 0, rcv.counters().success, "nothing applied while it is not logged")
	ext.Fail(nil)
	require.NoError(t, <-done)
	rcv.waitCounters(t, counters{success: 1})

	ext.Fail(errors.New("disk I/O error"))
	refused := ext.Refused()
	go func() { done <- r.applyAsync(rollout("shop/api/u1@3")) }()
	// In its retries when the receiver stops.
	require.Eventually(t, func() bool { return ext.Refused() > refused }, 10*time.Second, time.Millisecond)
	go rcv.stop()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, ingest.ErrStorageUnavailable)
	case <-time.After(10 * time.Second):
		t.Fatal("the retry did not stop with the receiver")
	}
}
