package hub

import (
	"container/list"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-grip/grip/formats"
)

// HistoryConfig keeps the last items of matching channels, so that a client
// whose prev-id is behind is caught up from the hub instead of its origin.
// The zero value keeps nothing.
type HistoryConfig struct {
	// Channels are the channel name patterns that keep history, '*'
	// matching any run of characters; empty means every channel.
	Channels []string
	// Size is how many items each channel keeps; 0 turns history off.
	Size int
	// TTL drops items older than it; 0 keeps them until pushed out.
	TTL time.Duration
	// MaxBytes bounds the history of all channels together (Item.Cost and
	// per-entry overhead); the channels published to least recently go
	// first. Default DefaultHistoryBytes.
	MaxBytes int
}

// DefaultHistoryBytes bounds the history when MaxBytes is not set.
const DefaultHistoryBytes = 64 << 20

// historyEntryOverhead is what one kept item costs beside Item.Cost: the
// entry and the Item's structs, ids and format headers as the heap holds
// them (BenchmarkHistoryMemory10kChannels100Items measures about 300 heap
// bytes per item whose content is shared, against Cost's 165), so that
// MaxBytes bounds the heap and not an estimate under it.
// historyChannelOverhead is each channel's ring beside its name.
const (
	historyEntryOverhead   = 240
	historyChannelOverhead = 128
	historyShards          = 16
)

// enabled reports whether channel keeps history under c.
func (c *HistoryConfig) enabled(channel string) bool {
	if c == nil || c.Size <= 0 {
		return false
	}
	if len(c.Channels) == 0 {
		return true
	}
	for _, p := range c.Channels {
		if globMatch(p, channel) {
			return true
		}
	}
	return false
}

// Keeps reports whether channel keeps history under c, so that a bus
// with history of its own covers the same channels.
func (c *HistoryConfig) Keeps(channel string) bool { return c.enabled(channel) }

// globMatch matches name against pattern, where '*' matches any run of
// characters (dots and slashes included) and every other byte itself.
func globMatch(pattern, name string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == name
	}
	if !strings.HasPrefix(name, pattern[:star]) {
		return false
	}
	name, pattern = name[star:], pattern[star+1:]
	for {
		if globMatch(pattern, name) {
			return true
		}
		if name == "" {
			return false
		}
		name = name[1:]
	}
}

// history is the hub's per-channel item store. Each shard has a lock, a
// byte budget (MaxBytes over the shards) and its channels in order of last
// append, so eviction takes the least recently published ones.
type history struct {
	shards         [historyShards]historyShard
	entries, bytes atomic.Int64
}

type historyShard struct {
	mu    sync.Mutex
	rings map[string]*ring
	lru   list.List // of *ring, most recently appended first
	bytes int
}

// ring is one channel's last items, oldest first.
type ring struct {
	name    string
	entries []historyEntry // oldest first; at most the configured size
	bytes   int
	elem    *list.Element
}

type historyEntry struct {
	it   *formats.Item
	at   time.Time
	cost int
}

func newHistory() *history {
	h := &history{}
	for i := range h.shards {
		h.shards[i].rings = make(map[string]*ring)
	}
	return h
}

func (hs *history) shard(hash uint64) *historyShard { return &hs.shards[hash%historyShards] }

// appendLocked keeps it on its channel; the caller holds sh.mu.
func (hs *history) appendLocked(sh *historyShard, cfg *HistoryConfig, it *formats.Item, now time.Time) {
	r := sh.rings[it.Channel]
	if r == nil {
		r = &ring{name: it.Channel, bytes: len(it.Channel) + historyChannelOverhead}
		r.elem = sh.lru.PushFront(r)
		sh.rings[it.Channel] = r
		sh.bytes += r.bytes
		hs.bytes.Add(int64(r.bytes))
	} else {
		sh.lru.MoveToFront(r.elem)
	}
	e := historyEntry{it: it, at: now, cost: it.Cost() + historyEntryOverhead}
	r.entries = append(r.entries, e)
	r.bytes += e.cost
	sh.bytes += e.cost
	hs.bytes.Add(int64(e.cost))
	hs.entries.Add(1)
	drop := max(len(r.entries)-cfg.Size, 0)
	if cfg.TTL > 0 {
		for drop < len(r.entries)-1 && now.Sub(r.entries[drop].at) > cfg.TTL {
			drop++
		}
	}
	hs.dropOldest(sh, r, drop)
	budget := cfg.MaxBytes
	if budget <= 0 {
		budget = DefaultHistoryBytes
	}
	budget /= historyShards
	for sh.bytes > budget && sh.lru.Len() > 0 {
		hs.removeRing(sh, sh.lru.Back().Value.(*ring))
	}
}

// dropOldest removes r's n oldest entries.
func (hs *history) dropOldest(sh *historyShard, r *ring, n int) {
	if n <= 0 {
		return
	}
	freed := 0
	for _, e := range r.entries[:n] {
		freed += e.cost
	}
	clear(r.entries[:n])
	r.entries = r.entries[n:]
	if cap(r.entries) > 2*len(r.entries)+8 {
		r.entries = append([]historyEntry(nil), r.entries...)
	}
	r.bytes -= freed
	sh.bytes -= freed
	hs.bytes.Add(-int64(freed))
	hs.entries.Add(-int64(n))
}

// removeRing drops a whole channel's history.
func (hs *history) removeRing(sh *historyShard, r *ring) {
	sh.lru.Remove(r.elem)
	delete(sh.rings, r.name)
	sh.bytes -= r.bytes
	hs.bytes.Add(-int64(r.bytes))
	hs.entries.Add(-int64(len(r.entries)))
}

// afterLocked returns the items kept after the newest one whose id is
// prevID, oldest first, and whether prevID was found among the live ones.
func (hs *history) afterLocked(sh *historyShard, cfg *HistoryConfig, channel, prevID string, now time.Time) ([]*formats.Item, bool) {
	r := sh.rings[channel]
	if r == nil || prevID == "" {
		return nil, false
	}
	for i := len(r.entries) - 1; i >= 0; i-- {
		e := r.entries[i]
		if cfg.TTL > 0 && now.Sub(e.at) > cfg.TTL {
			return nil, false
		}
		if e.it.ID != prevID {
			continue
		}
		out := make([]*formats.Item, 0, len(r.entries)-i-1)
		for _, later := range r.entries[i+1:] {
			out = append(out, later.it)
		}
		return out, true
	}
	return nil, false
}

// HistoryResult is what SubscribeAfter found in the channel's history.
type HistoryResult uint8

const (
	// HistoryOff means the channel keeps no history, or no prev-id was given.
	HistoryOff HistoryResult = iota
	// HistoryRecovered means the items after the prev-id (possibly none)
	// were queued to the subscriber ahead of live ones.
	HistoryRecovered
	// HistoryMiss means the prev-id is not in the history (too old, never
	// seen) or the items after it would not fit the subscriber's queue.
	HistoryMiss
)

// SubscribeAfter subscribes s to the channel name like Subscribe and, when
// the channel keeps history and has prevID in it, queues the items published
// after prevID to s first, atomically with the subscription: a publish
// racing it is delivered once, after them. When the hub's ring does not
// know prevID and the bus is a HistorySource, it asks the bus (waiting for
// it, with no hub lock held, at most historyFetchWait), holding s's live
// items on the channel back meanwhile (see catchUpRemote). It reports what
// the history gave.
func (h *Hub) SubscribeAfter(s *Subscriber, name, prevID string) (first bool, res HistoryResult) {
	cfg := &h.config().History
	if prevID == "" || !cfg.enabled(name) {
		return h.Subscribe(s, name), HistoryOff
	}
	res = HistoryMiss
	src, _ := h.currentBus().(HistorySource)
	if src != nil && !src.KeepsHistory(name) {
		src = nil
	}
	remote := false
	first = h.subscribeWith(s, name, func(c *channel) {
		sh := h.history.shard(c.hash)
		sh.mu.Lock()
		items, ok := h.history.afterLocked(sh, cfg, name, prevID, time.Now())
		sh.mu.Unlock()
		if !ok {
			if src != nil {
				s.holdBack(name)
				remote = true
			}
			return
		}
		qc := h.config()
		if !fitsQueue(items, qc) {
			return
		}
		for _, it := range items {
			if s.filteredOut(name, it) || !s.kind.carries(it) {
				continue
			}
			s.enqueue(name, it, it.Cost(), qc.QueueItems, qc.QueueBytes, true, nil)
		}
		res = HistoryRecovered
	})
	if remote {
		if res = h.catchUpRemote(src, s, name, prevID); res == HistoryRecovered {
			h.counts.historyFromBus.Add(1)
		}
	}
	if res == HistoryRecovered {
		h.counts.historyRecovered.Add(1)
	} else {
		h.counts.historyMissed.Add(1)
	}
	return first, res
}

// HasHistory reports whether channel keeps history, so that a stream hold
// with a prev-id needs no next link to recover.
func (h *Hub) HasHistory(channel string) bool { return h.config().History.enabled(channel) }

// appendHistory stores it if its channel keeps history under cfg. Callers
// hold the channel's lock (delivery order); receiveRun holds the shard's
// own lock instead for a channel with no subscribers here (see there).
func (h *Hub) appendHistory(cfg *HistoryConfig, hash uint64, it *formats.Item) {
	if !cfg.enabled(it.Channel) {
		return
	}
	sh := h.history.shard(hash)
	sh.mu.Lock()
	h.history.appendLocked(sh, cfg, it, time.Now())
	sh.mu.Unlock()
}
