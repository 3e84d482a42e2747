package caddygrip

import (
	"math/rand/v2"
	"time"

	"github.com/caddy-grip/grip/instruct"
)

// keepAliveTimer sends a stream's keep-alive data after a jittered timeout,
// restarted by published sends in idle mode and free-running in interval
// mode, as in Pushpin.
type keepAliveTimer struct {
	ka *instruct.KeepAlive
	t  *time.Timer
}

func newKeepAliveTimer(ka *instruct.KeepAlive) *keepAliveTimer {
	k := &keepAliveTimer{ka: ka}
	if ka != nil {
		k.t = time.NewTimer(k.next())
	}
	return k
}

// next is the timeout less up to a second of jitter, so that many streams
// set up together do not all wake together.
func (k *keepAliveTimer) next() time.Duration {
	d := k.ka.Timeout - time.Duration(rand.Int64N(int64(time.Second)))
	if d < 100*time.Millisecond {
		d = 100 * time.Millisecond
	}
	return d
}

// c is the channel to select on; nil (never ready) without keep-alives.
func (k *keepAliveTimer) c() <-chan time.Time {
	if k.t == nil {
		return nil
	}
	return k.t.C
}

// sent restarts the timer after published content, in idle mode.
func (k *keepAliveTimer) sent() {
	if k.t != nil && k.ka.Mode == instruct.KeepAliveIdle {
		k.t.Reset(k.next())
	}
}

// fired re-arms the timer after a keep-alive went out.
func (k *keepAliveTimer) fired() {
	k.t.Reset(k.next())
}

func (k *keepAliveTimer) stop() {
	if k.t != nil {
		k.t.Stop()
	}
}
