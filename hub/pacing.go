package hub

import "time"

// Wake pacing. Each wake-up of a holder costs a goroutine switch and a
// socket write, whether it carries one message or fifty. A channel
// published to faster than its holders can be woken one message at a time
// would spend its CPU on those writes (and starve the publisher), so a
// channel woken less than Config.WakeInterval ago only queues new
// deliveries, and one timer per channel wakes every subscriber with queued
// deliveries when the interval is up. A publish after a quieter spell wakes
// them at once, so a channel below 1/WakeInterval publishes per second
// sees no added latency.
//
// Only the Ready signal is deferred: queues, their limits, ordering,
// de-duplication and sequencing are as without pacing.

// pacer is a channel's wake-pacing state, guarded by the channel's mutex.
type pacer struct {
	lastWake time.Time   // when the channel last woke its subscribers
	timer    *time.Timer // runs channel.wakeHeld; one per channel
	armed    bool        // the timer is set: deliveries are held back
}

// wakeNowLocked says whether deliveries fanned out in batch b signal their
// subscribers now. If not, it makes sure the channel's timer will.
func (c *channel) wakeNowLocked(b *batch) bool {
	p := &c.pacer
	w := b.cfg.WakeInterval
	switch {
	case b.urgent || w <= 0:
		return true
	case p.armed:
		return false
	case p.lastWake.Equal(b.now):
		return true // a later item of the receive pass that woke them
	}
	next := p.lastWake.Add(w)
	if !b.now.Before(next) {
		p.lastWake = b.now
		return true
	}
	d := next.Sub(b.now)
	if p.timer == nil {
		p.timer = time.AfterFunc(d, c.wakeHeld)
	} else {
		p.timer.Reset(d)
	}
	p.armed = true
	return false
}

// wakeHeld runs on the timer: it wakes every subscriber with deliveries
// queued and starts a new interval.
func (c *channel) wakeHeld() {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || !c.pacer.armed {
		return
	}
	c.pacer.armed = false
	c.pacer.lastWake = now
	for k := range c.subs {
		for _, s := range c.subs[k] {
			s.wake()
		}
	}
}

// stop drops a pending wake, for a channel that lost its last subscriber.
func (p *pacer) stop() {
	if p.armed {
		p.timer.Stop()
		p.armed = false
	}
}
