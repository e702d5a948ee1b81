// Package history imports the delivery history that teams' systems
// already hold (Kubernetes ReplicaSets, Argo CD's Application history,
// GitHub, GitLab, PagerDuty), so the rolling values and levels are right
// on the first screen instead of after weeks of live events.
//
// Each system's importer lives in that system's source package (the
// GitHub importer in internal/github, ...), beside the live source, so
// imported events carry the same identities as live ones and are counted
// once when both arrive. This package holds what they share: the Source
// contract, the batches they hand on, and the errors that stop one
// source's import.
package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// Window is the span of history an import reads: events at or after From
// and before To.
type Window struct {
	From, To time.Time
}

// Contains reports whether t is inside the window.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.From) && t.Before(w.To) }

// Batch is a part of one source's history, handed on in the order the
// source reads it.
type Batch struct {
	// Events are the batch's events, with their original times and the
	// identities the live source gives the same facts (deployment ids,
	// revisions, incident ids; event ids derived from them, never from a
	// request).
	Events []event.Event
	// Cursor resumes the import after this batch: the source gets it back
	// after a restart once the batch has been applied. It is opaque to
	// everything but the source that wrote it (a page URL, a timestamp and
	// an id, a resource version).
	Cursor string
	// Done is how many items (deployments, incidents, ...) of this source
	// have been read so far, Total how many there are in the window (0 when
	// the source cannot tell), for the progress log and telemetry.
	Done, Total int
}

// Sink applies batches: durably, through the ingest core, before it saves
// the batch's cursor. An error means the batch was not applied (the
// receiver stops, loses its leadership or its storage); the source
// returns it.
type Sink interface {
	Apply(ctx context.Context, b Batch) error
}

// Source is one system that holds history.
type Source interface {
	// Name is the source's name in logs, telemetry and saved progress: the
	// event source name (event.SourceGitHub, ...).
	Name() string
	// Import reads the window's history, starting after cursor (the
	// Cursor of the last batch applied by an earlier run, "" at first),
	// and hands it to sink in batches. It returns nil when the window is
	// read, ctx's error when canceled, a *SettingError when a setting must
	// be fixed first, or another error when the system kept failing.
	Import(ctx context.Context, w Window, cursor string, sink Sink) error
}

// SettingError stops one source's import because the system refused what
// a setting says (401: the token; 404: the repository, project or
// service): it names the setting to fix.
type SettingError struct {
	// Setting is the configuration key, as a user writes it
	// (webhooks::github::history::token).
	Setting string
	Err     error
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("history import stopped: fix %s: %v", e.Setting, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }

// ErrBudgetSpent stops a source's import when it has made as many
// requests as its request budget allows; the import resumes from its
// cursor on the next run.
var ErrBudgetSpent = errors.New("history import request budget spent")
