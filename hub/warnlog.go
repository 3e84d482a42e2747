package hub

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// warnPerSecond is how many lines with the same message a rate-limited
// logger writes in a second; the rest of that second's are dropped.
const warnPerSecond = 10

// RateLimited returns l writing at most warnPerSecond lines per message
// (and level) each second, so that a flood of one kind of warning (slow
// clients, refused publishes, dropped items) cannot fill the disk.
func RateLimited(l *zap.Logger) *zap.Logger {
	if l == nil {
		return nil
	}
	return l.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, warnPerSecond, 0)
	}))
}
