package k8s

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// The receiver hears of the first failed request after a success, and of
// the first success after failures; retries in between, expired watches
// and cancellation are not news.
func TestRequestDoneReportsTransitions(t *testing.T) {
	var failures []error
	recoveries := 0
	s := New(&Config{}, fake.NewClientset(), zap.NewNop(), func(event.Event) error { return nil },
		WithWatchErrorHandler(func(err error) { failures = append(failures, err) }),
		WithWatchRecoveredHandler(func() { recoveries++ }))

	refused := errors.New("connect: connection refused")
	s.requestDone(nil)
	assert.Empty(t, failures)
	assert.Zero(t, recoveries, "healthy from the start: nothing to recover from")

	s.requestDone(refused)
	s.requestDone(refused)
	s.requestDone(apierrors.NewResourceExpired("The resourceVersion for the provided watch is too old."))
	//lint:ignore SA1019 the API server still answers 410 Gone this way; the source must not count it
	s.requestDone(apierrors.NewGone("gone"))
	s.requestDone(context.Canceled)
	assert.Equal(t, []error{refused}, failures)
	assert.Zero(t, recoveries)

	s.requestDone(nil)
	s.requestDone(nil)
	assert.Equal(t, 1, recoveries)

	s.requestDone(apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "", errors.New("RBAC")))
	assert.Len(t, failures, 2, "an API error other than expiry is a failure")
}

// observedWatch passes every event on, tells of error events, and its
// goroutine ends on Stop even while nobody reads.
func TestObservedWatch(t *testing.T) {
	inner := watch.NewFake()
	var errs []error
	w := newObservedWatch(inner, func(err error) { errs = append(errs, err) })
	sent := make(chan struct{})
	go func() {
		inner.Add(nil)
		inner.Error(&apierrors.NewResourceExpired("too old").ErrStatus)
		// Taken by the goroutine, which then waits for a reader that
		// never comes: Stop must still end it.
		inner.Add(nil)
		close(sent)
	}()
	ev := <-w.ResultChan()
	assert.Equal(t, watch.Added, ev.Type)
	ev = <-w.ResultChan()
	assert.Equal(t, watch.Error, ev.Type)
	if assert.Len(t, errs, 1) {
		assert.True(t, apierrors.IsResourceExpired(errs[0]), "%v", errs[0])
	}
	<-sent
	w.Stop()
	w.Stop()
	// The channel closes; at most the event held at Stop comes first.
	late := 0
	for range w.ResultChan() {
		late++
	}
	assert.LessOrEqual(t, late, 1)
}
