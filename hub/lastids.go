package hub

import "sync"

// lastIDShards spreads the last-published-id store over locks.
const lastIDShards = 16

// DefaultLastIDChannels is how many channels' last published ids the hub
// remembers, whether or not anyone is subscribed to them.
const DefaultLastIDChannels = 1 << 20

// lastIDs remembers the id of the last item published on each channel,
// subscribers or not, so that a client returning with a stale prev-id can
// be sent back to the origin instead of waiting for a publish it missed.
// Each shard keeps two generations: when the current one fills, it becomes
// the old one and the previous old one is dropped, so memory stays bounded
// and recently published channels are kept.
type lastIDs struct {
	perGen int
	shards [lastIDShards]lastIDShard
}

type lastIDShard struct {
	mu       sync.Mutex
	cur, old map[string]string
}

func newLastIDs(channels int) *lastIDs {
	l := &lastIDs{perGen: max(channels/(2*lastIDShards), 1)}
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
	delete(sh.old, channel)
	if id == "" {
		delete(sh.cur, channel)
		return
	}
	if _, ok := sh.cur[channel]; !ok && len(sh.cur) >= l.perGen {
		sh.old, sh.cur = sh.cur, make(map[string]string, l.perGen)
	}
	sh.cur[channel] = id
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
