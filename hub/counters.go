package hub

import "sync/atomic"

// DropReason says why an item did not reach someone who would have got it;
// metrics count drops by it.
type DropReason uint8

// The reasons an item is dropped. Duplicates and sequencer drops count once
// per item; the others once per subscriber that did not get the item.
const (
	// DropDuplicate is an item whose (channel, id) was published within
	// the de-dup window.
	DropDuplicate DropReason = iota
	// DropSequencerOverflow is an out-of-order item the sequencer could
	// not hold: a second item on the same prev-id, or past SequencerMax or
	// SequencerBytes.
	DropSequencerOverflow
	// DropSequencerTimeout is a gap given up on: MessageWait ran out for
	// an out-of-order item, which was delivered without the item its
	// prev-id names.
	DropSequencerTimeout
	// DropFiltered is an item a subscriber's filters kept from it.
	DropFiltered
	// DropNoFormat is an item without the format a subscriber's transport
	// receives.
	DropNoFormat
	// DropQueueFull is an item lost because a subscriber's queue
	// overflowed: the one that did not fit and those discarded with the
	// queue.
	DropQueueFull

	// NumDropReasons bounds arrays indexed by DropReason.
	NumDropReasons = int(DropQueueFull) + 1
)

// String is the reason's metric label.
func (r DropReason) String() string {
	switch r {
	case DropDuplicate:
		return "duplicate"
	case DropSequencerOverflow:
		return "sequencer_overflow"
	case DropSequencerTimeout:
		return "sequencer_timeout"
	case DropFiltered:
		return "filtered"
	case DropNoFormat:
		return "no_format"
	case DropQueueFull:
		return "queue_full"
	}
	return "unknown"
}

// DisconnectReason says why a hold ended, as its holder saw it; metrics
// count ended holds by transport and reason.
type DisconnectReason uint8

// The reasons a hold ends.
const (
	// DisconnectClient means the client left, closed its WebSocket, or
	// broke the protocol.
	DisconnectClient DisconnectReason = iota
	// DisconnectSlowConsumer means the subscriber's queue overflowed.
	DisconnectSlowConsumer
	// DisconnectWriteTimeout means a write to the client did not finish
	// within the write timeout.
	DisconnectWriteTimeout
	// DisconnectPublishClose means a published item closed the hold (an
	// http-stream or ws-message close).
	DisconnectPublishClose
	// DisconnectTimeout means a long-poll's timeout ran out and the held
	// response was sent.
	DisconnectTimeout
	// DisconnectAnswered means a response hold got its answer: a published
	// http-response, or the origin's reply to a re-request.
	DisconnectAnswered
	// DisconnectOriginClose means the origin ended the hold: a
	// WebSocket-over-HTTP CLOSE or DISCONNECT, or a next link whose answer
	// ends the stream.
	DisconnectOriginClose
	// DisconnectOriginError means the origin failed or gave instructions
	// that could not be carried out.
	DisconnectOriginError
	// DisconnectShutdown means the server is exiting, or the hub was
	// closed with the last config that used it.
	DisconnectShutdown

	// NumDisconnectReasons bounds arrays indexed by DisconnectReason.
	NumDisconnectReasons = int(DisconnectShutdown) + 1
)

// String is the reason's metric label.
func (r DisconnectReason) String() string {
	switch r {
	case DisconnectClient:
		return "client"
	case DisconnectSlowConsumer:
		return "slow_consumer"
	case DisconnectWriteTimeout:
		return "write_timeout"
	case DisconnectPublishClose:
		return "publish_close"
	case DisconnectTimeout:
		return "timeout"
	case DisconnectAnswered:
		return "answered"
	case DisconnectOriginClose:
		return "origin_close"
	case DisconnectOriginError:
		return "origin_error"
	case DisconnectShutdown:
		return "shutdown"
	}
	return "unknown"
}

// Disconnect is the hold's reason for a subscriber the hub ended with r.
func (r CloseReason) Disconnect() DisconnectReason {
	if r == ReasonSlow {
		return DisconnectSlowConsumer
	}
	return DisconnectShutdown
}

// NumKinds bounds arrays indexed by Kind; index 0 is unused.
const NumKinds = numKinds

// counters are the hub's per-reason and per-transport counts, all atomics:
// fan-out adds to them once per batch, holders once per hold.
type counters struct {
	drops       [NumDropReasons]atomic.Uint64
	delivered   [numKinds]atomic.Uint64
	holds       [numKinds]atomic.Int64
	holdsTotal  [numKinds]atomic.Uint64
	disconnects [numKinds][NumDisconnectReasons]atomic.Uint64
	// historyRecovered and historyMissed count SubscribeAfter's results.
	historyRecovered, historyMissed atomic.Uint64
	// historyFromBus counts the recoveries a HistorySource served, and
	// historyUnanchored the catch-ups whose anchor read failed.
	historyFromBus, historyUnanchored atomic.Uint64
}

// HoldStarted counts a held connection of kind k, from its first
// subscription to its end; the holder calls HoldEnded once when it ends.
func (h *Hub) HoldStarted(k Kind) {
	if !k.valid() {
		return
	}
	h.counts.holds[k].Add(1)
	h.counts.holdsTotal[k].Add(1)
}

// HoldEnded counts the end of a hold HoldStarted counted, with its reason.
func (h *Hub) HoldEnded(k Kind, r DisconnectReason) {
	if !k.valid() || int(r) >= NumDisconnectReasons {
		return
	}
	h.counts.holds[k].Add(-1)
	h.counts.disconnects[k][r].Add(1)
}

// CountDrop counts n items dropped for reason r by a holder, such as a
// content filter that kept an item from its client.
func (h *Hub) CountDrop(r DropReason, n int) {
	if int(r) >= NumDropReasons || n <= 0 {
		return
	}
	h.counts.drops[r].Add(uint64(n))
}

// Counters is a snapshot of the hub's counts by reason and transport, for
// metrics. Arrays indexed by Kind leave index 0 unused.
type Counters struct {
	// Channels is the channels with local subscribers now.
	Channels int64
	// Published counts items given to Publish; Reordered, items the
	// sequencer held and delivered later (as in Stats).
	Published, Reordered uint64
	// Dropped counts items that did not reach someone, by reason.
	Dropped [NumDropReasons]uint64
	// Delivered counts items enqueued to subscribers, by transport.
	Delivered [NumKinds]uint64
	// Holds is the held connections now, and HoldsTotal those started, by
	// transport.
	Holds      [NumKinds]int64
	HoldsTotal [NumKinds]uint64
	// Disconnects counts ended holds by transport and reason.
	Disconnects [NumKinds][NumDisconnectReasons]uint64
	// HistoryRecovered and HistoryMissed count the prev-ids the history
	// caught up and those it could not; HistoryItems and HistoryBytes are
	// its size now.
	HistoryRecovered, HistoryMissed uint64
	HistoryItems, HistoryBytes      int64
	// HistoryFromBus counts the recoveries (in HistoryRecovered) the bus's
	// shared history served because this node's ring did not know the
	// prev-id; HistoryUnanchored, those whose live items were released
	// without the second read confirming that nothing fell between
	// (the bus's history failed, or live items carry no id).
	HistoryFromBus, HistoryUnanchored uint64
}

// Counters returns a snapshot of the counts by reason and transport; it
// reads atomics only, so a metrics scrape never waits on the hub's locks.
func (h *Hub) Counters() Counters {
	c := Counters{Channels: h.channels.Load(), Published: h.published.Load(), Reordered: h.reordered.Load(),
		HistoryRecovered: h.counts.historyRecovered.Load(), HistoryMissed: h.counts.historyMissed.Load(),
		HistoryFromBus: h.counts.historyFromBus.Load(), HistoryUnanchored: h.counts.historyUnanchored.Load(),
		HistoryItems: h.history.entries.Load(), HistoryBytes: h.history.bytes.Load()}
	for r := range c.Dropped {
		c.Dropped[r] = h.counts.drops[r].Load()
	}
	c.Dropped[DropDuplicate] += h.duplicates.Load()
	c.Dropped[DropSequencerTimeout] += h.sequencerTimeouts.Load()
	for k := range numKinds {
		c.Delivered[k] = h.counts.delivered[k].Load()
		c.Holds[k] = h.counts.holds[k].Load()
		c.HoldsTotal[k] = h.counts.holdsTotal[k].Load()
		for r := range NumDisconnectReasons {
			c.Disconnects[k][r] = h.counts.disconnects[k][r].Load()
		}
	}
	return c
}
