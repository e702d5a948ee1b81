package dorareceiver

import (
	"context"
	"errors"

	"github.com/otelcol-dora/dorareceiver/internal/apiclient"
	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/gitlab"
)

// GitLab's push hook lists the newest 20 commits of a push; the GitLab
// source's push completer fetches the others after the delivery is
// answered, and applies them through the ingest core as a delivery's
// events (internal/gitlab/pushcomplete.go). Without a token it logs once
// and completes nothing.

// startPushCompletion gives the GitLab provider its push completer.
func (r *doraReceiver) startPushCompletion(p *gitlab.Provider, cfg gitlab.Config) {
	// The polite client (rate limits, retries; internal/apiclient); the
	// completer bounds each push's time itself.
	client := apiclient.New(apiclient.Options{Name: "gitlab push completion"})
	c := gitlab.NewPushCompleter(cfg, client, func(ctx context.Context, events []event.Event) error {
		_, err := r.ingest(ctx, event.SourceGitLab, events)
		return err
	}, r.logger)
	p.CompletePushesWith(c)
	c.Start()
	r.pushCompleters = append(r.pushCompleters, c)
}

// stopPushCompletion stops the completers, once no delivery can queue a
// push any more (the server is shut down).
func (r *doraReceiver) stopPushCompletion(ctx context.Context) error {
	var errs []error
	for _, c := range r.pushCompleters {
		errs = append(errs, c.Stop(ctx))
	}
	r.pushCompleters = nil
	return errors.Join(errs...)
}
