package caddygrip

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Memory settling after a connect burst. A burst of new holds leaves the
// garbage of its handshakes and the goroutine stacks grown while
// connecting; once the clients are held and idle nothing allocates, so the
// Go runtime keeps all of it until its forced collection two minutes
// later. After settleMinHolds new holds followed by settleQuiet without a
// new one, settleMemory collects that garbage, lets the idle stacks shrink
// and returns the free pages to the OS, at most once every settleEvery. Steady traffic never goes quiet, so it never pays for
// one: its allocations keep the collector running as usual.
const (
	settleMinHolds = 1000
	settleQuiet    = 250 * time.Millisecond
	settleEvery    = 30 * time.Second
)

// burstSettler counts the holds started on this node and settles memory
// once a burst of them is over.
type burstSettler struct {
	free func() // settleMemory; tests count calls instead

	mu      sync.Mutex
	since   int       // holds started since the last settle
	last    time.Time // the latest hold start
	armed   bool      // a check is scheduled
	settled time.Time // the latest settle; zero before the first
	logger  *zap.Logger
}

// settler is the node's: every grip handler's holds count towards it.
var settler = &burstSettler{free: settleMemory}

// settleMemory collects twice: what sits in sync.Pools (net/http's
// connection buffers among it) survives one collection in the pools'
// victim caches and goes with the second, which also returns the free
// pages to the OS.
func settleMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// started counts one new hold; logger logs the settle it may lead to.
func (b *burstSettler) started(logger *zap.Logger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.since++
	b.last = time.Now()
	if !b.armed && b.since >= settleMinHolds {
		b.armed, b.logger = true, logger
		time.AfterFunc(settleQuiet, b.check)
	}
}

// check settles once the holds have been quiet for settleQuiet and the
// last settle is settleEvery old, and otherwise looks again when either
// can next be true.
func (b *burstSettler) check() {
	b.mu.Lock()
	now := time.Now()
	wait := settleQuiet - now.Sub(b.last)
	if !b.settled.IsZero() {
		wait = max(wait, settleEvery-now.Sub(b.settled))
	}
	if wait > 0 {
		time.AfterFunc(wait, b.check)
		b.mu.Unlock()
		return
	}
	holds, logger := b.since, b.logger
	b.since, b.armed, b.settled, b.logger = 0, false, now, nil
	b.mu.Unlock()
	b.free()
	if logger == nil {
		return
	}
	if ce := logger.Check(zap.DebugLevel, "memory settled after a burst of held connections"); ce != nil {
		ce.Write(zap.Int("holds", holds), zap.Duration("took", time.Since(now)))
	}
}
