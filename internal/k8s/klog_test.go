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
	t.Cleanup(klog.ClearLogger)

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
