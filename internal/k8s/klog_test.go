package k8s

import (
	"errors"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"k8s.io/klog/v2"
)

func TestRouteKlog(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	RouteKlog(zap.New(core))
	t.Cleanup(func() { RouteKlog(zap.NewNop()) })

	klog.InfoS("Watch close", "reflector", "deployments", "total", 3)
	klog.ErrorS(errors.New("connection refused"), "Failed to watch", "resource", "deployments")
	klog.V(4).InfoS("detail that Info level does not show")
	klog.Flush()
	// logr callers (client-go's contextual logging) reach the sink directly.
	logr.New(&zapSink{logger: zap.New(core).Named("client-go")}).WithName("leaderelection").WithValues("lease", "default/otelcol-dora").Info("became leader", "odd")

	entries := logs.AllUntimed()
	require.Len(t, entries, 3, "%v", entries)
	assert.Equal(t, "Watch close", entries[0].Message)
	assert.Equal(t, zapcore.InfoLevel, entries[0].Level)
	assert.Equal(t, "client-go", entries[0].LoggerName)
	assert.Equal(t, map[string]any{"reflector": "deployments", "total": int64(3)}, entries[0].ContextMap())
	assert.Equal(t, zapcore.ErrorLevel, entries[1].Level)
	assert.Equal(t, "connection refused", entries[1].ContextMap()["error"])
	assert.Equal(t, "client-go.leaderelection", entries[2].LoggerName)
	assert.Equal(t, map[string]any{"lease": "default/otelcol-dora", "missing_value_for": "odd"}, entries[2].ContextMap())
}

// TestRouteKlogFollowsTheLastReceiver: klog's logger is set once; a later
// RouteKlog changes where its output goes without setting it again (which
// races with an earlier receiver's informer goroutines reading it).
func TestRouteKlogFollowsTheLastReceiver(t *testing.T) {
	first, firstLogs := observer.New(zapcore.InfoLevel)
	second, secondLogs := observer.New(zapcore.InfoLevel)
	RouteKlog(zap.New(first))
	t.Cleanup(func() { RouteKlog(zap.NewNop()) })
	klog.InfoS("to the first")
	RouteKlog(zap.New(second))
	klog.InfoS("to the second")
	klog.Flush()
	require.Equal(t, 1, firstLogs.Len())
	require.Equal(t, 1, secondLogs.Len())
	assert.Equal(t, "to the second", secondLogs.All()[0].Message)
}
