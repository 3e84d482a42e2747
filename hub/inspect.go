package hub

import (
	"container/heap"
	"sort"
	"strings"
)

// ChannelInfo describes one channel on this node, for operators: how many
// local subscribers it has by transport and its last published id.
type ChannelInfo struct {
	Name string
	// Response, Stream and WebSocket count the local subscribers of each
	// kind; Subscribers is their sum.
	Response, Stream, WebSocket, Subscribers int
	// LastID is the channel's last published id, if one is remembered.
	LastID      string
	LastIDKnown bool
}

// info counts c's subscribers under its lock, held only for that.
func (c *channel) info() (ChannelInfo, bool) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return ChannelInfo{}, false
	}
	ci := ChannelInfo{
		Name:      c.name,
		Response:  len(c.subs[KindResponse]),
		Stream:    len(c.subs[KindStream]),
		WebSocket: len(c.subs[KindWebSocket]),
	}
	c.mu.Unlock()
	ci.Subscribers = ci.Response + ci.Stream + ci.WebSocket
	return ci, true
}

// Channel describes one channel: found is false when it has no local
// subscribers and no remembered last id.
func (h *Hub) Channel(name string) (ci ChannelInfo, found bool) {
	if c := h.lookup(h.hash(name), name); c != nil {
		ci, found = c.info()
	}
	ci.Name = name
	ci.LastID, ci.LastIDKnown = h.LastPublishedID(name)
	return ci, found || ci.LastIDKnown
}

// Channels lists up to limit channels with local subscribers whose names
// start with prefix, most subscribers first (then by name), and how many
// matched in all. It holds one shard's read lock at a time while listing
// and one channel's lock at a time while counting, so publishes and
// subscribes go on meanwhile; the figures are each a moment's.
func (h *Hub) Channels(prefix string, limit int) (top []ChannelInfo, matched int) {
	if limit <= 0 {
		return nil, 0
	}
	var best infoHeap
	var names []*channel
	for i := range h.shards {
		sh := &h.shards[i]
		names = names[:0]
		sh.mu.RLock()
		for name, c := range sh.m {
			if strings.HasPrefix(name, prefix) {
				names = append(names, c)
			}
		}
		sh.mu.RUnlock()
		for _, c := range names {
			ci, ok := c.info()
			if !ok {
				continue
			}
			matched++
			if len(best) < limit {
				heap.Push(&best, ci)
			} else if better(ci, best[0]) {
				best[0] = ci
				heap.Fix(&best, 0)
			}
		}
	}
	top = []ChannelInfo(best)
	sort.Slice(top, func(i, j int) bool { return better(top[i], top[j]) })
	for i := range top {
		top[i].LastID, top[i].LastIDKnown = h.LastPublishedID(top[i].Name)
	}
	return top, matched
}

// better orders channels by subscribers, descending, then by name.
func better(a, b ChannelInfo) bool {
	if a.Subscribers != b.Subscribers {
		return a.Subscribers > b.Subscribers
	}
	return a.Name < b.Name
}

// infoHeap is a min-heap under better: its root is the worst kept.
type infoHeap []ChannelInfo

func (h infoHeap) Len() int           { return len(h) }
func (h infoHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h infoHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *infoHeap) Push(x any)        { *h = append(*h, x.(ChannelInfo)) }
func (h *infoHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
