package hub

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// HistorySource is a Bus that keeps channel history of its own, shared by
// every node (the NATS bus with a JetStream stream), so that a node can
// catch a client up on a channel it did not follow. The hub's ring is
// then a cache: SubscribeAfter asks the source only when the ring does
// not know the prev-id.
type HistorySource interface {
	// KeepsHistory reports whether the source keeps channel's items.
	KeepsHistory(channel string) bool
	// ItemsAfter returns the items kept on channel after the newest one
	// whose id is prevID, oldest first; found is false when prevID is not
	// kept. It returns by ctx's deadline, and reads only what was stored
	// after it was called (a read shared with other callers must have
	// started after this call).
	ItemsAfter(ctx context.Context, channel, prevID string) (items []*Item, found bool, err error)
}

// historyFetchWait bounds how long SubscribeAfter waits for the bus to
// follow the channel and for its history source to answer; the source
// has its own, shorter, timeout.
const historyFetchWait = 5 * time.Second

// catchUpRemote finishes a SubscribeAfter whose prev-id the ring did not
// know, with s subscribed and its live deliveries on name held back
// (Subscriber.holdBack): once the bus follows the channel, so that
// whatever the source does not have yet reaches s live, it asks the
// source for the items after prevID and queues them, then the held-back
// live items that are not among them. No hub lock is held while it
// waits on the network.
func (h *Hub) catchUpRemote(src HistorySource, s *Subscriber, name, prevID string) HistoryResult {
	ctx, cancel := context.WithTimeout(context.Background(), historyFetchWait)
	defer cancel()
	var items []*Item
	found := false
	if h.waitFollowed(ctx) {
		var err error
		items, found, err = src.ItemsAfter(ctx, name, prevID)
		if err != nil {
			found = false
			if l := h.warner(); l != nil {
				l.Warn("reading channel history from the bus failed; the hold falls back to the origin", zap.String("channel", name), zap.Error(err))
			}
		}
	}
	hash := h.hash(name)
	for {
		c := h.lookup(hash, name)
		if c == nil {
			s.releaseHeldBack(name, nil, false, h.config())
			return HistoryMiss
		}
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			continue
		}
		_, member := c.idx[s]
		var res HistoryResult
		var overflowed bool
		if !member {
			s.releaseHeldBack(name, nil, false, h.config())
			res = HistoryMiss
		} else {
			res, overflowed = s.releaseHeldBack(name, items, found, h.config())
		}
		c.mu.Unlock()
		if overflowed {
			h.slowDisconnects.Add(1)
			h.UnsubscribeAll(s)
		}
		return res
	}
}

// waitFollowed waits until the bus follows every channel subscribed so
// far, or ctx ends; it reports which.
func (h *Hub) waitFollowed(ctx context.Context) bool {
	done := make(chan struct{})
	h.WhenFollowed(func() { close(done) })
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// heldBack is what a subscriber's channel received live while its
// catch-up was being read.
type heldBack struct {
	queue []Delivery
	bytes int
}

// holdBack makes the deliveries of channel to s wait, in order, until
// releaseHeldBack; the caller holds the channel's lock.
func (s *Subscriber) holdBack(channel string) {
	s.mu.Lock()
	if s.held == nil {
		s.held = make(map[string]*heldBack)
	}
	s.held[channel] = new(heldBack)
	s.mu.Unlock()
}

// releaseHeldBack ends holdBack on channel, under the channel's lock:
// when found, and the items fit the queue limits, it queues them first
// (HistoryRecovered), then the held-back deliveries whose item id is not
// among them; otherwise only the held-back deliveries (HistoryMiss).
// overflowed reports s ended as slow on the way.
func (s *Subscriber) releaseHeldBack(channel string, items []*Item, found bool, cfg *Config) (res HistoryResult, overflowed bool) {
	s.mu.Lock()
	hb := s.held[channel]
	delete(s.held, channel)
	if len(s.held) == 0 {
		s.held = nil
	}
	s.mu.Unlock()
	res = HistoryMiss
	var seen map[string]struct{}
	if found && fitsQueue(items, cfg) {
		res = HistoryRecovered
		seen = make(map[string]struct{}, len(items))
		for _, it := range items {
			if it.ID != "" {
				seen[it.ID] = struct{}{}
			}
			if s.filteredOut(channel, it) || !s.kind.carries(it) {
				continue
			}
			if r, _ := s.enqueue(channel, it, it.Cost(), cfg.QueueItems, cfg.QueueBytes, true, nil); r == enqueueOverflowed {
				overflowed = true
			}
		}
	}
	if hb == nil {
		return res, overflowed
	}
	for _, d := range hb.queue {
		if _, dup := seen[d.Item.ID]; dup && d.Item.ID != "" {
			continue
		}
		if r, _ := s.enqueue(channel, d.Item, d.Item.Cost(), cfg.QueueItems, cfg.QueueBytes, true, nil); r == enqueueOverflowed {
			overflowed = true
		}
	}
	return res, overflowed
}

// fitsQueue reports whether items fit one subscriber's queue limits.
func fitsQueue(items []*Item, cfg *Config) bool {
	total := 0
	for _, it := range items {
		total += it.Cost()
	}
	return len(items) <= cfg.QueueItems && total <= cfg.QueueBytes
}
