package caddygrip

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-grip/grip/hub"
)

// holdTrack follows one held connection from its first subscription to its
// end: it counts the hold in the hub's metrics, and logs its start (debug)
// and its end with what it sent and why it ended. Only the goroutine
// holding the connection touches it; a nil holdTrack (no hold) ignores
// every call.
type holdTrack struct {
	h        *hub.Hub
	logger   *zap.Logger
	warn     *zap.Logger // rate-limited, for slow-consumer cuts
	kind     hub.Kind
	who      requestInfo
	start    time.Time
	channels int   // the most channels subscribed at once
	messages int   // messages (published items, WebSocket messages) sent
	bytes    int64 // bytes sent to the client, held or published
	reason   hub.DisconnectReason
	cause    error // what went wrong, for the log line; nil if nothing
	decided  bool  // reason is set
	ended    bool
}

// startHold counts a new hold of kind and logs its start.
func (g *Grip) startHold(kind hub.Kind, who requestInfo, channels int) *holdTrack {
	t := &holdTrack{h: g.ref.hub, logger: g.logger, warn: g.warnLog, kind: kind, who: who, start: time.Now(), channels: channels}
	t.h.HoldStarted(kind)
	settler.started(g.logger)
	if ce := t.logger.Check(zap.DebugLevel, "hold started"); ce != nil {
		ce.Write(append(who.fields(), zap.Stringer("transport", kind), zap.Int("channels", channels))...)
	}
	return t
}

// subscribed notes that the hold is now on n channels.
func (t *holdTrack) subscribed(n int) {
	if t != nil && n > t.channels {
		t.channels = n
	}
}

// sent counts messages and bytes written to the client.
func (t *holdTrack) sent(messages, bytes int) {
	if t != nil {
		t.messages += messages
		t.bytes += int64(bytes)
	}
}

// because records why the hold ends, with the error behind it if any. The
// first reason given wins: whatever ended the hold comes first, and the
// steps that follow (closing handshakes, a queue discarded by the hub)
// would otherwise overwrite it.
func (t *holdTrack) because(r hub.DisconnectReason, cause error) {
	if t == nil || t.decided {
		return
	}
	t.reason, t.cause, t.decided = r, cause, true
}

// end counts the hold's end and logs it, once; without a reason given, the
// client is taken to have left. Long-polls log at debug, since each ends at
// every publish or timeout and the access log already times them right;
// streams and WebSockets log at info, since the access log shows them
// finished long before they are.
func (t *holdTrack) end() {
	if t == nil || t.ended {
		return
	}
	t.ended = true
	t.because(hub.DisconnectClient, nil)
	t.h.HoldEnded(t.kind, t.reason)
	// A client cut off as slow is a warning, rate-limited so that a flood
	// of them cannot fill the disk; other ends are routine.
	logger, level := t.logger, zapcore.InfoLevel
	switch {
	case t.reason == hub.DisconnectSlowConsumer:
		logger, level = t.warn, zapcore.WarnLevel
	case t.kind == hub.KindResponse:
		level = zapcore.DebugLevel
	}
	ce := logger.Check(level, "hold ended")
	if ce == nil {
		return
	}
	fields := append(t.who.fields(),
		zap.Stringer("transport", t.kind),
		zap.Int("channels", t.channels),
		zap.Duration("duration", time.Since(t.start)),
		zap.Int("messages", t.messages),
		zap.Int64("bytes", t.bytes),
		zap.Stringer("reason", t.reason),
	)
	if t.cause != nil {
		fields = append(fields, zap.Error(t.cause))
	}
	ce.Write(fields...)
}

// finish ends the hold for reason r, unless a reason was given before.
func (t *holdTrack) finish(r hub.DisconnectReason) {
	t.because(r, nil)
	t.end()
}
