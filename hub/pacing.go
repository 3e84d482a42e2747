package hub

import (
	"sync/atomic"
	"time"
)

// Wake pacing. Each wake-up of a holder costs a goroutine switch and a
// socket write, whether it carries one message or fifty, and a wake of
// every subscriber of a wide channel keeps the CPU busy long enough that
// the next publish request is read only once it is over. Woken once per
// publish, such a channel spends its time on one-message writes while the
// publisher waits. So a channel wakes its subscribers in rounds:
//
//   - A publish wakes them at once if the last round is over (nearly every
//     woken holder has taken its queue, or none has for WakeInterval: the
//     rest are stuck) and ended WakeInterval ago or more,
//     or if the last round began maxRoundIntervals × WakeInterval ago (so a
//     stuck holder cannot hold a channel back for long), or if the channel
//     is too wide to pace (see pacer.due).
//   - Otherwise the publish only queues, and one timer per channel starts
//     the next round when that condition holds; meanwhile the publisher has
//     the CPU, and every holder takes the whole run in one write.
//
// A channel published to less often than a round takes plus WakeInterval
// sees no added latency. Only the Ready signal is deferred: queues, their
// limits, ordering, de-duplication and sequencing are as without pacing.

// maxRoundIntervals bounds, in WakeIntervals, how long an unfinished round
// defers the next one, and how long a round may last for the channel to be
// paced. A round of 10,000 holders takes 100–200 ms on one core: the bound
// must stay above that, or the widest channels, which gain most, go unpaced.
const maxRoundIntervals = 40

// stragglers is the share (1/stragglers) of a round's holders that may
// still be writing when the round counts as over: one slow client must not
// set the pace of the others.
const stragglers = 64

// A round also counts as over once WakeInterval has passed with no holder
// taking its queue: the holders still counted are stuck (mid-write to a
// client that does not read) or late, not busy with the round, and they
// take what is queued for them when they come back. The round ended at its
// last take, so a stuck holder delays the others by at most WakeInterval.

// pacer is a channel's wake-pacing state, guarded by the channel's mutex.
type pacer struct {
	lastWake time.Time   // when the last round began
	round    *wakeRound  // the last round; nil before the first
	timer    *time.Timer // runs channel.wakeHeld; one per channel
	armed    bool        // the timer is set: deliveries are held back
	wide     bool        // the last round was too long to pace (see due)
}

// running reports whether the last round is still in progress at now.
func (p *pacer) running(now time.Time, w time.Duration) bool {
	if p.round == nil {
		return false
	}
	_, over, _ := p.round.over(now, w)
	return !over
}

// wakeRound counts the holders one wake signalled that have not yet taken
// their queue, and notes when (nearly) all of them have.
type wakeRound struct {
	start     time.Time
	left      atomic.Int64 // tokens sent and not yet taken, plus 1 until sealed
	threshold atomic.Int64 // left at or below which the round is over; -1 until sealed
	doneAt    atomic.Int64 // 1 + nanoseconds from start to the end; 0 while running
	lastTake  atomic.Int64 // 1 + nanoseconds from start to the seal or latest take; 0 until sealed
}

func newWakeRound(now time.Time) *wakeRound {
	r := &wakeRound{start: now}
	r.left.Store(1) // held by the channel until seal
	r.threshold.Store(-1)
	return r
}

// seal fixes the round's size once every subscriber was offered a token.
func (r *wakeRound) seal() {
	if r == nil {
		return
	}
	r.threshold.Store((r.left.Load() - 1) / stragglers)
	r.lastTake.Store(int64(time.Since(r.start)) + 1)
	r.taken()
}

// taken counts one token as taken (a holder emptied its queue, or ended).
func (r *wakeRound) taken() {
	if r == nil {
		return
	}
	if r.doneAt.Load() != 0 {
		return
	}
	at := int64(time.Since(r.start)) + 1
	if r.left.Add(-1) <= r.threshold.Load() {
		r.doneAt.CompareAndSwap(0, at)
		return
	}
	for last := r.lastTake.Load(); last != 0 && last < at; last = r.lastTake.Load() {
		if r.lastTake.CompareAndSwap(last, at) {
			break
		}
	}
}

// over reports whether the round is over at now, and when it ended; idle
// is how long without a take makes the holders still counted stuck. When
// not over, next is when it will be unless a holder takes meanwhile.
func (r *wakeRound) over(now time.Time, idle time.Duration) (end time.Time, ok bool, next time.Time) {
	if d := r.doneAt.Load(); d != 0 {
		return r.start.Add(time.Duration(d - 1)), true, time.Time{}
	}
	last := r.lastTake.Load()
	if last == 0 || idle <= 0 {
		return time.Time{}, false, now.Add(idle) // not sealed yet
	}
	end = r.start.Add(time.Duration(last - 1))
	if next = end.Add(idle); now.Before(next) {
		return time.Time{}, false, next
	}
	r.doneAt.CompareAndSwap(0, last)
	return end, true, time.Time{}
}

// due says when the next round may begin, given it is now: ok if now;
// otherwise at is when to look again. It also notes whether the channel is
// too wide to pace: when a round lasts maxRoundIntervals × WakeInterval or
// more, waiting for its end would only idle the publisher's share of the
// CPU, so publishes wake at once, as without pacing, until a round is short
// again.
func (p *pacer) due(now time.Time, w time.Duration) (at time.Time, ok bool) {
	if p.round == nil {
		return now, true
	}
	span := maxRoundIntervals * w
	end, over, next := p.round.over(now, w)
	if !over {
		if p.wide || now.Sub(p.lastWake) >= span {
			p.wide = true
			return now, true
		}
		return minTime(next, p.lastWake.Add(span)), false // look again then
	}
	if p.wide = end.Sub(p.round.start) >= span; p.wide {
		return now, true
	}
	at = end.Add(w)
	if next := p.lastWake.Add(w); next.After(at) {
		at = next
	}
	return at, !now.Before(at)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// wakeNowLocked says whether deliveries fanned out in batch b signal their
// subscribers now and, for a new round, returns it (to seal once fanned
// out). If not, it makes sure the channel's timer will wake them.
func (c *channel) wakeNowLocked(b *batch) (bool, *wakeRound) {
	p := &c.pacer
	w := b.cfg.WakeInterval
	switch {
	case b.urgent || w <= 0:
		return true, nil
	case p.armed:
		return false, nil
	case b.woke == c:
		return true, nil // a later item of the receive pass that began the round
	}
	at, ok := p.due(b.now, w)
	if ok && p.running(b.now, w) {
		return true, nil // a wide channel: wake, and let the round in progress be measured
	}
	if ok {
		b.woke = c
		p.lastWake = b.now
		p.round = newWakeRound(b.now)
		return true, p.round
	}
	p.armLocked(c, at.Sub(b.now))
	return false, nil
}

func (p *pacer) armLocked(c *channel, d time.Duration) {
	if p.timer == nil {
		p.timer = time.AfterFunc(d, c.wakeHeld)
	} else {
		p.timer.Reset(d)
	}
	p.armed = true
}

// wakeHeld runs on the timer: when the next round is due it wakes every
// subscriber with deliveries queued; otherwise it looks again later.
func (c *channel) wakeHeld() {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &c.pacer
	if c.dead || !p.armed {
		return
	}
	w := c.h.config().WakeInterval
	if w > 0 {
		if at, ok := p.due(now, w); !ok {
			p.timer.Reset(at.Sub(now))
			return
		}
	}
	p.armed = false
	var r *wakeRound
	if !p.running(now, w) {
		p.lastWake = now
		r = newWakeRound(now)
		p.round = r
	}
	for k := range c.subs {
		for _, s := range c.subs[k] {
			s.wake(r)
		}
	}
	r.seal()
}

// stop drops a pending wake, for a channel that lost its last subscriber.
func (p *pacer) stop() {
	if p.armed {
		p.timer.Stop()
		p.armed = false
	}
}
