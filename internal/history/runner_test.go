package history

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// store is the storage and the ingest core of these tests: it applies
// events and values together, as the core's Import does, and can fail.
type store struct {
	mu     sync.Mutex
	values map[string][]byte
	events []event.Event
	writes int
	fail   error
}

func newStore() *store { return &store{values: map[string][]byte{}} }

func (s *store) apply(_ context.Context, evs []event.Event, values map[string][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	s.writes++
	s.events = append(s.events, evs...)
	for k, v := range values {
		s.values[k] = v
	}
	return len(evs), nil
}

func (s *store) load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key], nil
}

func (s *store) progress(t *testing.T, source string) *Progress {
	t.Helper()
	b, _ := s.load(context.Background(), "history/"+source)
	p, err := DecodeProgress(b)
	require.NoError(t, err)
	return p
}

// fake is a source with pages of events; the cursor is the number of
// pages read. It fails with failAt when it reaches that page, and blocks
// on block before a page when set.
type fake struct {
	name   string
	pages  [][]event.Event
	failAt int
	err    error
	block  chan struct{}

	mu      sync.Mutex
	cursors []string
	windows []Window
}

func (f *fake) Name() string { return f.name }

func (f *fake) Import(ctx context.Context, w Window, cursor string, sink Sink) error {
	f.mu.Lock()
	f.cursors, f.windows = append(f.cursors, cursor), append(f.windows, w)
	f.mu.Unlock()
	start := 0
	if cursor != "" {
		start, _ = strconv.Atoi(cursor)
	}
	for i := start; i < len(f.pages); i++ {
		if f.err != nil && i == f.failAt {
			return f.err
		}
		if f.block != nil {
			select {
			case <-f.block:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := sink.Apply(ctx, Batch{Events: f.pages[i], Cursor: strconv.Itoa(i + 1), Done: i + 1, Total: len(f.pages)}); err != nil {
			return err
		}
	}
	return nil
}

func pages(source string, n, per int) [][]event.Event {
	var out [][]event.Event
	for i := range n {
		var page []event.Event
		for j := range per {
			page = append(page, event.Event{Kind: event.IncidentOpened, Source: source, ID: fmt.Sprintf("%d-%d", i, j),
				Time: now.Add(-time.Duration(i*per+j) * time.Hour), IncidentID: fmt.Sprintf("%d-%d", i, j)})
		}
		out = append(out, page)
	}
	return out
}

func newRunner(st *store, logger *zap.Logger, sources ...Source) *Runner {
	return NewRunner(Settings{
		Logger: logger, Sources: sources, Window: 30 * 24 * time.Hour, BatchSize: 3,
		Apply: st.apply, Load: st.load, Key: func(s string) string { return "history/" + s },
		Now: func() time.Time { return now },
	})
}

// TestRunnerAppliesBatchesMarkedWithProgress: every event is applied,
// marked imported with the window's start, in writes of at most BatchSize
// events; the progress is saved with the last part of each batch and
// finally marked finished.
func TestRunnerAppliesBatchesMarkedWithProgress(t *testing.T) {
	st := newStore()
	src := &fake{name: "pd", pages: pages("pd", 3, 4)}
	out := newRunner(st, zap.NewNop(), src).Run(context.Background(), false)
	require.NoError(t, out["pd"])
	require.Len(t, st.events, 12)
	for _, ev := range st.events {
		assert.True(t, ev.Imported)
		assert.Equal(t, now.Add(-30*24*time.Hour), ev.ImportFrom)
	}
	assert.Equal(t, 1+3*2+1, st.writes, "the start, 4 events in parts of 3 per page, then the finish")
	p := st.progress(t, "pd")
	assert.Equal(t, Progress{Version: 1, From: now.Add(-30 * 24 * time.Hour), To: now, Cursor: "3", Finished: true, Events: 12, Done: 3, Total: 3}, *p)
	assert.Equal(t, []Window{{now.Add(-30 * 24 * time.Hour), now}}, src.windows)

	// A finished run is not resumed; a new one (on demand) reads again.
	out = newRunner(st, zap.NewNop(), src).Run(context.Background(), true)
	assert.Empty(t, out["pd"])
	assert.Len(t, src.cursors, 1)
}

// TestRunnerResumesFromSavedCursor: a run that stops (a failing system,
// a crash) resumes with the same window from the cursor of the last batch
// applied; the batch that was not applied is read again.
func TestRunnerResumesFromSavedCursor(t *testing.T) {
	st := newStore()
	src := &fake{name: "pd", pages: pages("pd", 4, 2), failAt: 2, err: errors.New("503 from the provider")}
	r := newRunner(st, zap.NewNop(), src)
	require.Error(t, r.Run(context.Background(), false)["pd"])
	p := st.progress(t, "pd")
	assert.False(t, p.Finished)
	assert.Equal(t, "2", p.Cursor)
	unfinished, err := r.Unfinished(context.Background())
	require.NoError(t, err)
	assert.True(t, unfinished)

	src.err = nil
	later := newRunner(st, zap.NewNop(), src)
	later.set.Now = func() time.Time { return now.Add(time.Hour) }
	require.NoError(t, later.Run(context.Background(), true)["pd"])
	assert.Equal(t, []string{"", "2"}, src.cursors)
	assert.Equal(t, src.windows[0], src.windows[1], "the resumed run keeps its window")
	assert.Len(t, st.events, 8, "each page applied once")
	assert.True(t, st.progress(t, "pd").Finished)
}

// TestRunnerCrashBetweenApplyAndSave: the progress is written with the
// events, so a failed write leaves neither and the batch is read again.
func TestRunnerCrashBetweenApplyAndSave(t *testing.T) {
	st := newStore()
	src := &fake{name: "pd", pages: pages("pd", 2, 2)}
	st.fail = errors.New("storage unavailable")
	require.Error(t, newRunner(st, zap.NewNop(), src).Run(context.Background(), false)["pd"])
	assert.Empty(t, st.events)
	assert.Nil(t, st.progress(t, "pd"))
}

// TestRunnerSettingErrorStopsOneSource: a source refused for a setting
// stops alone, logged with the setting's name and not the token; the
// others finish.
func TestRunnerSettingErrorStopsOneSource(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	st := newStore()
	bad := &fake{name: "github", pages: pages("github", 2, 1), failAt: 1,
		err: &SettingError{Setting: "webhooks::github::history::token", Err: errors.New("401 Bad credentials")}}
	good := &fake{name: "pd", pages: pages("pd", 2, 1)}
	out := newRunner(st, zap.New(core), bad, good).Run(context.Background(), false)
	var serr *SettingError
	require.ErrorAs(t, out["github"], &serr)
	require.NoError(t, out["pd"])
	assert.True(t, st.progress(t, "pd").Finished)
	assert.False(t, st.progress(t, "github").Finished)
	entries := logs.FilterField(zap.String("setting", "webhooks::github::history::token")).All()
	require.Len(t, entries, 1)
	assert.Contains(t, entries[0].Message, "fix the setting")
}

// TestRunnerStopsOnCancel: Stop cancels a running import and waits for
// it; its progress stays unfinished, so the next start resumes it.
func TestRunnerStopsOnCancel(t *testing.T) {
	st := newStore()
	block := make(chan struct{})
	src := &fake{name: "pd", pages: pages("pd", 3, 1), block: block}
	r := newRunner(st, zap.NewNop(), src)
	done, err := r.Start(context.Background(), false)
	require.NoError(t, err)
	block <- struct{}{} // the first page
	require.Eventually(t, func() bool { return st.progress(t, "pd") != nil }, 5*time.Second, time.Millisecond)
	_, err = r.Start(context.Background(), false)
	require.ErrorIs(t, err, ErrRunning)
	require.NoError(t, r.Stop(context.Background()))
	<-done
	assert.False(t, r.Running())
	p := st.progress(t, "pd")
	assert.False(t, p.Finished)
	assert.Equal(t, "1", p.Cursor)
}

// phased is a fake source of a later phase (incidents).
type phased struct{ *fake }

func (phased) Phase() int { return 1 }

// TestRunnerPhasesAndAStopBeforeALaterPhase: a later phase's source runs
// once the earlier phase's are done (it sees their events applied); a run
// stopped before it started resumes it at the next start too, since every
// source's window is saved when the run begins.
func TestRunnerPhasesAndAStopBeforeALaterPhase(t *testing.T) {
	st := newStore()
	deployments := &fake{name: "generic", pages: pages("generic", 3, 1), block: make(chan struct{})}
	incidents := phased{&fake{name: "pagerduty", pages: pages("pagerduty", 1, 1)}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		deployments.block <- struct{}{} // the first page, then stop
		require.Eventually(t, func() bool { p := st.progress(t, "generic"); return p != nil && p.Cursor == "1" }, 5*time.Second, time.Millisecond)
		cancel()
	}()
	out := newRunner(st, zap.NewNop(), deployments, incidents).Run(ctx, false)
	require.ErrorIs(t, out["generic"], context.Canceled)
	assert.Empty(t, incidents.cursors, "the later phase did not start")
	require.NotNil(t, st.progress(t, "pagerduty"), "its window was saved at the start")
	assert.False(t, st.progress(t, "pagerduty").Finished)

	deployments.block = nil
	appliedBefore := -1
	r := newRunner(st, zap.NewNop(), deployments, incidents)
	r.set.Apply = func(ctx context.Context, evs []event.Event, values map[string][]byte) (int, error) {
		if len(evs) > 0 && evs[0].Source == "pagerduty" && appliedBefore < 0 {
			appliedBefore = len(st.events)
		}
		return st.apply(ctx, evs, values)
	}
	out = r.Run(context.Background(), true)
	require.NoError(t, out["generic"])
	require.NoError(t, out["pagerduty"])
	assert.Equal(t, 3, appliedBefore, "the incidents came after every deployment")
	assert.Equal(t, []string{""}, incidents.cursors)
	assert.Equal(t, []string{"", "1"}, deployments.cursors)
	assert.Equal(t, incidents.windows[0], deployments.windows[0], "one window for the whole run")
	assert.True(t, st.progress(t, "pagerduty").Finished)
}

// TestRunnerWithoutStorage: without a storage (no Key, no Load) batches,
// empty ones with a new cursor included (a Deployment without a rollout
// in the window), are applied and the run ends; it looped forever on an
// empty batch before.
func TestRunnerWithoutStorage(t *testing.T) {
	st := newStore()
	src := &fake{name: "kubernetes", pages: [][]event.Event{nil, pages("kubernetes", 1, 4)[0], nil}}
	r := NewRunner(Settings{Sources: []Source{src}, Window: 30 * 24 * time.Hour, BatchSize: 3, Apply: st.apply, Now: func() time.Time { return now }})
	done := make(chan map[string]error, 1)
	go func() { done <- r.Run(context.Background(), false) }()
	select {
	case out := <-done:
		assert.NoError(t, out["kubernetes"])
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not end")
	}
	assert.Len(t, st.events, 4)
	assert.Empty(t, st.values, "nothing saved without a storage")
}
