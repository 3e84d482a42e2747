package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-grip/grip/formats"
	"go.uber.org/zap"
)

// numShards spreads the channel map over independent locks, so that
// subscribe and unsubscribe on different channels rarely contend.
const numShards = 64

// shard is one slice of the channel map. See LOCKS.md for the lock order.
type shard struct {
	mu sync.RWMutex
	m  map[string]*channel

	// fmu serialises Follow/Unfollow reconciliation for the shard's names;
	// followed is the set of names the current bus has been told to follow.
	fmu      sync.Mutex
	followed map[string]struct{}
	_        [64]byte // keep neighbouring shards' locks off one cache line
}

// channel is one channel with local subscribers. Its mutex orders fan-out:
// every item on the channel is sequenced and enqueued to all its subscribers
// under it, so each subscriber sees the channel's items in one order, and a
// concurrent Subscribe either gets a whole item or none of it.
type channel struct {
	h    *Hub
	name string
	hash uint64

	// followed is set once the bus follows this channel; while it is unset,
	// every Subscribe retries the follow.
	followed atomic.Bool

	mu   sync.Mutex
	dead bool // removed from the map; look it up again
	// subs lists the subscribers per kind; idx is each one's position.
	subs  [numKinds][]*Subscriber
	idx   map[*Subscriber]int
	seq   sequencer
	pacer pacer
}

func (c *channel) countLocked() int { return len(c.idx) }

// batch carries one receive pass's settings and tallies, so that counters
// are added and slow subscribers are dealt with once, outside the locks.
type batch struct {
	h         *Hub
	cfg       *Config
	now       time.Time
	urgent    bool     // wake subscribers at once, whatever the pacing (hints)
	local     bool     // a hub-made hint (Update): not counted as a delivery, filtered or missing a format
	woke      *channel // the channel this pass began a wake round on
	delivered [numKinds]uint64
	filtered  uint64 // deliveries a subscriber's filters dropped
	noFormat  uint64 // deliveries missing for want of a format
	queueFull uint64 // items lost to queue overflows
	items     int    // items fanned out (the debug line's)
	slow      []slowEvent
	keep      []*formats.Item // scratch: the items of a run that were not duplicates
}

type slowEvent struct {
	s       *Subscriber
	channel string
	items   int // queue limits in force, for the log line
	bytes   int
}

// finish adds the tallies and removes the subscribers that overflowed.
func (b *batch) finish() {
	c := &b.h.counts
	var receivers uint64
	for k, n := range b.delivered {
		if n > 0 && !b.local {
			c.delivered[k].Add(n)
			receivers += n
		}
	}
	if b.filtered > 0 && !b.local {
		c.drops[DropFiltered].Add(b.filtered)
	}
	if b.noFormat > 0 {
		c.drops[DropNoFormat].Add(b.noFormat)
	}
	if b.queueFull > 0 {
		c.drops[DropQueueFull].Add(b.queueFull)
	}
	if b.items > 0 && !b.local {
		if l := b.h.logger(); l != nil {
			if ce := l.Check(zap.DebugLevel, "fanned out published items"); ce != nil {
				ce.Write(zap.Int("items", b.items), zap.Uint64("receivers", receivers))
			}
		}
	}
	for _, ev := range b.slow {
		b.h.slowDisconnects.Add(1)
		if l := b.h.logger(); l != nil && l.Core().Enabled(zap.DebugLevel) {
			l.Debug("disconnecting slow subscriber",
				zap.Stringer("kind", ev.s.kind),
				zap.String("channel", ev.channel),
				zap.Int("queue_items_max", ev.items),
				zap.Int("queue_bytes_max", ev.bytes))
		}
		b.h.UnsubscribeAll(ev.s)
	}
}

// fanoutLocked enqueues it to every subscriber whose kind it carries a format for.
func (c *channel) fanoutLocked(b *batch, it *formats.Item) {
	cost := -1
	maxItems, maxBytes := b.cfg.QueueItems, b.cfg.QueueBytes
	wake, round := c.wakeNowLocked(b)
	defer round.seal()
	b.items++
	for k := KindResponse; k <= KindWebSocket; k++ {
		subs := c.subs[k]
		if len(subs) == 0 {
			continue
		}
		if !k.carries(it) {
			if !b.local {
				b.noFormat += uint64(len(subs))
			}
			continue
		}
		if cost < 0 {
			cost = it.Cost()
		}
		for _, s := range subs {
			if s.filteredOut(c.name, it) {
				b.filtered++
				continue
			}
			switch res, lost := s.enqueue(c.name, it, cost, maxItems, maxBytes, wake, round); res {
			case enqueueDone:
				b.delivered[k]++
			case enqueueOverflowed:
				b.queueFull += uint64(lost)
				b.slow = append(b.slow, slowEvent{s: s, channel: c.name, items: maxItems, bytes: maxBytes})
			}
		}
	}
}

func (h *Hub) shardFor(hash uint64) *shard { return &h.shards[hash%numShards] }

// lookup returns the live channel named name, or nil.
func (h *Hub) lookup(hash uint64, name string) *channel {
	sh := h.shardFor(hash)
	sh.mu.RLock()
	c := sh.m[name]
	sh.mu.RUnlock()
	return c
}

// getOrCreate returns the channel named name, creating it if absent.
func (h *Hub) getOrCreate(hash uint64, name string) (c *channel, created bool) {
	if c := h.lookup(hash, name); c != nil {
		return c, false
	}
	sh := h.shardFor(hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c := sh.m[name]; c != nil {
		return c, false
	}
	c = &channel{h: h, name: name, hash: hash, idx: make(map[*Subscriber]int)}
	sh.m[name] = c
	h.channels.Add(1)
	return c, true
}

// removeIfEmptyLocked deletes an empty channel from the map and drops its
// sequencer state, so its last id is forgotten. It reports whether it did.
func (c *channel) removeIfEmptyLocked() bool {
	if c.dead || c.countLocked() > 0 {
		return false
	}
	c.dead = true
	c.seq.reset(c.h)
	c.pacer.stop()
	sh := c.h.shardFor(c.hash)
	sh.mu.Lock()
	if sh.m[c.name] == c {
		delete(sh.m, c.name)
	}
	sh.mu.Unlock()
	c.h.channels.Add(-1)
	return true
}

// addLocked adds s to the channel unless it has ended; it reports whether s
// is subscribed afterwards.
func (c *channel) addLocked(s *Subscriber) bool {
	if _, ok := c.idx[s]; ok {
		return true
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	s.chans[c.name] = struct{}{}
	first := len(s.chans) == 1
	s.mu.Unlock()
	if first {
		c.h.subscribers.Add(1)
	}
	c.idx[s] = len(c.subs[s.kind])
	c.subs[s.kind] = append(c.subs[s.kind], s)
	return true
}

// removeLocked removes s from the channel; it reports whether s was there.
func (c *channel) removeLocked(s *Subscriber) bool {
	i, ok := c.idx[s]
	if !ok {
		return false
	}
	delete(c.idx, s)
	list := c.subs[s.kind]
	last := len(list) - 1
	if i != last {
		list[i] = list[last]
		c.idx[list[i]] = i
	}
	list[last] = nil
	c.subs[s.kind] = list[:last]
	if c.pacer.armed {
		s.wake(nil) // what this channel held back must not wait for a wake that skips s
	}

	s.mu.Lock()
	delete(s.chans, c.name)
	delete(s.held, c.name) // a catch-up in flight ends with the subscription
	delete(s.replayed, c.name)
	none := len(s.chans) == 0
	s.mu.Unlock()
	if none {
		c.h.subscribers.Add(-1)
	}
	return true
}

// syncFollow makes the bus's follow state for name match whether the channel
// exists. Every change of existence is followed by a call, and each call
// reads the state under fmu, so the last call leaves the bus right whatever
// order racing calls run in.
func (h *Hub) syncFollow(hash uint64, name string) {
	sh := h.shardFor(hash)
	sh.fmu.Lock()
	defer sh.fmu.Unlock()
	c := h.lookup(hash, name)
	_, have := sh.followed[name]
	switch {
	case c != nil && have:
		c.followed.Store(true)
	case c != nil:
		if err := h.currentBus().Follow(name); err != nil {
			h.logError("bus follow failed", name, err)
			return
		}
		sh.followed[name] = struct{}{}
		c.followed.Store(true)
	case have:
		if err := h.currentBus().Unfollow(name); err != nil {
			h.logError("bus unfollow failed", name, err)
		}
		delete(sh.followed, name)
	}
}

func (h *Hub) logError(msg, channel string, err error) {
	if l := h.logger(); l != nil {
		l.Error(msg, zap.String("channel", channel), zap.Error(err))
	}
}

// allChannels snapshots every live channel.
func (h *Hub) allChannels() []*channel {
	var out []*channel
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for _, c := range sh.m {
			out = append(out, c)
		}
		sh.mu.RUnlock()
	}
	return out
}
