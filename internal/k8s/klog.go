package k8s

import (
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

// RouteKlog sends what client-go logs through klog (reflector and watch
// errors, leader election) to logger, so that it is structured and
// leveled like the collector's own logs instead of klog's text on stderr.
// klog is process-wide: the last receiver to start takes its output.
// klog's logger is set once, to a sink that follows klogTarget: setting it
// again while an earlier receiver's informer goroutines may still read it
// is a data race (klog.SetLogger does not synchronize).
func RouteKlog(logger *zap.Logger) {
	klogTarget.Store(logger.Named("client-go").WithOptions(zap.AddCallerSkip(2)))
	klogOnce.Do(func() { klog.SetLogger(logr.New(&zapSink{})) })
}

var (
	klogOnce   sync.Once
	klogTarget atomic.Pointer[zap.Logger]
)

// zapSink is a logr.LogSink over zap. klog's verbosity 0 is Info; any
// higher verbosity (client-go's detail and tracing) is Debug. Without a
// logger of its own it writes to klogTarget.
type zapSink struct {
	logger *zap.Logger
}

func (s *zapSink) log() *zap.Logger {
	if s.logger != nil {
		return s.logger
	}
	return klogTarget.Load()
}

func (s *zapSink) Init(logr.RuntimeInfo) {}

func (s *zapSink) Enabled(level int) bool {
	return s.log().Core().Enabled(zapLevel(level))
}

func (s *zapSink) Info(level int, msg string, keysAndValues ...any) {
	if ce := s.log().Check(zapLevel(level), msg); ce != nil {
		ce.Write(fields(keysAndValues)...)
	}
}

func (s *zapSink) Error(err error, msg string, keysAndValues ...any) {
	if ce := s.log().Check(zapcore.ErrorLevel, msg); ce != nil {
		ce.Write(append(fields(keysAndValues), zap.Error(err))...)
	}
}

func (s *zapSink) WithValues(keysAndValues ...any) logr.LogSink {
	return &zapSink{logger: s.log().With(fields(keysAndValues)...)}
}

func (s *zapSink) WithName(name string) logr.LogSink {
	return &zapSink{logger: s.log().Named(name)}
}

func zapLevel(level int) zapcore.Level {
	if level > 0 {
		return zapcore.DebugLevel
	}
	return zapcore.InfoLevel
}

// fields turns logr's alternating keys and values into zap fields; a key
// that is not a string, or a last key without a value, is kept under a
// name that says so rather than dropped.
func fields(kv []any) []zap.Field {
	out := make([]zap.Field, 0, (len(kv)+1)/2)
	for i := 0; i < len(kv); i += 2 {
		key, ok := kv[i].(string)
		if !ok {
			key = "invalid_key"
		}
		if i+1 == len(kv) {
			out = append(out, zap.Any("missing_value_for", kv[i]))
			break
		}
		out = append(out, zap.Any(key, kv[i+1]))
	}
	return out
}
