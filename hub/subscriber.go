package hub

import (
	"sync"
	"sync/atomic"

	"github.com/caddy-grip/grip/formats"
)

// Kind is the transport of a subscriber; it selects which format of a
// published item the subscriber receives.
type Kind uint8

// The subscriber kinds, one per GRIP transport.
const (
	// KindResponse is a response hold (long-poll); it receives http-response.
	KindResponse Kind = iota + 1
	// KindStream is a stream hold (HTTP streaming, SSE); it receives http-stream.
	KindStream
	// KindWebSocket is a WebSocket session; it receives ws-message.
	KindWebSocket
)

// numKinds bounds arrays indexed by Kind (index 0 is unused).
const numKinds = int(KindWebSocket) + 1

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case KindResponse:
		return "response"
	case KindStream:
		return "stream"
	case KindWebSocket:
		return "websocket"
	}
	return "unknown"
}

// valid reports whether k is one of the defined kinds.
func (k Kind) valid() bool { return k >= KindResponse && k <= KindWebSocket }

// carries reports whether it has the format that subscribers of kind k receive.
func (k Kind) carries(it *formats.Item) bool {
	switch k {
	case KindResponse:
		return it.HTTPResponse != nil
	case KindStream:
		return it.HTTPStream != nil
	case KindWebSocket:
		return it.WSMessage != nil
	}
	return false
}

// CloseReason says why the hub ended a subscriber from its side, so that the
// holder can answer the client accordingly.
type CloseReason uint8

// The reasons the hub ends a subscriber.
const (
	// ReasonNone means the hub has not ended the subscriber.
	ReasonNone CloseReason = iota
	// ReasonSlow means its queue overflowed (the DisconnectSlow policy).
	ReasonSlow
	// ReasonDrain means the server is shutting down.
	ReasonDrain
	// ReasonHubClosed means the hub was closed.
	ReasonHubClosed
)

// String names the reason for logs and metrics.
func (r CloseReason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonSlow:
		return "slow"
	case ReasonDrain:
		return "drain"
	case ReasonHubClosed:
		return "hub-closed"
	}
	return "unknown"
}

// Delivery is one item queued for one subscriber, with the channel it came on.
type Delivery struct {
	Channel string
	Item    *formats.Item
}

// Subscriber is one held connection as the hub sees it: a bounded queue of
// deliveries that the hub fills without blocking and the holder drains.
type Subscriber struct {
	kind   Kind
	ready  chan struct{} // cap 1; a token means deliveries may be pending
	closed chan struct{} // closed by end

	mu     sync.Mutex
	queue  []Delivery
	qbytes int
	woken  bool       // a token was sent since the last Take
	round  *wakeRound // the channel wake that sent it, if paced
	ended  bool
	reason CloseReason
	chans  map[string]struct{}  // channels subscribed, kept by the hub
	held   map[string]*heldBack // channels catching up from a HistorySource
	// replayed are, per channel caught up from a HistorySource, the ids of
	// history items whose live copy may still be on its way (see
	// releaseHeldBack).
	replayed map[string]map[string]struct{}

	filt atomic.Pointer[subFilters] // meta and filters; nil when none
}

// NewSubscriber makes a subscriber for a connection of the given transport.
func NewSubscriber(kind Kind) *Subscriber {
	return &Subscriber{
		kind:   kind,
		ready:  make(chan struct{}, 1),
		closed: make(chan struct{}),
		chans:  make(map[string]struct{}),
	}
}

// Kind returns the transport the subscriber was made for.
func (s *Subscriber) Kind() Kind { return s.kind }

// Ready is signalled when deliveries are pending; the holder then calls
// Take. The channel has capacity one and is never closed. A busy channel
// may hold a new delivery back for up to Config.WakeInterval before it
// signals, so that one wake-up carries several (see pacing.go).
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// Pending reports whether deliveries are queued, signalled or not yet.
func (s *Subscriber) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// Closed is closed when the hub ends the subscriber (overflow, drain, hub
// close); Reason then says why. After ReasonSlow the queue is discarded;
// after ReasonDrain or ReasonHubClosed, Take still returns what was queued.
func (s *Subscriber) Closed() <-chan struct{} { return s.closed }

// Reason says why the hub ended the subscriber, or ReasonNone.
func (s *Subscriber) Reason() CloseReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// Take appends every pending delivery to dst in delivery order and empties
// the queue, so the holder can write a whole batch per wake-up.
func (s *Subscriber) Take(dst []Delivery) []Delivery {
	s.mu.Lock()
	dst = append(dst, s.queue...)
	s.resetQueueLocked()
	s.woken = false
	r := s.round
	s.round = nil
	s.mu.Unlock()
	r.taken()
	return dst
}

// Channels returns the channels the subscriber is currently subscribed to,
// in no particular order.
func (s *Subscriber) Channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.chans))
	for name := range s.chans {
		out = append(out, name)
	}
	return out
}

// maxKeptQueue is the capacity above which an emptied queue's array is
// released rather than reused, so a burst does not pin memory.
const maxKeptQueue = 256

func (s *Subscriber) resetQueueLocked() {
	if cap(s.queue) > maxKeptQueue {
		s.queue = nil
	} else {
		clear(s.queue)
		s.queue = s.queue[:0]
	}
	s.qbytes = 0
}

// enqueueResult says what enqueue did with one delivery.
type enqueueResult uint8

const (
	enqueueSkipped    enqueueResult = iota // the subscriber had already ended
	enqueueDone                            // queued
	enqueueOverflowed                      // over a limit: the subscriber was ended as slow
)

// enqueue appends one delivery in O(1) without blocking, and signals Ready
// if wake is set, on behalf of round r (nil when not paced). A delivery
// that would take the queue over maxItems or maxBytes ends the subscriber
// with ReasonSlow instead, and lost is the items that did not reach it:
// this one and the discarded queue. A single item into an empty queue is
// always accepted, so one large item never counts as slowness.
func (s *Subscriber) enqueue(channel string, it *formats.Item, cost, maxItems, maxBytes int, wake bool, r *wakeRound) (res enqueueResult, lost int) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return enqueueSkipped, 0
	}
	if s.replayed != nil && s.skipReplayedLocked(channel, it.ID) {
		s.mu.Unlock()
		return enqueueSkipped, 0
	}
	if s.held != nil {
		if res, lost, held := s.holdLocked(channel, it, cost, maxItems, maxBytes); held {
			s.mu.Unlock()
			return res, lost
		}
	}
	n := len(s.queue)
	if n > 0 && (n+1 > maxItems || s.qbytes+cost > maxBytes) {
		s.endLocked(ReasonSlow)
		s.mu.Unlock()
		return enqueueOverflowed, n + 1
	}
	s.queue = append(s.queue, Delivery{Channel: channel, Item: it})
	s.qbytes += cost
	if wake {
		s.signalLocked(r)
	}
	s.mu.Unlock()
	return enqueueDone, 0
}

// wake signals Ready, on behalf of round r (or nil), if deliveries are
// queued that no token announced yet.
func (s *Subscriber) wake(r *wakeRound) {
	s.mu.Lock()
	if len(s.queue) > 0 && !s.ended {
		s.signalLocked(r)
	}
	s.mu.Unlock()
}

// signalLocked sends the Ready token unless one went since the last Take;
// round r, if any, counts it until the holder takes the queue.
func (s *Subscriber) signalLocked(r *wakeRound) {
	if s.woken {
		return
	}
	s.woken = true
	if r != nil {
		r.left.Add(1)
		s.round = r
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// end ends the subscriber with reason; it reports false if it had already ended.
func (s *Subscriber) end(reason CloseReason) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endLocked(reason)
}

func (s *Subscriber) endLocked(reason CloseReason) bool {
	if s.ended {
		return false
	}
	s.ended = true
	s.reason = reason
	if reason == ReasonSlow {
		s.resetQueueLocked()
	}
	// An ended holder may never take its queue; a round must not wait for it.
	s.round.taken()
	s.round = nil
	close(s.closed)
	return true
}
