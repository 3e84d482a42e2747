package hub

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"time"
	"unsafe"
)

// dedupShards spreads the id cache over independent locks.
const dedupShards = 64

// dedup remembers recently seen (channel, id) pairs so that an item
// published twice within the TTL (by a retrying publisher, or arriving over
// two bus paths) is delivered once. Pushpin keeps the same cache in its
// sequencer (id_cache_ttl).
//
// A pair is remembered by a 128-bit keyed hash rather than by its strings:
// the cache may hold every id of a minute's traffic, and pointer-free
// entries are half the size and cost the garbage collector nothing. Two
// distinct pairs colliding is a 2^-128-scale event.
type dedup struct {
	seed1, seed2 maphash.Seed
	shards       [dedupShards]dedupShard
}

type dedupKey [2]uint64

type dedupEntry struct {
	key     dedupKey
	expires int64 // monotonic nanoseconds, as passed to check
}

// dedupEntryBytes is what one remembered id costs: its map slot and its
// place in the fifo, for the byte budget.
const dedupEntryBytes = 64

// dedupKeepMin is the size under which a shard's map and fifo are never
// rebuilt: small enough to cost nothing, large enough not to churn.
const dedupKeepMin = 1024

type dedupShard struct {
	mu   sync.Mutex
	seen map[dedupKey]int64 // key -> expiry
	peak int                // most entries seen since the map was made: Go maps keep their buckets
	// fifo holds keys in insertion order for expiry. With a fixed TTL it is
	// sorted by expiry; after a TTL change it may not be, which only delays
	// freeing memory, because lookups compare the expiry themselves.
	fifo []dedupEntry
	head int
	_    [40]byte // keep neighbouring shards' locks off one cache line
}

func newDedup() *dedup {
	return &dedup{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed()}
}

func (d *dedup) key(channel, id string) dedupKey {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(channel)))
	var k dedupKey
	for i, seed := range [2]maphash.Seed{d.seed1, d.seed2} {
		var h maphash.Hash
		h.SetSeed(seed)
		h.Write(n[:]) // length prefix: ("ab","c") and ("a","bc") differ
		h.WriteString(channel)
		h.WriteString(id)
		k[i] = h.Sum64()
	}
	return k
}

// check records (channel, id) and reports whether it was already recorded
// and unexpired at now (monotonic nanoseconds). shardHash picks the shard.
// budget is the whole cache's byte budget: a shard at its share forgets its
// oldest id for each new one.
func (d *dedup) check(shardHash uint64, channel, id string, now int64, ttl time.Duration, budget int) (dup bool) {
	key := d.key(channel, id)
	sh := &d.shards[shardHash%dedupShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expireLocked(now)
	if exp, ok := sh.seen[key]; ok && now < exp {
		return true
	}
	if sh.seen == nil {
		sh.seen = make(map[dedupKey]int64)
	}
	limit := max(budget/(dedupShards*dedupEntryBytes), 1)
	for len(sh.seen) >= limit && sh.head < len(sh.fifo) {
		e := sh.fifo[sh.head]
		if exp, ok := sh.seen[e.key]; ok && exp == e.expires {
			delete(sh.seen, e.key)
		}
		sh.head++
	}
	exp := now + int64(ttl)
	sh.seen[key] = exp
	sh.fifo = append(sh.fifo, dedupEntry{key: key, expires: exp})
	sh.peak = max(sh.peak, len(sh.seen))
	return false
}

// expireLocked drops entries from the front of the fifo whose time is up.
func (sh *dedupShard) expireLocked(now int64) {
	for sh.head < len(sh.fifo) {
		e := sh.fifo[sh.head]
		if now < e.expires {
			break
		}
		if exp, ok := sh.seen[e.key]; ok && exp <= now {
			delete(sh.seen, e.key)
		}
		sh.head++
	}
	// Compact once the dead prefix dominates, so the array does not grow
	// forever; reallocate it when most of its capacity is unused.
	if sh.head > 0 && sh.head >= len(sh.fifo)/2 {
		live := sh.fifo[sh.head:]
		if cap(sh.fifo) > dedupKeepMin && len(live) < cap(sh.fifo)/4 {
			sh.fifo = append(make([]dedupEntry, 0, 2*len(live)), live...)
		} else {
			n := copy(sh.fifo, live)
			sh.fifo = sh.fifo[:n]
		}
		sh.head = 0
	}
	// A Go map never gives back its buckets: after a burst has expired,
	// copy the survivors into a map of their size.
	if sh.peak > dedupKeepMin && len(sh.seen) < sh.peak/4 {
		m := make(map[dedupKey]int64, len(sh.seen))
		for k, v := range sh.seen {
			m[k] = v
		}
		sh.seen, sh.peak = m, len(m)
	}
}

// sizes returns the ids remembered and the bytes the cache holds for them:
// map slots up to each map's peak, and the fifos' capacity.
func (d *dedup) sizes() (entries, bytes int) {
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		entries += len(sh.seen)
		bytes += sh.peak*(dedupEntryBytes-int(unsafe.Sizeof(dedupEntry{}))) + cap(sh.fifo)*int(unsafe.Sizeof(dedupEntry{}))
		sh.mu.Unlock()
	}
	return entries, bytes
}

// size counts remembered pairs, for tests.
func (d *dedup) size() int {
	n := 0
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		n += len(sh.seen)
		sh.mu.Unlock()
	}
	return n
}
