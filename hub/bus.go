package hub

import (
	"errors"

	"github.com/caddy-grip/grip/formats"
)

// ErrItemTooLarge is what a bus's Publish wraps when an item cannot travel
// on it at all (larger than a NATS server's max_payload), so that the
// publisher is told the item is too large instead of to retry.
var ErrItemTooLarge = errors.New("item too large for the bus")

// Bus is the seam between nodes: Hub.Publish hands items to the bus, and the
// bus hands them to the receive path (Hub.Receive) of every node that follows
// their channels, this one included. The in-memory bus and the NATS bus
// implement it; nothing else knows which one runs.
type Bus interface {
	// Publish sends items to every node that follows their channels,
	// including this one.
	Publish(items []*formats.Item) error
	// Follow tells the bus this node now has local subscribers on channel.
	// It must not call the Receiver synchronously (see LOCKS.md); after a
	// failed Follow the hub retries on the channel's next change.
	Follow(channel string) error
	// Unfollow tells the bus this node no longer has any on channel.
	Unfollow(channel string) error
	// Close releases the bus; the hub closes its bus when it is closed or
	// replaced.
	Close() error
}

// FollowConfirmer is a Bus whose Follow takes effect after it returns (a
// NATS subscription reaches the server asynchronously). WhenFollowed calls
// fn, possibly from another goroutine, once every Follow made so far is in
// force, so that the hub's holders time update_on_first_subscription from
// the moment other nodes' publishes reach this one.
type FollowConfirmer interface {
	WhenFollowed(fn func())
}

// Receiver is the receive path a bus calls with items arriving for followed
// channels; normally Hub.Receive.
type Receiver func(items []*formats.Item)

// NewLocalBus returns the in-memory single-node bus: Publish calls recv
// directly and synchronously, and following is a no-op.
func NewLocalBus(recv Receiver) Bus { return &localBus{recv: recv} }

type localBus struct{ recv Receiver }

func (b *localBus) Publish(items []*formats.Item) error {
	if b.recv != nil {
		b.recv(items)
	}
	return nil
}

func (b *localBus) Follow(string) error   { return nil }
func (b *localBus) Unfollow(string) error { return nil }
func (b *localBus) Close() error          { return nil }

// WhenFollowed calls fn once the bus follows every channel subscribed so
// far: at once with a bus whose Follow is immediate, later (from another
// goroutine) with a FollowConfirmer.
func (h *Hub) WhenFollowed(fn func()) {
	if c, ok := h.currentBus().(FollowConfirmer); ok {
		c.WhenFollowed(fn)
		return
	}
	fn()
}
