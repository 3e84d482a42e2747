// Package natsbus joins the hubs of several nodes over NATS: it implements
// hub.Bus with one core NATS subject per channel, followed while the node
// has local subscribers. It imports nothing from Caddy.
package natsbus

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
)

// Defaults for Options.
const (
	DefaultPrefix      = "grip"
	DefaultLinger      = 60 * time.Second
	DefaultShards      = 16
	DefaultShardBuffer = 4096
	// missedInterval rate-limits the missed-items callback.
	missedInterval = time.Second
	// flushTimeout bounds the wait for the server to confirm follows.
	flushTimeout = 5 * time.Second
	// maxIDsPayload is the size past which Publish splits a batch's
	// last-id announcement into several messages.
	maxIDsPayload = 64 << 10
)

// ErrDisconnected is returned by Publish while the NATS connection is down,
// so that publishers are told to retry instead of losing the item.
var ErrDisconnected = errors.New("natsbus: not connected to NATS")

// Options configures a Bus.
type Options struct {
	// URLs are the NATS servers to connect to.
	URLs []string
	// Prefix starts every subject; default "grip".
	Prefix string
	// Name is the client name shown in NATS monitoring.
	Name string
	// Linger is how long a channel stays followed after its last local
	// subscriber leaves; default 60s, as Pushpin's subscription_linger.
	Linger time.Duration
	// Shards is the number of delivery goroutines; default 16.
	Shards int
	// ShardBuffer is how many messages may wait per shard before NATS
	// drops them as a slow consumer; default 4096.
	ShardBuffer int
	// NATS are extra connection options (credentials, TLS, token...).
	NATS []nats.Option
	// LastID, if set, is told the id of every item published by any node
	// on a channel this node does not follow (an empty id for an item
	// without one), so that prev-id recovery sees publishes it did not
	// receive. Items on followed channels reach the receiver instead.
	LastID func(channel, id string)
	// Log, if set, is told of connection events ("disconnected",
	// "reconnected", "slow consumer", "error") and history failures, for
	// the operator's log.
	Log func(event string, err error)
	// History, if set, keeps the channels it covers in a JetStream stream
	// that any node can catch a client up from (see history.go).
	History *HistoryOptions
}

// Stats counts the bus's traffic, for metrics.
type Stats struct {
	// Connected reports the NATS connection up.
	Connected bool
	// Reconnects counts reconnections after the connection was lost.
	Reconnects uint64
	// In and Out count item messages received and sent.
	In, Out uint64
	// SlowConsumer counts the times NATS dropped messages for this node
	// because its delivery shards were full (each time, any number).
	SlowConsumer uint64
	// Dropped counts the messages NATS dropped for this node as a slow
	// consumer.
	Dropped uint64
	// Invalid counts received messages that did not decode.
	Invalid uint64
	// Followed is the number of channels subscribed on NATS, lingering
	// ones included.
	Followed int
	// HistoryOn reports a JetStream history configured; History counts it.
	HistoryOn bool
	History   HistoryStats
}

// Bus is a hub.Bus over a NATS connection.
type Bus struct {
	nc     *nats.Conn
	prefix string
	linger time.Duration
	recv   hub.Receiver
	missed func([]string)
	seed   maphash.Seed
	shards []chan *nats.Msg
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	subs   map[string]*follow
	closed bool

	lastID func(channel, id string)
	idsSub *nats.Subscription

	wmu      sync.Mutex
	waiters  []func(error) // callbacks waiting for the next flush
	flushing bool

	lastMissed atomic.Int64 // unix nanos of the last missed callback

	hist *jsHistory // nil without Options.History
	log  func(event string, err error)

	reconnects, in, out, slow, invalid atomic.Uint64
	droppedGone                        atomic.Uint64 // Dropped of subscriptions since unsubscribed
}

type follow struct {
	sub   *nats.Subscription
	timer *time.Timer // set while lingering
}

// New connects to NATS (retrying forever, in the background if the servers
// are down) and returns a bus handing received items to recv. missed, if
// not nil, is called with every followed channel after a reconnect or a
// slow-consumer drop, when items may have been lost.
func New(o Options, recv hub.Receiver, missed func(channels []string)) (*Bus, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("natsbus: no NATS URL")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Linger <= 0 {
		o.Linger = DefaultLinger
	}
	if o.Shards <= 0 {
		o.Shards = DefaultShards
	}
	if o.ShardBuffer <= 0 {
		o.ShardBuffer = DefaultShardBuffer
	}
	b := &Bus{
		prefix: o.Prefix, linger: o.Linger, recv: recv, missed: missed, lastID: o.LastID,
		seed: maphash.MakeSeed(), done: make(chan struct{}), subs: make(map[string]*follow),
	}
	b.shards = make([]chan *nats.Msg, o.Shards)
	for i := range b.shards {
		b.shards[i] = make(chan *nats.Msg, o.ShardBuffer)
	}
	b.log = o.Log
	logf := b.logf
	if o.History != nil {
		h, err := newHistory(b, *o.History)
		if err != nil {
			return nil, err
		}
		b.hist = h
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
		nats.ReconnectBufSize(-1),
		nats.ReconnectHandler(func(*nats.Conn) {
			b.reconnects.Add(1)
			logf("reconnected", nil)
			b.hist.ensureIfOn()
			b.signalMissed(true)
		}),
		nats.ConnectHandler(func(*nats.Conn) { b.hist.ensureIfOn() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { logf("disconnected", err) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				b.slow.Add(1)
				if b.signalMissed(false) {
					logf("slow consumer", err)
				}
				return
			}
			logf("error", err)
		}),
	}
	opts = append(opts, o.NATS...)
	nc, err := nats.Connect(joinURLs(o.URLs), opts...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connecting: %w", err)
	}
	b.nc = nc
	if b.idsSub, err = nc.Subscribe(IDsSubject(b.prefix), b.receiveIDs); err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: subscribing to last ids: %w", err)
	}
	if b.hist != nil {
		if err := b.hist.start(); err != nil {
			nc.Close()
			return nil, err
		}
	}
	for _, ch := range b.shards {
		b.wg.Add(1)
		go b.deliver(ch)
	}
	return b, nil
}

func (b *Bus) logf(event string, err error) {
	if b.log != nil {
		b.log(event, err)
	}
}

// subject is channel's subject on this bus: its history subject when the
// history stream covers it.
func (b *Bus) subject(channel string) string {
	if b.hist.covers(channel) {
		return HistorySubject(b.prefix, channel)
	}
	return Subject(b.prefix, channel)
}

func joinURLs(urls []string) string {
	s := ""
	for i, u := range urls {
		if i > 0 {
			s += ","
		}
		s += u
	}
	return s
}

// Subject is the NATS subject of channel: the channel's bytes in base64url
// under "<prefix>.ch.", so that any name (dots, spaces, wildcards, unicode)
// is one exact-match token.
func Subject(prefix, channel string) string {
	return prefix + ".ch." + base64.RawURLEncoding.EncodeToString([]byte(channel))
}

// IDsSubject is the subject on which every node announces the ids of the
// items it publishes, and which every node follows.
func IDsSubject(prefix string) string { return prefix + ".ids" }

// Publish sends each item once to its channel's subject; every node that
// follows the channel, this one included, receives it. Then it announces
// the items' channels and ids on IDsSubject, for the nodes that do not
// follow them, and returns once the server has them all, so that an
// accepted publish is not lost in a buffer when the connection drops. It
// fails at once while NATS is unreachable. An item on a channel the
// history stream covers is published on its history subject, which the
// stream captures, so it is stored once and delivered live whether or not
// JetStream answers; Publish then also waits (at most AckTimeout, and only
// while the stream has been answering) for the stream to confirm it.
func (b *Bus) Publish(items []*formats.Item) error {
	if !b.nc.IsConnected() {
		return ErrDisconnected
	}
	// Encode and check every item first, so a batch is refused whole
	// rather than half published.
	msgs := make([][]byte, len(items))
	max := b.nc.MaxPayload()
	for i, it := range items {
		if it == nil {
			continue
		}
		data, err := json.Marshal(it)
		if err != nil {
			return fmt.Errorf("natsbus: encoding item: %w", err)
		}
		if max > 0 && int64(len(data)) > max {
			return fmt.Errorf("%w: item on channel %q is %d bytes encoded, the NATS server's max_payload is %d",
				hub.ErrItemTooLarge, it.Channel, len(data), max)
		}
		msgs[i] = data
	}
	var acks *ackBatch
	for i, it := range items {
		if it == nil {
			continue
		}
		var err error
		if b.hist.covers(it.Channel) {
			m := b.hist.historyMsg(it, msgs[i])
			b.hist.request(&acks, m)
			err = b.nc.PublishMsg(m)
		} else {
			err = b.nc.Publish(Subject(b.prefix, it.Channel), msgs[i])
		}
		if err != nil {
			acks.start()
			if errors.Is(err, nats.ErrReconnectBufExceeded) || !b.nc.IsConnected() {
				return ErrDisconnected
			}
			return fmt.Errorf("natsbus: publishing: %w", err)
		}
		b.out.Add(1)
	}
	acks.start()
	if err := b.publishIDs(items); err != nil {
		return err
	}
	done := make(chan error, 1)
	b.afterFlush(func(err error) { done <- err })
	if err := <-done; err != nil {
		if !b.nc.IsConnected() {
			return ErrDisconnected
		}
		return fmt.Errorf("natsbus: confirming publish: %w", err)
	}
	acks.wait()
	return nil
}

// publishIDs announces each item's channel and id, as JSON pairs, in
// messages of at most about maxIDsPayload bytes.
func (b *Bus) publishIDs(items []*formats.Item) error {
	var pairs [][2]string
	size := 0
	send := func() error {
		if len(pairs) == 0 {
			return nil
		}
		data, err := json.Marshal(pairs)
		if err != nil {
			return fmt.Errorf("natsbus: encoding ids: %w", err)
		}
		pairs, size = pairs[:0], 0
		if err := b.nc.Publish(IDsSubject(b.prefix), data); err != nil {
			if !b.nc.IsConnected() {
				return ErrDisconnected
			}
			return fmt.Errorf("natsbus: publishing ids: %w", err)
		}
		return nil
	}
	for _, it := range items {
		if it == nil {
			continue
		}
		pairs = append(pairs, [2]string{it.Channel, it.ID})
		if size += len(it.Channel) + len(it.ID) + 8; size >= maxIDsPayload {
			if err := send(); err != nil {
				return err
			}
		}
	}
	return send()
}

// receiveIDs hands the announced ids of channels this node does not follow
// to the LastID callback, in the order they were announced.
func (b *Bus) receiveIDs(m *nats.Msg) {
	if b.lastID == nil {
		return
	}
	var pairs [][2]string
	if err := json.Unmarshal(m.Data, &pairs); err != nil {
		b.invalid.Add(1)
		return
	}
	for _, p := range pairs {
		b.mu.Lock()
		_, followed := b.subs[p[0]]
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return
		}
		if !followed {
			b.lastID(p[0], p[1])
		}
	}
}

// Follow subscribes to channel's subject, or cancels its pending unfollow.
// It never blocks on the network.
func (b *Bus) Follow(channel string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("natsbus: closed")
	}
	if f, ok := b.subs[channel]; ok {
		if f.timer != nil {
			f.timer.Stop()
			f.timer = nil
		}
		return nil
	}
	shard := b.shards[maphash.String(b.seed, channel)%uint64(len(b.shards))]
	sub, err := b.nc.ChanSubscribe(b.subject(channel), shard)
	if err != nil {
		return fmt.Errorf("natsbus: subscribing: %w", err)
	}
	b.subs[channel] = &follow{sub: sub}
	return nil
}

// Unfollow unsubscribes from channel's subject after the linger, unless the
// channel is followed again meanwhile.
func (b *Bus) Unfollow(channel string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.subs[channel]
	if !ok || f.timer != nil {
		return nil
	}
	f.timer = time.AfterFunc(b.linger, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if cur, ok := b.subs[channel]; ok && cur == f && f.timer != nil {
			delete(b.subs, channel)
			if n, err := f.sub.Dropped(); err == nil {
				b.droppedGone.Add(uint64(n))
			}
			_ = f.sub.Unsubscribe()
		}
	})
	return nil
}

// Flush waits until the server has processed every subscription sent so
// far, so that a caller knows publishes from other nodes now reach it.
func (b *Bus) Flush(timeout time.Duration) error { return b.nc.FlushTimeout(timeout) }

// WhenFollowed calls fn, from another goroutine, once the server has
// confirmed every Follow made before the call (or the confirmation failed:
// a reconnect then reports the followed channels as missed).
func (b *Bus) WhenFollowed(fn func()) { b.afterFlush(func(error) { fn() }) }

// afterFlush calls fn with the result of a flush (a round trip to the
// server) started after the call. Callers that arrive during a flush share
// the next one, so a burst of publishes or first subscriptions costs one
// round trip.
func (b *Bus) afterFlush(fn func(error)) {
	b.wmu.Lock()
	b.waiters = append(b.waiters, fn)
	start := !b.flushing
	b.flushing = true
	b.wmu.Unlock()
	if start {
		go b.flushWaiters()
	}
}

func (b *Bus) flushWaiters() {
	for {
		b.wmu.Lock()
		w := b.waiters
		b.waiters = nil
		if len(w) == 0 {
			b.flushing = false
			b.wmu.Unlock()
			return
		}
		b.wmu.Unlock()
		err := b.nc.FlushTimeout(flushTimeout)
		for _, fn := range w {
			fn(err)
		}
	}
}

// Connected reports whether the NATS connection is up.
func (b *Bus) Connected() bool { return b.nc.IsConnected() }

// Stats returns the counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	n := len(b.subs)
	dropped := b.droppedGone.Load()
	for _, f := range b.subs {
		if d, err := f.sub.Dropped(); err == nil {
			dropped += uint64(d)
		}
	}
	b.mu.Unlock()
	st := Stats{Dropped: dropped, Connected: b.nc.IsConnected(), Reconnects: b.reconnects.Load(), In: b.in.Load(),
		Out: b.out.Load(), SlowConsumer: b.slow.Load(), Invalid: b.invalid.Load(), Followed: n}
	if b.hist != nil {
		st.HistoryOn, st.History = true, b.hist.stats()
	}
	return st
}

// Close unsubscribes, closes the connection and stops the delivery
// goroutines.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for _, f := range b.subs {
		if f.timer != nil {
			f.timer.Stop()
		}
	}
	b.subs = nil
	b.mu.Unlock()
	b.hist.close()
	b.nc.Close()
	close(b.done)
	b.wg.Wait()
	return nil
}

// followed lists the followed channels.
func (b *Bus) followed() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.subs))
	for ch := range b.subs {
		out = append(out, ch)
	}
	return out
}

// signalMissed tells the hub that every followed channel may have missed
// items; slow-consumer signals are rate-limited, reconnects always run. It
// reports whether it signalled.
func (b *Bus) signalMissed(always bool) bool {
	if b.missed == nil {
		return false
	}
	now := time.Now().UnixNano()
	last := b.lastMissed.Load()
	if !always && now-last < int64(missedInterval) {
		return false
	}
	if !b.lastMissed.CompareAndSwap(last, now) && !always {
		return false
	}
	if chans := b.followed(); len(chans) > 0 {
		go b.missed(chans) // never from a NATS callback's goroutine under our locks
	}
	return true
}

// deliver runs one shard: it decodes messages in arrival order (one
// subject always lands on one shard, so a publisher's order is kept) and
// hands whatever is queued to the receiver in one batch.
func (b *Bus) deliver(ch chan *nats.Msg) {
	defer b.wg.Done()
	const maxBatch = 64
	batch := make([]*formats.Item, 0, maxBatch)
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-b.done:
			return
		}
		batch = append(batch[:0], b.decode(m)...)
	more:
		for len(batch) < maxBatch {
			select {
			case m = <-ch:
				batch = append(batch, b.decode(m)...)
			default:
				break more
			}
		}
		if len(batch) > 0 && b.recv != nil {
			b.recv(batch)
		}
		clear(batch)
	}
}

func (b *Bus) decode(m *nats.Msg) []*formats.Item {
	it := new(formats.Item)
	if err := json.Unmarshal(m.Data, it); err != nil || m.Subject != b.subject(it.Channel) {
		b.invalid.Add(1)
		return nil
	}
	b.in.Add(1)
	return []*formats.Item{it}
}

var (
	_ hub.Bus             = (*Bus)(nil)
	_ hub.FollowConfirmer = (*Bus)(nil)
)
