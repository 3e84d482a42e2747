package hub

import (
	"context"
	"time"

	"github.com/caddy-grip/grip/formats"
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
	// ReadHistory returns the items kept on channel from position from
	// (0: all of them), oldest first, and the position after them;
	// complete is false when the read was cut short. The read includes
	// everything published before the call (a read shared with other
	// callers must start after this call) and returns by ctx's deadline.
	ReadHistory(ctx context.Context, channel string, from uint64) (items []*formats.Item, next uint64, complete bool, err error)
}

// historyReadWait bounds how long a catch-up waits for the bus to follow
// the channel and for each history read; the source has its own, shorter,
// timeout. anchorReads is how many reads the anchoring makes at most.
const (
	historyReadWait = 5 * time.Second
	anchorReads     = 3
)

// heldBack is what a subscriber's channel received live while it is
// caught up from a HistorySource, and the state of that catch-up.
//
// The source stores a publish a moment after the server has routed it
// live, so a read that starts once the live subscription is in force may
// still lack an item that the subscription missed. The catch-up therefore
// only trusts its read up to an anchor: a live item the read also has
// (then what follows it comes live), or, when there is none, the first
// live item, which a second read from where the first ended must show,
// with whatever the stream stored before it.
type heldBack struct {
	queue []Delivery
	bytes int
	// seen are the ids replayed from the history; their live copies are
	// dropped.
	seen map[string]struct{}
	// anchoring: the replay is queued and the first live item with an id
	// (not in seen) starts anchor, once.
	anchoring bool
	started   bool
	anchor    func(hb *heldBack, id string)
}

// catchUpRemote finishes a SubscribeAfter whose prev-id the ring did not
// know, with s subscribed and its live deliveries on name held back: once
// the bus follows the channel, it reads the channel's history and, if
// prevID is there, queues the items after it, then releases or anchors
// the held-back live items (see heldBack). No hub lock is held while it
// waits on the network.
func (h *Hub) catchUpRemote(src HistorySource, s *Subscriber, name, prevID string) HistoryResult {
	ctx, cancel := context.WithTimeout(context.Background(), historyReadWait)
	defer cancel()
	var after []*formats.Item
	var next uint64
	found := false
	if h.waitFollowed(ctx) {
		items, pos, complete, err := src.ReadHistory(ctx, name, 0)
		if err != nil {
			h.warnHistory(name, err)
		}
		for i := len(items) - 1; err == nil && complete && i >= 0; i-- {
			if items[i].ID == prevID {
				after, next, found = items[i+1:], pos, true
				break
			}
		}
	}
	res := HistoryMiss
	h.withMember(s, name, func() {
		var anchor bool
		var overflowed bool
		res, anchor, overflowed = s.replayHeldBack(name, after, found, h.config())
		if overflowed {
			h.slowLater(s)
		}
		if anchor {
			s.setAnchor(name, func(hb *heldBack, id string) { go h.anchorCatchUp(src, s, hb, name, next, id) })
		}
	})
	return res
}

// anchorCatchUp reads name's history from position from until it shows
// the live item with id (the first held back), then queues what the
// stream stored before it that s has not had, and releases the held-back
// live items. If the item never shows (the stream lost it or pushed it
// out, or it has no id), it releases them as they are, counted as
// unanchored.
func (h *Hub) anchorCatchUp(src HistorySource, s *Subscriber, hb *heldBack, name string, from uint64, id string) {
	var before []*formats.Item
	found := false
	for try := 0; try < anchorReads && id != "" && !found; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), historyReadWait)
		items, _, _, err := src.ReadHistory(ctx, name, from)
		cancel()
		if err != nil {
			h.warnHistory(name, err)
			break
		}
		for i, it := range items {
			if it.ID == id {
				before, found = items[:i], true
				break
			}
		}
	}
	if !found {
		h.counts.historyUnanchored.Add(1)
	}
	h.withMember(s, name, func() {
		if s.releaseHeldBack(name, before, h.config(), hb) {
			h.slowLater(s)
		}
	})
}

// withMember runs fn under name's channel lock if s is subscribed to it;
// otherwise it drops s's held-back state on name.
func (h *Hub) withMember(s *Subscriber, name string, fn func()) {
	hash := h.hash(name)
	for {
		c := h.lookup(hash, name)
		if c == nil {
			s.dropHeldBack(name)
			return
		}
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			continue
		}
		if _, member := c.idx[s]; member {
			fn()
		} else {
			s.dropHeldBack(name)
		}
		c.mu.Unlock()
		return
	}
}

// slowLater unsubscribes s, ended as slow under a channel lock, from
// another goroutine (UnsubscribeAll takes channel locks).
func (h *Hub) slowLater(s *Subscriber) {
	h.slowDisconnects.Add(1)
	go h.UnsubscribeAll(s)
}

func (h *Hub) warnHistory(name string, err error) {
	if l := h.warner(); l != nil {
		l.Warn("reading channel history from the bus failed; holds fall back to the origin", zap.String("channel", name), zap.Error(err))
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

// holdBack makes the deliveries of channel to s wait, in order, until the
// catch-up releases them; the caller holds the channel's lock.
func (s *Subscriber) holdBack(channel string) {
	s.mu.Lock()
	if s.held == nil {
		s.held = make(map[string]*heldBack)
	}
	s.held[channel] = new(heldBack)
	s.mu.Unlock()
}

// holdLocked queues a live delivery that arrives while channel catches
// up; it reports false when s is not catching up on channel.
func (s *Subscriber) holdLocked(channel string, it *formats.Item, cost, maxItems, maxBytes int) (res enqueueResult, lost int, held bool) {
	hb := s.held[channel]
	if hb == nil || s.hintLocked(it) {
		return 0, 0, false // a hint asks for no order: it goes through
	}
	if _, dup := hb.seen[it.ID]; dup && it.ID != "" {
		return enqueueSkipped, 0, true
	}
	if n := len(hb.queue); n > 0 && (n+1 > maxItems || hb.bytes+cost > maxBytes) {
		s.endLocked(ReasonSlow)
		return enqueueOverflowed, n + 1, true
	}
	hb.queue = append(hb.queue, Delivery{Channel: channel, Item: it})
	hb.bytes += cost
	if hb.anchoring && !hb.started {
		// An item without id cannot be found in the stream: it releases
		// the catch-up unanchored.
		hb.started = true
		hb.anchor(hb, it.ID) // starts a goroutine
	}
	return enqueueDone, 0, true
}

// hintLocked reports whether the format of it that s receives is a hint.
func (s *Subscriber) hintLocked(it *formats.Item) bool {
	switch s.kind {
	case KindResponse:
		return it.HTTPResponse != nil && it.HTTPResponse.Action == formats.ActionHint
	case KindStream:
		return it.HTTPStream != nil && it.HTTPStream.Action == formats.ActionHint
	}
	return false
}

// replayHeldBack ends the first read of channel's catch-up, under the
// channel's lock. When found and the items fit the queue limits, it
// queues them (HistoryRecovered); then, if a held-back live item is one
// of them, the read is anchored and it releases the rest; otherwise it
// keeps holding back and reports that the catch-up must anchor. On a
// miss it releases the held-back items.
func (s *Subscriber) replayHeldBack(channel string, items []*formats.Item, found bool, cfg *Config) (res HistoryResult, anchor, overflowed bool) {
	if !found || !fitsQueue(items, cfg) {
		return HistoryMiss, false, s.releaseHeldBack(channel, nil, cfg, nil)
	}
	// Queued past the hold-back: no live item on channel can arrive
	// meanwhile, the caller holds the channel's lock.
	s.mu.Lock()
	hb := s.held[channel]
	delete(s.held, channel)
	s.mu.Unlock()
	seen := make(map[string]struct{}, len(items))
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
	s.mu.Lock()
	overlap := false
	if hb != nil {
		if s.held == nil {
			s.held = make(map[string]*heldBack)
		}
		s.held[channel] = hb
		hb.seen = seen
		// Drop the live copies of replayed items; one of them anchors.
		kept := hb.queue[:0]
		for _, d := range hb.queue {
			if _, dup := seen[d.Item.ID]; dup && d.Item.ID != "" {
				overlap = true
				continue
			}
			kept = append(kept, d)
		}
		clear(hb.queue[len(kept):])
		hb.queue = kept
	}
	s.mu.Unlock()
	if overlap || hb == nil {
		return HistoryRecovered, false, s.releaseHeldBack(channel, nil, cfg, nil) || overflowed
	}
	return HistoryRecovered, true, overflowed
}

// setAnchor arms the anchoring of channel's catch-up with start, and
// starts it if a live item with an id is held back already. The caller
// holds the channel's lock.
func (s *Subscriber) setAnchor(channel string, start func(hb *heldBack, id string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hb := s.held[channel]
	if hb == nil {
		return
	}
	hb.anchoring, hb.anchor = true, start
	if len(hb.queue) > 0 {
		hb.started = true
		start(hb, hb.queue[0].Item.ID)
	}
}

// releaseHeldBack ends channel's catch-up, under the channel's lock: it
// queues before (what the stream stored ahead of the anchor) less what
// was replayed, then the held-back live items. The ids replayed stay
// skipped on the live path until a live item with another id arrives:
// their live copies may still be on their way. It reports s ended as slow
// on the way. With only set, it ends that catch-up and no later one (s
// left the channel and came back meanwhile).
func (s *Subscriber) releaseHeldBack(channel string, before []*formats.Item, cfg *Config, only *heldBack) (overflowed bool) {
	s.mu.Lock()
	hb := s.held[channel]
	if only != nil && hb != only {
		s.mu.Unlock()
		return false
	}
	delete(s.held, channel)
	if len(s.held) == 0 {
		s.held = nil
	}
	s.mu.Unlock()
	if hb == nil {
		return false
	}
	put := func(it *formats.Item) {
		if r, _ := s.enqueue(channel, it, it.Cost(), cfg.QueueItems, cfg.QueueBytes, true, nil); r == enqueueOverflowed {
			overflowed = true
		}
	}
	for _, it := range before {
		if _, dup := hb.seen[it.ID]; (dup && it.ID != "") || s.filteredOut(channel, it) || !s.kind.carries(it) {
			continue
		}
		if it.ID != "" && hb.seen != nil {
			hb.seen[it.ID] = struct{}{}
		}
		put(it)
	}
	for _, d := range hb.queue {
		delete(hb.seen, d.Item.ID)
		put(d.Item)
	}
	if len(hb.seen) > 0 {
		s.mu.Lock()
		if s.replayed == nil {
			s.replayed = make(map[string]map[string]struct{})
		}
		s.replayed[channel] = hb.seen
		s.mu.Unlock()
	}
	return overflowed
}

// dropHeldBack forgets channel's catch-up (s left the channel).
func (s *Subscriber) dropHeldBack(channel string) {
	s.mu.Lock()
	delete(s.held, channel)
	delete(s.replayed, channel)
	s.mu.Unlock()
}

// skipReplayedLocked reports whether a live item with id on channel was
// replayed to s already. The first live item with an id that was not
// ends the skipping: the live path has passed what the source stored.
func (s *Subscriber) skipReplayedLocked(channel, id string) bool {
	ids := s.replayed[channel]
	if ids == nil || id == "" {
		return false
	}
	_, dup := ids[id]
	delete(ids, id)
	if !dup || len(ids) == 0 {
		delete(s.replayed, channel)
		if len(s.replayed) == 0 {
			s.replayed = nil
		}
	}
	return dup
}

// fitsQueue reports whether items fit one subscriber's queue limits.
func fitsQueue(items []*formats.Item, cfg *Config) bool {
	total := 0
	for _, it := range items {
		total += it.Cost()
	}
	return len(items) <= cfg.QueueItems && total <= cfg.QueueBytes
}
