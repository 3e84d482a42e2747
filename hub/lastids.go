package hub

import (
	"sync"
	"sync/atomic"
	"time"
)

// lastIDShards spreads the last-published-id store over locks.
const lastIDShards = 16

// DefaultLastIDChannels is how many channels' last published ids the hub
// remembers, whether or not anyone is subscribed to them.
const DefaultLastIDChannels = 1 << 20

// lastIDEntryOverhead is what one remembered channel costs beside its name
// and id (map slot and string headers), for the byte budget.
const lastIDEntryOverhead = 48

// lastIDs remembers the id of the last item published on each channel,
// subscribers or not, so that a client returning with a stale prev-id can
// be sent back to the origin instead of waiting for a publish it missed.
// Each shard keeps two generations: when the current one fills, it becomes
// the old one and the previous old one is dropped, so memory stays bounded
// and recently published channels are kept. A generation is full at
// perGen entries or genBytes bytes (names, ids and overhead), whichever
// comes first, so long names cannot grow it past the byte budget; an entry
// larger than a whole generation is not remembered.
type lastIDs struct {
	perGen   int
	genBytes int
	shards   [lastIDShards]lastIDShard
	entries  atomic.Int64
	bytes    atomic.Int64
}

type lastIDShard struct {
	mu                 sync.Mutex
	cur, old           map[string]string
	curBytes, oldBytes int
}

func lastIDCost(channel, id string) int { return len(channel) + len(id) + lastIDEntryOverhead }

// newLastIDs makes a store of at most channels entries and budget bytes.
func newLastIDs(channels, budget int) *lastIDs {
	l := &lastIDs{perGen: max(channels/(2*lastIDShards), 1), genBytes: max(budget/(2*lastIDShards), 1)}
	for i := range l.shards {
		l.shards[i].cur = make(map[string]string)
	}
	return l
}

// set records id as the channel's last; an empty id (an item without one)
// makes it unknown again.
func (l *lastIDs) set(hash uint64, channel, id string) {
	sh := &l.shards[hash%lastIDShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if v, ok := sh.old[channel]; ok {
		delete(sh.old, channel)
		l.account(-1, -lastIDCost(channel, v))
		sh.oldBytes -= lastIDCost(channel, v)
	}
	if v, ok := sh.cur[channel]; ok {
		delete(sh.cur, channel)
		l.account(-1, -lastIDCost(channel, v))
		sh.curBytes -= lastIDCost(channel, v)
	}
	cost := lastIDCost(channel, id)
	if id == "" || cost > l.genBytes {
		return
	}
	if len(sh.cur) >= l.perGen || sh.curBytes+cost > l.genBytes {
		l.account(-len(sh.old), -sh.oldBytes)
		sh.old, sh.oldBytes = sh.cur, sh.curBytes
		sh.cur, sh.curBytes = make(map[string]string), 0
	}
	sh.cur[channel] = id
	sh.curBytes += cost
	l.account(1, cost)
}

func (l *lastIDs) account(entries, bytes int) {
	l.entries.Add(int64(entries))
	l.bytes.Add(int64(bytes))
}

// get returns the channel's last published id, if remembered.
func (l *lastIDs) get(hash uint64, channel string) (string, bool) {
	sh := &l.shards[hash%lastIDShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if id, ok := sh.cur[channel]; ok {
		return id, true
	}
	id, ok := sh.old[channel]
	return id, ok
}

// LastPublishedID returns the id of the last item published on channel,
// whether or not it had subscribers then; known is false if none is
// remembered. Holders compare it with a client's prev-id to catch a
// publish that happened while the client was between requests.
func (h *Hub) LastPublishedID(channel string) (id string, known bool) {
	return h.lastPublished.get(h.hash(channel), channel)
}

// NoteLastPublished records id as channel's last published id for an item
// that does not pass through Receive: a bus reports items published on
// other nodes for channels this node does not follow, so that recovery
// sees them. A (channel, id) seen within the de-dup window is ignored, as
// Receive would ignore the item.
func (h *Hub) NoteLastPublished(channel, id string) {
	hash := h.hash(channel)
	cfg := h.config()
	if id != "" && cfg.IDCacheTTL > 0 && h.dedup.check(hash, channel, id, int64(time.Since(h.epoch)), cfg.IDCacheTTL, cfg.DedupBytes) {
		return
	}
	h.lastPublished.set(hash, channel, id)
}
