package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Progress is one source's saved import progress: the window of its run,
// the cursor after the last batch applied, and whether the window is read.
// The runner saves it with each batch's events, in one storage write
// (ApplyFunc), so that a crash keeps both or neither.
type Progress struct {
	Version int       `json:"version"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Cursor  string    `json:"cursor,omitempty"`
	// Finished is set once the source read its whole window.
	Finished bool `json:"finished,omitempty"`
	// Events counts the events applied so far, Done and Total are the
	// source's last Batch.Done and Batch.Total.
	Events int `json:"events,omitempty"`
	Done   int `json:"done,omitempty"`
	Total  int `json:"total,omitempty"`
}

// progressVersion is the codec version of Progress.
const progressVersion = 1

// EncodeProgress is the stored form of p.
func EncodeProgress(p Progress) []byte {
	p.Version = progressVersion
	b, _ := json.Marshal(p) // plain data: cannot fail
	return b
}

// DecodeProgress reads a stored Progress; nil or empty is no progress.
func DecodeProgress(b []byte) (*Progress, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var p Progress
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if p.Version < 1 || p.Version > progressVersion {
		return nil, fmt.Errorf("history progress version %d, this build reads up to %d", p.Version, progressVersion)
	}
	return &p, nil
}

// ApplyFunc applies imported events durably (the ingest core's Import),
// saving values (keyed by the storage key) in the same write; it returns
// how many events were new to the engine.
type ApplyFunc func(ctx context.Context, events []event.Event, values map[string][]byte) (accepted int, err error)

// Settings configure a Runner.
type Settings struct {
	Logger  *zap.Logger
	Sources []Source
	// Window is how far back an import reads.
	Window time.Duration
	// BatchSize is the most events applied in one storage write: a
	// source's larger batches are split, the cursor saved with the last
	// part.
	BatchSize int
	Apply     ApplyFunc
	// Load reads a stored value (nil: none); nil without a storage: every
	// run then starts afresh.
	Load func(ctx context.Context, key string) ([]byte, error)
	// Key is the storage key of a source's progress.
	Key func(source string) string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Report receives each source's progress after every batch and at its
	// end (telemetry), with the events new to the engine since the last
	// report (Apply's accepted); it
	// must not block. State is one of the State* constants; err is the
	// source's error when it failed.
	Report func(source string, p Progress, applied int, state string, err error)
	// LogEvery is the least time between two progress log lines of a
	// source (10 s when 0).
	LogEvery time.Duration
}

// States of a source's import, for Settings.Report.
const (
	StateRunning  = "running"
	StateFinished = "finished"
	StateStopped  = "stopped"
	StateFailed   = "failed"
)

// Runner runs the import of every configured source, one goroutine per
// source, for the window [now-Window, now) or the saved window of an
// unfinished run, and saves each source's progress with its batches.
type Runner struct {
	set Settings

	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewRunner returns a runner that runs nothing until Run.
func NewRunner(set Settings) *Runner {
	if set.Now == nil {
		set.Now = time.Now
	}
	if set.LogEvery <= 0 {
		set.LogEvery = 10 * time.Second
	}
	if set.BatchSize <= 0 {
		set.BatchSize = 500
	}
	if set.Logger == nil {
		set.Logger = zap.NewNop()
	}
	return &Runner{set: set}
}

// ErrRunning is returned by Start while an import runs.
var ErrRunning = errors.New("a history import is running")

// Unfinished reports whether a source's saved progress says an earlier
// run was interrupted: it resumes at the next start.
func (r *Runner) Unfinished(ctx context.Context) (bool, error) {
	for _, s := range r.set.Sources {
		p, err := r.load(ctx, s.Name())
		if err != nil {
			return false, err
		}
		if p != nil && !p.Finished {
			return true, nil
		}
	}
	return false, nil
}

// Start runs the import in the background: sources whose saved run is
// unfinished resume it; when onlyUnfinished is false the others start a
// new window. It returns ErrRunning while a run goes on. done is closed
// when the run ends.
func (r *Runner) Start(ctx context.Context, onlyUnfinished bool) (done <-chan struct{}, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return nil, ErrRunning
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.running, r.cancel, r.done = true, cancel, make(chan struct{})
	ch := r.done
	go func() {
		defer close(ch)
		defer cancel()
		r.Run(ctx, onlyUnfinished)
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()
	return ch, nil
}

// Running reports whether an import runs.
func (r *Runner) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// Stop cancels a running import and waits for it to end (or ctx).
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Phased is implemented by sources that must run after others: the
// engine attributes an incident to a deployment it already knows, so the
// sources that import only incidents (PagerDuty) return 1 and run once
// the sources of phase 0 (every other one: deployments, changes) are
// done. Sources of one phase run concurrently.
type Phased interface {
	Phase() int
}

func phaseOf(s Source) int {
	if p, ok := s.(Phased); ok {
		return p.Phase()
	}
	return 0
}

// Run imports in the caller's goroutine (Start runs it in the background)
// and returns each source's outcome, nil for a source whose window was
// read (or which had nothing to do). Phases run in order (Phased); a
// later phase runs even when a source of an earlier one failed.
func (r *Runner) Run(ctx context.Context, onlyUnfinished bool) map[string]error {
	now := r.set.Now()
	var mu sync.Mutex
	out := map[string]error{}
	// Each source's run: resumed, or a new window. The new windows are
	// saved, unfinished, before any source reads: a crash before a later
	// phase's source started resumes it too.
	progress := map[string]*Progress{}
	fresh := map[string][]byte{}
	for _, s := range r.set.Sources {
		name := s.Name()
		log := r.set.Logger.With(zap.String("source", name))
		saved, err := r.load(ctx, name)
		if err != nil {
			log.Error("History import not started: its saved progress cannot be read", zap.Error(err))
			out[name] = err
			continue
		}
		switch {
		case saved != nil && !saved.Finished:
			progress[name] = saved
			log.Info("History import resumes where it stopped", zap.Time("from", saved.From), zap.Time("to", saved.To),
				zap.Int("events_applied", saved.Events), zap.Int("done", saved.Done), zap.Int("total", saved.Total))
		case onlyUnfinished:
		default:
			p := &Progress{From: now.Add(-r.set.Window), To: now}
			progress[name] = p
			maps.Copy(fresh, r.values(name, *p))
		}
	}
	if len(fresh) > 0 {
		if _, err := r.set.Apply(ctx, nil, fresh); err != nil {
			r.set.Logger.Error("History import not started: saving its start failed", zap.Error(err))
			for name := range progress {
				out[name] = err
			}
			return out
		}
	}
	phases := map[int][]Source{}
	var order []int
	for _, s := range r.set.Sources {
		if progress[s.Name()] == nil {
			continue
		}
		p := phaseOf(s)
		if _, ok := phases[p]; !ok {
			order = append(order, p)
		}
		phases[p] = append(phases[p], s)
	}
	slices.Sort(order)
	for _, p := range order {
		if ctx.Err() != nil {
			break // stopped: the later phases resume at the next start
		}
		var wg sync.WaitGroup
		for _, s := range phases[p] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := r.runSource(ctx, s, *progress[s.Name()])
				mu.Lock()
				out[s.Name()] = err
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	return out
}

func (r *Runner) load(ctx context.Context, name string) (*Progress, error) {
	if r.set.Load == nil {
		return nil, nil
	}
	b, err := r.set.Load(ctx, r.set.Key(name))
	if err != nil {
		return nil, fmt.Errorf("reading the saved progress of %s: %w", name, err)
	}
	return DecodeProgress(b)
}

func (r *Runner) runSource(ctx context.Context, s Source, p Progress) error {
	name := s.Name()
	log := r.set.Logger.With(zap.String("source", name))
	if p.Cursor == "" && p.Events == 0 {
		log.Info("History import started", zap.Time("from", p.From), zap.Time("to", p.To))
	}
	w := Window{From: p.From, To: p.To}
	sk := &sink{r: r, source: name, w: w, p: p, log: log, began: time.Now(), startEvents: p.Events, startDone: p.Done, lastLog: time.Now()}
	r.report(name, p, 0, StateRunning, nil)
	err := s.Import(ctx, w, p.Cursor, sk)
	p = sk.p
	took := time.Since(sk.began)
	var serr *SettingError
	switch {
	case err == nil:
		p.Finished = true
		// The finish is saved, so a restart does not resume a read window.
		if _, aerr := r.set.Apply(context.WithoutCancel(ctx), nil, r.values(name, p)); aerr != nil {
			log.Warn("History import finished, but saving that failed; the next start reads the rest of the window again (nothing is counted twice)", zap.Error(aerr))
		}
		log.Info("History import finished", zap.Int("events_applied", p.Events-sk.startEvents), zap.Int("events_total", p.Events),
			zap.Int("done", p.Done), zap.Duration("took", took.Round(time.Millisecond)), zap.Float64("events_per_second", rate(p.Events-sk.startEvents, took)))
		r.report(name, p, 0, StateFinished, nil)
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		log.Info("History import stopped; it resumes from its saved progress at the next start", zap.Int("events_applied", p.Events), zap.Int("done", p.Done), zap.Int("total", p.Total))
		r.report(name, p, 0, StateStopped, nil)
		return err
	case errors.As(err, &serr):
		// Only this source stops; the error names the setting, never its
		// value.
		log.Error("History import of this source stopped: fix the setting named, then restart the collector or trigger the import again",
			zap.String("setting", serr.Setting), zap.Error(serr.Err))
	case errors.Is(err, ErrBudgetSpent):
		log.Warn("History import paused: its request budget is spent; it resumes from its saved progress at the next run",
			zap.Int("events_applied", p.Events), zap.Int("done", p.Done), zap.Int("total", p.Total))
	default:
		log.Error("History import of this source failed; it resumes from its saved progress at the next run", zap.Error(err))
	}
	r.report(name, p, 0, StateFailed, err)
	return err
}

func (r *Runner) values(name string, p Progress) map[string][]byte {
	if r.set.Key == nil {
		return nil
	}
	return map[string][]byte{r.set.Key(name): EncodeProgress(p)}
}

func (r *Runner) report(name string, p Progress, applied int, state string, err error) {
	if r.set.Report != nil {
		r.set.Report(name, p, applied, state, err)
	}
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// sink applies one source's batches: its events marked imported, in parts
// of at most BatchSize, the progress saved with the last part.
type sink struct {
	r           *Runner
	source      string
	w           Window
	p           Progress
	log         *zap.Logger
	began       time.Time
	startEvents int
	startDone   int
	lastLog     time.Time
}

func (s *sink) Apply(ctx context.Context, b Batch) error {
	events := make([]event.Event, len(b.Events))
	for i, ev := range b.Events {
		ev.Imported, ev.ImportFrom = true, s.w.From
		events[i] = ev
	}
	accepted := 0
	next := s.p
	next.Cursor, next.Done, next.Total = b.Cursor, b.Done, b.Total
	for len(events) > 0 || next.Cursor != s.p.Cursor {
		part := events[:min(len(events), s.r.set.BatchSize)]
		events = events[len(part):]
		// The last part carries the progress (none without a storage).
		last := len(events) == 0
		var values map[string][]byte
		if last {
			next.Events = s.p.Events + len(part)
			values = s.r.values(s.source, next)
		}
		n, err := s.r.set.Apply(ctx, part, values)
		if err != nil {
			return fmt.Errorf("applying imported events: %w", err)
		}
		accepted += n
		if !last {
			s.p.Events += len(part)
			continue
		}
		s.p = next
		break
	}
	s.p.Done, s.p.Total = b.Done, b.Total
	s.r.report(s.source, s.p, accepted, StateRunning, nil)
	if time.Since(s.lastLog) >= s.r.set.LogEvery {
		s.lastLog = time.Now()
		took := time.Since(s.began)
		fields := []zap.Field{zap.Int("events_applied", s.p.Events), zap.Int("done", s.p.Done),
			zap.Float64("events_per_second", rate(s.p.Events-s.startEvents, took))}
		if s.p.Total > 0 {
			fields = append(fields, zap.Int("total", s.p.Total), zap.Int("left", max(0, s.p.Total-s.p.Done)))
			if n := s.p.Done - s.startDone; n > 0 {
				perItem := took / time.Duration(n)
				fields = append(fields, zap.Duration("eta", (perItem*time.Duration(max(0, s.p.Total-s.p.Done))).Round(time.Second)))
			}
		}
		s.log.Info("History import progress", fields...)
	}
	return nil
}
