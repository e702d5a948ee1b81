package dorareceiver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/history/historytest"
	"github.com/otelcol-dora/dorareceiver/internal/persist"
	"github.com/otelcol-dora/dorareceiver/internal/persist/persisttest"
)

const historyToken = "hist-t0ken"

// withHistory configures the PagerDuty and generic sources to import from
// srv, and the trigger endpoint.
func withHistory(srv *historytest.Server) func(*Config) {
	return func(cfg *Config) {
		wc := cfg.Webhooks.GetOrInsertDefault()
		pd := wc.PagerDuty.GetOrInsertDefault()
		pd.Secret = "pd-secret"
		pd.Namespace = "shop"
		pd.Services = map[string]string{"PIJ90N7": "api"}
		pd.History.Token = historyToken
		pd.History.Endpoint = srv.URL
		g := wc.Generic.GetOrInsertDefault()
		g.History.Token = historyToken
		g.History.Endpoint = srv.URL + "/history"
		tc := cfg.History.Trigger.GetOrInsertDefault()
		tc.Token = historyToken
	}
}

func gaugeValue(md pmetric.Metrics, name string, attrs map[string]string) (float64, bool) {
	var out float64
	found := false
	forEachMetric(md, name, func(m pmetric.Metric) {
		dps := m.Gauge().DataPoints()
		for i := range dps.Len() {
			if matches(dps.At(i).Attributes().AsRaw(), attrs) {
				out, found = dps.At(i).DoubleValue(), true
			}
		}
	})
	return out, found
}

var api30d = map[string]string{"namespace": "shop", "deployment": "api", "environment": "production", "window": "30d"}

// rolling30d reads the 30-day deployment frequency and change failure
// rate of api from the latest emission that has them.
func rolling30d(r *storedReceiver) (freq, cfr float64, ok bool) {
	all := r.next.AllMetrics()
	for i := len(all) - 1; i >= 0; i-- {
		f, ok1 := gaugeValue(all[i], "platform.dora.deployment_frequency", api30d)
		c, ok2 := gaugeValue(all[i], "platform.dora.change_failure_rate", api30d)
		if ok1 && ok2 {
			return f, c, true
		}
	}
	return 0, 0, false
}

func triggerImport(t *testing.T, r *storedReceiver, token string) reply {
	t.Helper()
	url := strings.TrimSuffix(r.url, "/events") + DefaultHistoryTriggerPath
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(nil))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return reply{status: resp.StatusCode, body: body}
}

// TestHistoryImportOnFirstStart: a first start imports the month from
// PagerDuty and the platform's history endpoint: the 30-day rolling values
// reflect it at once, no counter moves; the progress is saved finished, so
// a restart imports nothing; an import on demand (202) counts nothing
// again; a live redelivery of an imported deployment is a duplicate.
func TestHistoryImportOnFirstStart(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	events, incidents := historytest.Month(now, "shop", "api")
	srv, err := historytest.New(historyToken, incidents, events, 7)
	require.NoError(t, err)
	defer srv.Close()
	ext := persisttest.NewExtension()
	host := extensionHost{storageID: ext}

	first := startStoredReceiver(t, host, withHistory(srv))
	require.Eventually(t, func() bool {
		f, _, ok := rolling30d(first)
		return ok && f == 60.0/30
	}, 20*time.Second, 20*time.Millisecond, "the 30-day frequency reflects the imported month")
	require.Eventually(t, func() bool {
		_, c, _ := rolling30d(first)
		return c == 12.0/60
	}, 10*time.Second, 20*time.Millisecond, "every 5th deployment failed through its incident: %v", func() any { _, c, _ := rolling30d(first); return c }())
	assert.Equal(t, counters{}, first.counters().withoutStart(), "no counter moves")
	requests := srv.Requests()

	// Imported again on demand: nothing changes.
	assert.Equal(t, http.StatusUnauthorized, triggerImport(t, first, "wrong").status)
	r := triggerImport(t, first, historyToken)
	require.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, r.status, r.body)
	require.Eventually(t, func() bool { return srv.Requests() > requests }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		h := first.rcv.(*shared).imports.Load()
		return h != nil && !h.runner.Running()
	}, 20*time.Second, 10*time.Millisecond)
	f, c, _ := rolling30d(first)
	assert.Equal(t, 60.0/30, f)
	assert.Equal(t, 12.0/60, c)

	// A live delivery of an imported deployment is a duplicate.
	b, err := json.Marshal(events[len(events)-1])
	require.NoError(t, err)
	live := first.deliver(t, b)
	require.Equal(t, http.StatusOK, live.status, live.body)
	assert.EqualValues(t, 1, live.body["duplicates"])
	first.stop()

	for _, src := range []string{"pagerduty", "generic"} {
		assert.Contains(t, string(ext.Clients()[0].Value(persist.HistoryKey(src))), `"finished":true`, src)
	}

	requests = srv.Requests()
	second := startStoredReceiver(t, host, withHistory(srv))
	second.waitCounters(t, counters{})
	require.Eventually(t, func() bool {
		f, _, ok := rolling30d(second)
		return ok && f == 60.0/30
	}, 10*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	assert.Equal(t, requests, srv.Requests(), "a restart after a finished import imports nothing")
	_ = generic.HistoryPage{}
}

func (c counters) withoutStart() counters {
	c.start = 0
	return c
}

// TestHistoryTriggerAnswers: the trigger endpoint refuses other methods
// (405) and a wrong token (401), answers 409 while an import runs (here
// the first start's, slowed down) and 202 with the sources once it is
// done; an import is not started twice at once.
func TestHistoryTriggerAnswers(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	events, incidents := historytest.Month(now, "shop", "api")
	srv, err := historytest.New(historyToken, incidents, events, 7)
	require.NoError(t, err)
	defer srv.Close()
	srv.SetDelay(300 * time.Millisecond)
	host := extensionHost{storageID: persisttest.NewExtension()}
	rcv := startStoredReceiver(t, host, withHistory(srv))
	url := strings.TrimSuffix(rcv.url, "/events") + DefaultHistoryTriggerPath

	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	r := triggerImport(t, rcv, "wrong")
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.NotContains(t, r.body["error"], historyToken)

	r = triggerImport(t, rcv, historyToken)
	require.Equal(t, http.StatusConflict, r.status, r.body)
	assert.Equal(t, "running", r.body["status"])

	srv.SetDelay(0)
	require.Eventually(t, func() bool {
		h := rcv.rcv.(*shared).imports.Load()
		return h != nil && !h.runner.Running()
	}, 30*time.Second, 10*time.Millisecond)
	r = triggerImport(t, rcv, historyToken)
	require.Equal(t, http.StatusAccepted, r.status, r.body)
	assert.Equal(t, "started", r.body["status"])
	assert.ElementsMatch(t, []any{"generic", "pagerduty"}, r.body["sources"])
}

// TestHistoryImportStatus: the import reports StatusOK events whose
// attributes say what it does, and a source refused for a setting (a
// wrong PagerDuty token: 401) a recoverable error naming the setting; the
// other source finishes.
func TestHistoryImportStatus(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	events, incidents := historytest.Month(now, "shop", "api")
	srv, err := historytest.New(historyToken, incidents, events, 20)
	require.NoError(t, err)
	defer srv.Close()
	host := &statusHost{extensionHost: extensionHost{storageID: persisttest.NewExtension()}}
	startStoredReceiver(t, host, func(cfg *Config) {
		withHistory(srv)(cfg)
		cfg.Webhooks.Get().PagerDuty.Get().History.Token = "not-the-token"
	})
	find := func(state, source string) *componentstatus.Event {
		for _, ev := range host.since(0) {
			s, _ := ev.Attributes().Get("history_import")
			src, _ := ev.Attributes().Get("history_import.source")
			if s.Str() == state && src.Str() == source {
				return ev
			}
		}
		return nil
	}
	require.Eventually(t, func() bool { return find("failed", "pagerduty") != nil && find("finished", "generic") != nil },
		20*time.Second, 10*time.Millisecond)
	failed := find("failed", "pagerduty")
	assert.Equal(t, componentstatus.StatusRecoverableError, failed.Status())
	assert.Contains(t, failed.Err().Error(), "webhooks::pagerduty::history::token")
	assert.NotContains(t, failed.Err().Error(), "not-the-token")
	assert.Equal(t, componentstatus.StatusOK, find("finished", "generic").Status())
	assert.Equal(t, componentstatus.StatusOK, find("running", "generic").Status())
}

// TestHistoryImportStopsOnShutdownAndResumes: a shutdown in the middle of
// an import stops it (status "stopped", not a failure), its progress
// saved; the next start resumes it and the month is counted once.
func TestHistoryImportStopsOnShutdownAndResumes(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	events, incidents := historytest.Month(now, "shop", "api")
	srv, err := historytest.New(historyToken, incidents, events, 3)
	require.NoError(t, err)
	defer srv.Close()
	srv.SetDelay(50 * time.Millisecond)
	ext := persisttest.NewExtension()
	host := &statusHost{extensionHost: extensionHost{storageID: ext}}
	first := startStoredReceiver(t, host, withHistory(srv))
	require.Eventually(t, func() bool { return srv.Requests() >= 4 }, 20*time.Second, 5*time.Millisecond)
	first.stop()
	var states []string
	for _, ev := range host.since(0) {
		if s, ok := ev.Attributes().Get("history_import"); ok {
			states = append(states, s.Str())
		}
	}
	assert.Contains(t, states, "stopped")
	assert.NotContains(t, states, "failed")
	assert.NotContains(t, string(ext.Clients()[0].Value(persist.HistoryKey("generic"))), `"finished":true`)

	srv.SetDelay(0)
	second := startStoredReceiver(t, extensionHost{storageID: ext}, withHistory(srv))
	require.Eventually(t, func() bool {
		f, c, ok := rolling30d(second)
		return ok && f == 60.0/30 && c == 12.0/60
	}, 20*time.Second, 20*time.Millisecond, "the resumed import counts the month once")
	assert.Equal(t, counters{}, second.counters().withoutStart())
}
