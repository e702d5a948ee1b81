// Package persist keeps the receiver's state in a collector storage
// extension (go.opentelemetry.io/collector/extension/xextension/storage),
// so that it survives restarts, planned or kill -9.
//
// The engine is a pure fold over events, so its durable form is an event
// log plus periodic snapshots: every delivery's events are appended (one
// Batch: the events and the last sequence number, so a delivery is durable
// whole or not at all) before the engine applies them; every so often a
// snapshot of the engine's state (engine.State) replaces the events it
// covers (one Batch again). Loading gives the snapshot and the events
// logged after it, to replay in order.
//
// The Kubernetes rollout tracker's per-Deployment state lives in the same
// store (see k8s.go).
//
// # Layout
//
// Every key but one starts with the layout version, "v1/":
//
//	format                          {"version":1}: the newest layout written here
//	v1/seq                          the sequence number of the last event appended (decimal)
//	v1/snapshot                     {"version":2,"seq":S,"commits":N,"state":{engine.State without commits}}
//	                                then a newline and the N commits in binary (commits.go);
//	                                version 1 was {"version":1,"seq":S,"state":{engine.State}}
//	v1/events/<seq, 20 digits>      {"version":1,"event":{...}}, for S < seq <= v1/seq; version 2 for
//	                                imported events (it adds "imported" and "import_from")
//	v1/set-aside/<seq, 20 digits>   {"version":1,"error":"...","value":"<the logged event's value>"}:
//	                                an event of the log that replay could not use (LoadChecked)
//	v1/history/<source>             {"version":1,...}: the history import's progress of one source
//	                                (internal/history), written in the Batch that logs its batch's events
//	v1/k8s/meta                     {"version":1,"since":...,"deployments":["ns/name",...]}
//	v1/k8s/deployments/<ns>/<name>  {"version":1,...}: one tracked Deployment
//	v1/k8s/clusters/<cluster>/meta  as v1/k8s/meta, for one of the clusters of kubernetes::clusters
//	v1/k8s/clusters/<cluster>/deployments/<ns>/<name>
//	                                as v1/k8s/deployments/..., for that cluster
//
// Values are JSON with their own codec version. Loading a store whose
// format, or any value's version, is newer than this build knows fails
// with ErrNewerVersion instead of guessing; a later layout must keep
// reading version 1 (testdata/v1 is a version 1 store, loaded by a test).
package persist

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// FormatVersion is the layout this build writes.
const FormatVersion = 1

// Keys of the layout.
const (
	KeyFormat    = "format"
	KeySeq       = "v1/seq"
	KeySnapshot  = "v1/snapshot"
	eventsPrefix = "v1/events/"
	// SetAsidePrefix starts the keys of the events set aside at load.
	SetAsidePrefix = "v1/set-aside/"
)

// SetAsideKey is the key an event set aside at load is kept under.
func SetAsideKey(seq uint64) string { return fmt.Sprintf("%s%020d", SetAsidePrefix, seq) }

// EventKey is the key of the event with sequence number seq.
func EventKey(seq uint64) string { return fmt.Sprintf("%s%020d", eventsPrefix, seq) }

// ErrNewerVersion is wrapped by the errors of Load for state written by a
// newer otelcol-dora, in a layout or codec version this build cannot read.
var ErrNewerVersion = errors.New("the storage holds state of a newer version")

// getBatch is how many keys Load reads per Batch.
const getBatch = 512

// Store reads and writes the receiver's state through a storage client. Call
// Load once before anything else. It is safe for concurrent use.
type Store struct {
	client storage.Client

	mu     sync.Mutex
	loaded bool
	// seq is the last event appended; snapSeq the last the snapshot covers.
	seq, snapSeq uint64
	// formatSaved is set once the format key holds FormatVersion.
	formatSaved bool
	// fresh is set when Load found nothing saved: a first start.
	fresh bool

	// k8s is what was last saved of each tracker, by its meta key.
	k8s map[string]*k8sIndex
}

// New returns a Store on client. It does not take ownership of the client:
// the caller closes it.
func New(client storage.Client) *Store {
	return &Store{client: client, k8s: map[string]*k8sIndex{}}
}

type formatJSON struct {
	Version int `json:"version"`
}

type snapshotJSON struct {
	Version int    `json:"version"`
	Seq     uint64 `json:"seq"`
	// Commits is how many commits follow the JSON (version 2).
	Commits int          `json:"commits,omitempty"`
	State   engine.State `json:"state"`
}

// snapshotVersion is the codec version of v1/snapshot; the engine state in
// it has its own (engine.StateVersion). Version 1 was all JSON; version 2
// moves the commits out of the JSON into a binary form after it.
const snapshotVersion = 2

// encodeSnapshot writes st after the events up to seq.
func encodeSnapshot(st engine.State, seq uint64) ([]byte, error) {
	commits := st.Commits
	st.Commits = nil
	head, err := json.Marshal(snapshotJSON{Version: snapshotVersion, Seq: seq, Commits: len(commits), State: st})
	if err != nil {
		return nil, err
	}
	// About 40 bytes per commit with short revisions.
	b := make([]byte, 0, len(head)+1+len(commits)*48)
	b = append(append(b, head...), '\n')
	return appendCommits(b, commits), nil
}

// decodeSnapshot reads a snapshot of version 1 or 2.
func decodeSnapshot(b []byte) (snapshotJSON, error) {
	var sj snapshotJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&sj); err != nil {
		return sj, err
	}
	if err := checkVersion(KeySnapshot, sj.Version, snapshotVersion); err != nil {
		return sj, err
	}
	rest := bytes.TrimPrefix(b[dec.InputOffset():], []byte("\n"))
	if sj.Version == 1 {
		if len(bytes.TrimSpace(rest)) > 0 {
			return sj, errors.New("data after the JSON of a version 1 snapshot")
		}
		return sj, nil
	}
	if len(sj.State.Commits) > 0 {
		return sj, errors.New("commits in the JSON of a version 2 snapshot")
	}
	commits, err := decodeCommits(rest, sj.Commits)
	if err != nil {
		return sj, fmt.Errorf("commits: %w", err)
	}
	sj.State.Commits = commits
	return sj, nil
}

// checkVersion fails for a value version this build cannot read.
func checkVersion(what string, v, known int) error {
	switch {
	case v > known:
		return fmt.Errorf("%w: %s is version %d, this build reads up to %d; run the newer otelcol-dora, or delete the storage to start counting from zero",
			ErrNewerVersion, what, v, known)
	case v < 1:
		return fmt.Errorf("%s has no version", what)
	}
	return nil
}

// Load reads the saved state: the last snapshot of the engine (nil when
// none was taken) and the events logged after it, oldest first, to apply
// in order; lastSeq is the sequence number of the last one.
func (s *Store) Load(ctx context.Context) (snapshot *engine.State, events []event.Event, lastSeq uint64, err error) {
	snapshot, logged, lastSeq, _, err := s.LoadChecked(ctx, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	events = make([]event.Event, len(logged))
	for i, l := range logged {
		events[i] = l.Event
	}
	return snapshot, events, lastSeq, nil
}

// Logged is an event of the log and its sequence number.
type Logged struct {
	Seq   uint64
	Event event.Event
}

// SetAside is an event of the log that load or replay could not use: it
// is kept under Key for inspection, out of the replay.
type SetAside struct {
	Seq uint64
	Key string
	Err error
}

// setAsideJSON is the value of a set-aside key.
type setAsideJSON struct {
	Version int    `json:"version"`
	Error   string `json:"error"`
	Value   string `json:"value"`
}

// LoadChecked is Load that does not fail for a logged event it cannot use:
// one that does not decode (other than a newer version, which fails as in
// Load: a newer build can use it), or that check refuses, is copied under
// SetAsideKey with the reason, left out of events and listed in setAside.
// One bad event must not keep the receiver from starting. The events
// stay in the log until the next snapshot removes them with the others.
func (s *Store) LoadChecked(ctx context.Context, check func(event.Event) error) (snapshot *engine.State, events []Logged, lastSeq uint64, setAside []SetAside, err error) {
	snapshot, events, lastSeq, raw, err := s.load(ctx, check)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	for seq, reason := range raw {
		if err := s.putSetAside(ctx, seq, reason.value, reason.err); err != nil {
			return nil, nil, 0, nil, err
		}
		setAside = append(setAside, SetAside{Seq: seq, Key: SetAsideKey(seq), Err: reason.err})
	}
	slices.SortFunc(setAside, func(a, b SetAside) int { return cmp.Compare(a.Seq, b.Seq) })
	return snapshot, events, lastSeq, setAside, nil
}

// SetAsideLogged copies the logged event seq under SetAsideKey with err,
// for an event that failed when it was replayed.
func (s *Store) SetAsideLogged(ctx context.Context, seq uint64, reason error) (SetAside, error) {
	value, err := s.client.Get(ctx, EventKey(seq))
	if err != nil {
		return SetAside{}, fmt.Errorf("reading %s: %w", EventKey(seq), err)
	}
	if err := s.putSetAside(ctx, seq, value, reason); err != nil {
		return SetAside{}, err
	}
	return SetAside{Seq: seq, Key: SetAsideKey(seq), Err: reason}, nil
}

func (s *Store) putSetAside(ctx context.Context, seq uint64, value []byte, reason error) error {
	b, err := json.Marshal(setAsideJSON{Version: 1, Error: reason.Error(), Value: string(value)})
	if err != nil {
		return err
	}
	if err := s.client.Set(ctx, SetAsideKey(seq), b); err != nil {
		return fmt.Errorf("setting aside %s: %w", EventKey(seq), err)
	}
	return nil
}

type rejected struct {
	value []byte
	err   error
}

func (s *Store) load(ctx context.Context, check func(event.Event) error) (snapshot *engine.State, events []Logged, lastSeq uint64, bad map[uint64]rejected, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	format, err := s.client.Get(ctx, KeyFormat)
	if err != nil {
		return nil, nil, 0, nil, fmt.Errorf("reading %s: %w", KeyFormat, err)
	}
	if format != nil {
		var f formatJSON
		if err := json.Unmarshal(format, &f); err != nil {
			return nil, nil, 0, nil, fmt.Errorf("reading %s: %w", KeyFormat, err)
		}
		if err := checkVersion("the storage layout", f.Version, FormatVersion); err != nil {
			return nil, nil, 0, nil, err
		}
		s.formatSaved = f.Version == FormatVersion
	}
	// Everything written here writes the format key first (formatOp).
	s.fresh = format == nil

	seqOp, snapOp := storage.GetOperation(KeySeq), storage.GetOperation(KeySnapshot)
	if err := s.client.Batch(ctx, seqOp, snapOp); err != nil {
		return nil, nil, 0, nil, fmt.Errorf("reading the event log: %w", err)
	}
	var seq, snapSeq uint64
	if seqOp.Value != nil {
		if seq, err = strconv.ParseUint(string(seqOp.Value), 10, 64); err != nil {
			return nil, nil, 0, nil, fmt.Errorf("reading %s: %w", KeySeq, err)
		}
	}
	if snapOp.Value != nil {
		sj, err := decodeSnapshot(snapOp.Value)
		if errors.Is(err, ErrNewerVersion) {
			return nil, nil, 0, nil, err
		}
		if err != nil {
			return nil, nil, 0, nil, fmt.Errorf("reading %s: %w", KeySnapshot, err)
		}
		if err := checkVersion("the engine state in "+KeySnapshot, sj.State.Version, engine.StateVersion); err != nil {
			return nil, nil, 0, nil, err
		}
		snapshot, snapSeq = &sj.State, sj.Seq
	}
	if snapSeq > seq {
		return nil, nil, 0, nil, fmt.Errorf("%s covers event %d, after the last one logged (%s = %d)", KeySnapshot, snapSeq, KeySeq, seq)
	}

	for from := snapSeq + 1; from <= seq; from += getBatch {
		to := min(seq, from+getBatch-1)
		ops := make([]*storage.Operation, 0, to-from+1)
		for q := from; q <= to; q++ {
			ops = append(ops, storage.GetOperation(EventKey(q)))
		}
		if err := s.client.Batch(ctx, ops...); err != nil {
			return nil, nil, 0, nil, fmt.Errorf("reading the event log: %w", err)
		}
		for k, op := range ops {
			q := from + uint64(k)
			if op.Value == nil {
				return nil, nil, 0, nil, fmt.Errorf("the event log lacks %s (the log runs from %d to %d)", op.Key, snapSeq+1, seq)
			}
			ev, err := decodeEvent(op.Value)
			if errors.Is(err, ErrNewerVersion) || (err != nil && check == nil) {
				return nil, nil, 0, nil, fmt.Errorf("reading %s: %w", op.Key, err)
			}
			if err == nil && check != nil {
				err = check(ev)
			}
			if err != nil {
				if bad == nil {
					bad = map[uint64]rejected{}
				}
				bad[q] = rejected{value: op.Value, err: err}
				continue
			}
			events = append(events, Logged{Seq: q, Event: ev})
		}
	}
	s.seq, s.snapSeq, s.loaded = seq, snapSeq, true
	return snapshot, events, seq, bad, nil
}

// formatOp returns the operation that records the layout version, the
// first time something is written.
func (s *Store) formatOp() []*storage.Operation {
	if s.formatSaved {
		return nil
	}
	b, _ := json.Marshal(formatJSON{Version: FormatVersion})
	return []*storage.Operation{storage.SetOperation(KeyFormat, b)}
}

// Append logs events after the last one, in one Batch with the new last
// sequence number: when it returns nil they are all durable (as durable as
// the storage extension makes them), otherwise none is logged. It returns
// the sequence number of the last event.
func (s *Store) Append(ctx context.Context, events []event.Event) (uint64, error) {
	return s.AppendWith(ctx, events, nil)
}

// HistoryKey is the key of the history import's progress of one source.
func HistoryKey(source string) string { return "v1/history/" + source }

// AppendWith is Append that also sets the keys of values in the same
// Batch: the history import saves a source's progress with the events of
// the batch it read, so that a crash keeps both or neither.
func (s *Store) AppendWith(ctx context.Context, events []event.Event, values map[string][]byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		return 0, errors.New("persist: Append before Load")
	}
	if len(events) == 0 && len(values) == 0 {
		return s.seq, nil
	}
	ops := s.formatOp()
	for _, k := range slices.Sorted(maps.Keys(values)) {
		ops = append(ops, storage.SetOperation(k, values[k]))
	}
	seq := s.seq
	for _, ev := range events {
		b, err := encodeEvent(ev)
		if err != nil {
			return 0, err
		}
		seq++
		ops = append(ops, storage.SetOperation(EventKey(seq), b))
	}
	ops = append(ops, storage.SetOperation(KeySeq, []byte(strconv.FormatUint(seq, 10))))
	if err := s.client.Batch(ctx, ops...); err != nil {
		return 0, err
	}
	s.seq, s.formatSaved = seq, true
	return seq, nil
}

// Snapshot saves st, the engine's state after the events up to seq, and
// deletes the logged events it covers, in one Batch. It returns the size of
// the snapshot in bytes.
func (s *Store) Snapshot(ctx context.Context, st engine.State, seq uint64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		return 0, errors.New("persist: Snapshot before Load")
	}
	if seq > s.seq || seq < s.snapSeq {
		return 0, fmt.Errorf("persist: snapshot at event %d, outside the log (%d to %d)", seq, s.snapSeq, s.seq)
	}
	b, err := encodeSnapshot(st, seq)
	if err != nil {
		return 0, fmt.Errorf("encoding the engine state: %w", err)
	}
	ops := append(s.formatOp(), storage.SetOperation(KeySnapshot, b))
	for q := s.snapSeq + 1; q <= seq; q++ {
		ops = append(ops, storage.DeleteOperation(EventKey(q)))
	}
	if err := s.client.Batch(ctx, ops...); err != nil {
		return 0, err
	}
	s.snapSeq, s.formatSaved = seq, true
	return len(b), nil
}

// Fresh reports whether Load found nothing saved: the receiver's first
// start on this storage (the history import runs then).
func (s *Store) Fresh() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fresh
}

// Get reads one key (nil when absent): the history import's progress.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	return s.client.Get(ctx, key)
}

// Seq returns the sequence number of the last event appended and of the
// last one the snapshot covers.
func (s *Store) Seq() (last, snapshot uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq, s.snapSeq
}
