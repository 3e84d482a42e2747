package hub

import (
	"cmp"
	"slices"
	"time"

	"github.com/caddy-grip/grip/formats"
	"go.uber.org/zap"
)

// sequencer is a channel's id/prev-id state (Pushpin's Sequencer and
// PublishLastIds, per channel). It lives in the channel and is guarded by
// the channel's mutex; it exists only while the channel has subscribers, so
// the last id is forgotten when the last one leaves.
type sequencer struct {
	lastID    string
	lastKnown bool
	// pending holds out-of-order items by the prev-id they wait for.
	pending map[string]*heldItem
	bytes   int    // Item.Cost of the pending items
	arrival uint64 // arrival counter, to release expired items in order

	timer   *time.Timer
	timerAt time.Time // deadline the timer is set for, when armed
	armed   bool
}

type heldItem struct {
	item     *formats.Item
	deadline time.Time
	arrival  uint64
}

// receiveLocked runs one de-duplicated item through the sequencer and, when
// it is in order, fans it out.
func (c *channel) receiveLocked(b *batch, it *formats.Item) {
	if c.countLocked() == 0 {
		// Nobody here: nothing to deliver, and (as in Pushpin) nothing to
		// sequence, so no last id is set; the history keeps it.
		c.h.appendHistory(&b.cfg.History, c.hash, it)
		return
	}
	if it.NoSeq {
		c.h.appendHistory(&b.cfg.History, c.hash, it)
		c.fanoutLocked(b, it)
		return
	}
	q := &c.seq
	if q.lastKnown && it.PrevID != "" && it.PrevID != q.lastID {
		c.holdLocked(b, it)
		return
	}
	c.sendLocked(b, it)
}

// holdLocked keeps an out-of-order item until its predecessor is delivered
// or MessageWait passes.
func (c *channel) holdLocked(b *batch, it *formats.Item) {
	q := &c.seq
	cost := it.Cost()
	if _, dup := q.pending[it.PrevID]; dup || len(q.pending) >= b.cfg.SequencerMax || q.bytes+cost > b.cfg.SequencerBytes {
		// Pushpin drops a second item waiting on the same prev-id, and any
		// item past the per-channel limits.
		b.h.sequencerDropped.Add(1)
		b.h.counts.drops[DropSequencerOverflow].Add(1)
		if l := b.h.warner(); l != nil {
			l.Warn("item dropped", zap.Stringer("reason", DropSequencerOverflow), zap.String("channel", c.name),
				zap.String("id", it.ID), zap.String("prev_id", it.PrevID), zap.Int("held", len(q.pending)))
		}
		return
	}
	q.bytes += cost
	b.h.seqHeld.Add(1)
	b.h.seqBytes.Add(int64(cost))
	if q.pending == nil {
		q.pending = make(map[string]*heldItem)
	}
	q.arrival++
	hi := &heldItem{item: it, deadline: b.now.Add(b.cfg.MessageWait), arrival: q.arrival}
	q.pending[it.PrevID] = hi
	c.armLocked(hi.deadline, b.now)
}

// sendLocked delivers it, records its id as the channel's last id, and then
// releases the chain of held items that follow it.
func (c *channel) sendLocked(b *batch, it *formats.Item) {
	q := &c.seq
	q.setLast(it)
	c.h.appendHistory(&b.cfg.History, c.hash, it)
	c.fanoutLocked(b, it)
	for id := it.ID; id != "" && len(q.pending) > 0; {
		hi := q.pending[id]
		if hi == nil {
			break
		}
		q.release(b.h, hi)
		b.h.reordered.Add(1)
		q.setLast(hi.item)
		c.h.appendHistory(&b.cfg.History, c.hash, hi.item)
		c.fanoutLocked(b, hi.item)
		id = hi.item.ID
	}
	if len(q.pending) == 0 {
		q.stopTimer()
	}
}

// release drops hi from the held items and their byte count.
func (q *sequencer) release(h *Hub, hi *heldItem) {
	delete(q.pending, hi.item.PrevID)
	cost := hi.item.Cost()
	q.bytes -= cost
	h.seqHeld.Add(-1)
	h.seqBytes.Add(-int64(cost))
}

// setLast records the id of the item just delivered; an item without one
// makes the last id unknown.
func (q *sequencer) setLast(it *formats.Item) {
	q.lastID, q.lastKnown = it.ID, it.ID != ""
}

// armLocked makes sure the timer fires no later than deadline.
func (c *channel) armLocked(deadline, now time.Time) {
	q := &c.seq
	if q.armed && !deadline.Before(q.timerAt) {
		return
	}
	d := deadline.Sub(now)
	if q.timer == nil {
		q.timer = time.AfterFunc(d, c.expire)
	} else {
		q.timer.Reset(d)
	}
	q.timerAt, q.armed = deadline, true
}

func (q *sequencer) stopTimer() {
	if q.armed {
		q.timer.Stop()
		q.armed = false
	}
}

// expire runs on the timer: it delivers every held item whose MessageWait is
// over, oldest first, as Pushpin does, even though its predecessor never came.
func (c *channel) expire() {
	h := c.h
	b := batch{h: h, cfg: h.config(), now: time.Now()}
	c.mu.Lock()
	if !c.dead {
		c.expireLocked(&b)
	}
	c.mu.Unlock()
	b.finish()
}

func (c *channel) expireLocked(b *batch) {
	q := &c.seq
	q.armed = false
	var due []*heldItem
	for _, hi := range q.pending {
		if !b.now.Before(hi.deadline) {
			due = append(due, hi)
		}
	}
	slices.SortFunc(due, func(x, y *heldItem) int {
		return cmp.Compare(x.arrival, y.arrival)
	})
	for _, hi := range due {
		if q.pending[hi.item.PrevID] != hi {
			continue // released meanwhile by an earlier item's chain
		}
		q.release(b.h, hi)
		b.h.reordered.Add(1)
		b.h.sequencerTimeouts.Add(1)
		if l := b.h.warner(); l != nil {
			l.Warn("gap given up on: item delivered without its predecessor", zap.Stringer("reason", DropSequencerTimeout),
				zap.String("channel", c.name), zap.String("id", hi.item.ID), zap.String("prev_id", hi.item.PrevID))
		}
		c.sendLocked(b, hi.item)
	}
	// Re-arm for the earliest item still held.
	var next time.Time
	for _, hi := range q.pending {
		if next.IsZero() || hi.deadline.Before(next) {
			next = hi.deadline
		}
	}
	if !next.IsZero() {
		c.armLocked(next, b.now)
	}
}

// reset drops everything held, for a channel that lost its last subscriber.
func (q *sequencer) reset(h *Hub) {
	if n := len(q.pending); n > 0 {
		h.sequencerDropped.Add(uint64(n))
		h.seqHeld.Add(-int64(n))
		h.seqBytes.Add(-int64(q.bytes))
	}
	q.pending, q.bytes = nil, 0
	q.stopTimer()
	q.lastID, q.lastKnown = "", false
}
