// Package hub holds GRIP channels and their subscribers: it sequences and
// de-duplicates published items (formats.Item) and fans each one out to
// every subscriber without ever waiting on a slow one. It imports nothing
// from Caddy, so that another server could embed it.
package hub

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-grip/grip/formats"
	"go.uber.org/zap"
)

// Config holds the hub's limits and windows; Configure swaps it live.
type Config struct {
	// QueueBytes is how many bytes (Item.Cost) may wait in one subscriber's
	// queue before it is disconnected as slow; default 1<<20.
	QueueBytes int
	// QueueItems is how many items may wait in one subscriber's queue before
	// it is disconnected as slow; default 1000.
	QueueItems int
	// IDCacheTTL is the de-duplication window for (channel, id); default
	// 60s, negative disables de-duplication.
	IDCacheTTL time.Duration
	// MessageWait is how long the sequencer holds an out-of-order item
	// before delivering it anyway; default 5s.
	MessageWait time.Duration
	// SequencerMax is how many out-of-order items the sequencer holds per
	// channel; default 100.
	SequencerMax int
	// SequencerBytes caps the bytes (Item.Cost) of the out-of-order items
	// the sequencer holds per channel; an item past it is dropped and
	// counted in SequencerDropped. Default 4 MiB.
	SequencerBytes int
	// DedupBytes is the memory budget of the (channel, id) de-dup cache;
	// when full, the oldest ids are forgotten early. Default 64 MiB.
	DedupBytes int
	// LastIDBytes is the memory budget, names and ids counted, of the
	// store of every channel's last published id; when full, the oldest
	// channels are forgotten. Read when the hub is made. Default 64 MiB.
	LastIDBytes int
	// WakeInterval paces the wake-ups of a busy channel's subscribers. A
	// channel wakes them in rounds: a publish wakes them at once only if
	// the last round is over (nearly all its holders took their queues, or
	// none did for WakeInterval, so the rest are stuck and left out) and
	// ended WakeInterval ago or more; otherwise it is queued, and one
	// timer per channel starts the next round then, so each holder writes
	// the whole run at once instead of one write per message. A round that
	// stays busy for 40 × WakeInterval or more (a channel too wide to gain)
	// lets publishes wake at once, as without pacing. Hints
	// (Update), unsubscribing and ending a subscriber wake at once. Latency
	// is unchanged for a channel published to less often than a round
	// takes plus WakeInterval. Default 10ms; negative wakes on every
	// publish.
	WakeInterval time.Duration
	// History keeps matching channels' last items for catching clients
	// up (SubscribeAfter); the zero value keeps none.
	History HistoryConfig
}

// Defaults, from Pushpin where it has one: message_wait and id_cache_ttl
// as its shipped pushpin.conf sets them, and its sequencer's 100 pending
// items per channel (handler/sequencer.cpp).
const (
	DefaultQueueBytes   = 1 << 20
	DefaultQueueItems   = 1000
	DefaultIDCacheTTL   = 60 * time.Second
	DefaultMessageWait  = 5 * time.Second
	DefaultSequencerMax = 100
	// DefaultSequencerBytes, DefaultDedupBytes and DefaultLastIDBytes bound
	// the hub's caches in bytes.
	DefaultSequencerBytes = 4 << 20
	DefaultDedupBytes     = 64 << 20
	DefaultLastIDBytes    = 64 << 20
	DefaultWakeInterval   = 10 * time.Millisecond
)

// WithDefaults returns c with every zero (or invalid) field set to its
// default; a negative IDCacheTTL or WakeInterval is kept, since it turns
// de-duplication or wake pacing off.
func (c Config) WithDefaults() Config {
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.QueueItems <= 0 {
		c.QueueItems = DefaultQueueItems
	}
	if c.IDCacheTTL == 0 {
		c.IDCacheTTL = DefaultIDCacheTTL
	}
	if c.MessageWait <= 0 {
		c.MessageWait = DefaultMessageWait
	}
	if c.SequencerMax <= 0 {
		c.SequencerMax = DefaultSequencerMax
	}
	if c.WakeInterval == 0 {
		c.WakeInterval = DefaultWakeInterval
	}
	if c.SequencerBytes <= 0 {
		c.SequencerBytes = DefaultSequencerBytes
	}
	if c.DedupBytes <= 0 {
		c.DedupBytes = DefaultDedupBytes
	}
	if c.LastIDBytes <= 0 {
		c.LastIDBytes = DefaultLastIDBytes
	}
	return c
}

// Stats is a snapshot of the hub's gauges and counters, for metrics.
type Stats struct {
	// Channels and Subscribers are current gauges (channels with local
	// subscribers; subscribers with at least one channel).
	Channels, Subscribers int
	// Published counts items given to Publish on this node.
	Published uint64
	// Delivered counts deliveries: published items enqueued to a
	// subscriber (Update's hints are not counted); Counters has them by
	// transport.
	Delivered uint64
	// Duplicates counts items dropped by the (channel, id) de-dup window.
	Duplicates uint64
	// Reordered counts items the sequencer held and delivered later, whether
	// their predecessor arrived or MessageWait ran out.
	Reordered uint64
	// SequencerTimeouts counts the held items delivered because MessageWait
	// ran out (a subset of Reordered).
	SequencerTimeouts uint64
	// SlowDisconnects counts subscribers ended with ReasonSlow.
	SlowDisconnects uint64
	// SequencerDropped counts held or to-be-held items the sequencer
	// dropped: a second item on the same prev-id, the SequencerMax limit, or
	// the channel losing its last subscriber.
	SequencerDropped uint64
	// The caches' current sizes: the sequencer's held items, the de-dup
	// cache's ids and the last-id store's channels, each in entries and in
	// bytes. DedupBytes counts the memory its maps and queues hold, which
	// follows their peak until they are rebuilt after a burst expires.
	SequencerEntries, SequencerBytes int
	DedupEntries, DedupBytes         int
	LastIDEntries, LastIDBytes       int
}

// Hub holds channels and their subscribers on one node: it de-duplicates,
// sequences and fans out published items. All methods are safe for
// concurrent use.
type Hub struct {
	cfg atomic.Pointer[Config]
	log atomic.Pointer[zap.Logger]
	// warnLog is log, rate-limited (see RateLimited).
	warnLog atomic.Pointer[zap.Logger]
	// onNoChannel, set by tests before any publish, runs when items find
	// no channel to deliver to, so that a test can subscribe at exactly
	// that moment.
	onNoChannel func(channel string)

	bus   atomic.Pointer[busBox]
	busMu sync.Mutex // serialises SetBus and Close of the bus

	seed   maphash.Seed
	epoch  time.Time // origin of the monotonic clock the de-dup cache uses
	shards [numShards]shard
	dedup  *dedup
	// lastPublished is every channel's last published id, for recovery.
	lastPublished *lastIDs
	closed        atomic.Bool
	recover       recoverQueue // channels Missed has yet to update
	history       *history     // the channels' last items, when configured
	drained       atomic.Bool  // Drain ran: the server is exiting

	channels, subscribers atomic.Int64

	published, duplicates, reordered   atomic.Uint64
	sequencerTimeouts, slowDisconnects atomic.Uint64
	sequencerDropped                   atomic.Uint64
	seqHeld, seqBytes                  atomic.Int64
	counts                             counters
}

type busBox struct{ b Bus }

// New returns a hub with cfg (defaults filled in) and a local bus.
func New(cfg Config) *Hub {
	d := cfg.WithDefaults()
	h := &Hub{seed: maphash.MakeSeed(), epoch: time.Now(), dedup: newDedup(), lastPublished: newLastIDs(DefaultLastIDChannels, d.LastIDBytes), history: newHistory()}
	for i := range h.shards {
		h.shards[i].m = make(map[string]*channel)
		h.shards[i].followed = make(map[string]struct{})
	}
	h.Configure(cfg)
	h.bus.Store(&busBox{NewLocalBus(h.Receive)})
	return h
}

// Configure replaces the configuration atomically. Items being received
// keep the configuration they started with.
func (h *Hub) Configure(cfg Config) {
	cfg = cfg.WithDefaults()
	h.cfg.Store(&cfg)
}

func (h *Hub) config() *Config { return h.cfg.Load() }

// Config returns the configuration in force, defaults filled in, so that a
// publisher can refuse a batch that subscriber queues could not hold.
func (h *Hub) Config() Config { return *h.config() }

// SetLogger sets the logger; nil means no logging.
func (h *Hub) SetLogger(l *zap.Logger) {
	h.log.Store(l)
	h.warnLog.Store(RateLimited(l))
}

// warner is the rate-limited logger for warnings that can repeat per item.
func (h *Hub) warner() *zap.Logger { return h.warnLog.Load() }

func (h *Hub) logger() *zap.Logger { return h.log.Load() }

func (h *Hub) currentBus() Bus { return h.bus.Load().b }

// SetBus makes b the bus that Publish sends through, tells it to follow
// every channel that has local subscribers, and closes the previous bus.
// nil restores a local bus.
func (h *Hub) SetBus(b Bus) {
	if b == nil {
		b = NewLocalBus(h.Receive)
	}
	h.busMu.Lock()
	defer h.busMu.Unlock()
	old := h.bus.Swap(&busBox{b})
	for i := range h.shards {
		sh := &h.shards[i]
		sh.fmu.Lock()
		clear(sh.followed)
		sh.mu.RLock()
		chans := make([]*channel, 0, len(sh.m))
		for _, c := range sh.m {
			chans = append(chans, c)
		}
		sh.mu.RUnlock()
		for _, c := range chans {
			if err := b.Follow(c.name); err != nil {
				c.followed.Store(false)
				h.logError("bus follow failed", c.name, err)
				continue
			}
			sh.followed[c.name] = struct{}{}
			c.followed.Store(true)
		}
		sh.fmu.Unlock()
	}
	if old != nil && old.b != b {
		if err := old.b.Close(); err != nil {
			h.logError("closing previous bus failed", "", err)
		}
	}
}

func (h *Hub) hash(name string) uint64 { return maphash.String(h.seed, name) }

// Subscribe adds s to channel. On a closed or drained hub it ends s at once
// with ReasonHubClosed or ReasonDrain; an ended subscriber or one of an unknown kind is ignored.
// first reports that s is the channel's first subscriber on this node, so
// that the holder may schedule an Update for publishes that raced it.
func (h *Hub) Subscribe(s *Subscriber, channel string) (first bool) {
	return h.subscribeWith(s, channel, nil)
}

// subscribeWith is Subscribe, running during (if set) under the channel's
// lock right after s joined it.
func (h *Hub) subscribeWith(s *Subscriber, channel string, during func(*channel)) (first bool) {
	if s == nil || !s.kind.valid() {
		return false
	}
	if r := h.endReason(); r != ReasonNone {
		s.end(r)
		return false
	}
	hash := h.hash(channel)
	for {
		c, created := h.getOrCreate(hash, channel)
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			continue
		}
		added := c.addLocked(s)
		if added && during != nil {
			during(c)
		}
		removed := !added && c.removeIfEmptyLocked()
		first = added && created
		c.mu.Unlock()
		if created || removed || !c.followed.Load() {
			h.syncFollow(hash, channel)
		}
		break
	}
	// Close and Drain set their flag before they end everyone; if one ran
	// after our first check, either its sweep saw s or this check sees it.
	if r := h.endReason(); r != ReasonNone {
		s.end(r)
		h.UnsubscribeAll(s)
		return false
	}
	return first
}

// updateItem is the hint Update delivers: it asks response holds to
// re-request the origin and stream holds to fetch their next link.
var updateItem = formats.Item{
	HTTPResponse: &formats.HTTPResponse{Action: formats.ActionHint},
	HTTPStream:   &formats.HTTPStream{Action: formats.ActionHint},
}

// Update hints every HTTP subscriber of channel on this node, as a publish
// of a hint would, but locally and without touching ids or the sequencer.
// Holders call it shortly after a channel's first subscription, so that an
// item published between the origin's answer and the subscription is
// recovered from the origin (Pushpin's update_on_first_subscription).
func (h *Hub) Update(channel string) {
	hash := h.hash(channel)
	c := h.lookup(hash, channel)
	if c == nil {
		return
	}
	it := updateItem
	it.Channel = channel
	b := batch{h: h, cfg: h.config(), now: time.Now(), urgent: true, local: true}
	c.mu.Lock()
	if !c.dead {
		c.fanoutLocked(&b, &it)
	}
	c.mu.Unlock()
	b.finish()
}

// endReason is why a new subscriber must end at once: the hub is closed,
// or drained for exit; ReasonNone otherwise.
func (h *Hub) endReason() CloseReason {
	switch {
	case h.closed.Load():
		return ReasonHubClosed
	case h.drained.Load():
		return ReasonDrain
	}
	return ReasonNone
}

// Unsubscribe removes s from channel; the channel goes away with its last
// subscriber, and with it the channel's last id and held items.
func (h *Hub) Unsubscribe(s *Subscriber, channel string) {
	if s == nil {
		return
	}
	hash := h.hash(channel)
	for {
		c := h.lookup(hash, channel)
		if c == nil {
			return
		}
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			continue
		}
		c.removeLocked(s)
		removed := c.removeIfEmptyLocked()
		c.mu.Unlock()
		if removed {
			h.syncFollow(hash, channel)
		}
		return
	}
}

// UnsubscribeAll removes s from every channel; the holder defers it for
// when the connection ends.
func (h *Hub) UnsubscribeAll(s *Subscriber) {
	if s == nil {
		return
	}
	for _, name := range s.Channels() {
		h.Unsubscribe(s, name)
	}
}

// Publish sends items through the bus to every node that follows their
// channels. With the local bus it returns once every item is enqueued to
// subscribers or held by the sequencer; it never blocks on a subscriber.
// Nil items are skipped. It returns the bus's error, such as a NATS bus
// being disconnected, so that the publisher can be told to retry.
func (h *Hub) Publish(items []*formats.Item) error {
	n := 0
	for _, it := range items {
		if it != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := h.currentBus().Publish(items); err != nil {
		h.logError("bus publish failed", items[0].Channel, err)
		return err
	}
	h.published.Add(uint64(n))
	return nil
}

// Receive is the hub's receive path, the Receiver a bus calls with items
// arriving for this node: per item de-dup, then the sequencer, then fan-out.
// Consecutive items on one channel are handled under one lock, so a racing
// Subscribe gets all of them or a suffix, never a gap.
func (h *Hub) Receive(items []*formats.Item) {
	b := batch{h: h, cfg: h.config(), now: time.Now()}
	for i := 0; i < len(items); {
		if items[i] == nil {
			i++
			continue
		}
		name := items[i].Channel
		j := i + 1
		for j < len(items) && items[j] != nil && items[j].Channel == name {
			j++
		}
		h.receiveRun(&b, name, items[i:j])
		i = j
	}
	b.finish()
}

// receiveRun handles items that all belong to channel name.
func (h *Hub) receiveRun(b *batch, name string, run []*formats.Item) {
	hash := h.hash(name)
	// De-duplicate and record the last published id before looking the
	// channel up: a holder that subscribes after the lookup, and so misses
	// these items, then finds the new id when it checks its prev-id.
	ttl := b.cfg.IDCacheTTL
	now := int64(b.now.Sub(h.epoch))
	keep := b.keep[:0]
	for _, it := range run {
		if it.ID != "" && ttl > 0 && h.dedup.check(hash, name, it.ID, now, ttl, b.cfg.DedupBytes) {
			h.duplicates.Add(1)
			continue
		}
		h.lastPublished.set(hash, name, it.ID)
		keep = append(keep, it)
	}
	b.keep = keep
	if len(keep) == 0 {
		return
	}
	var c *channel
	hist := &b.cfg.History
	keepHistory := hist.enabled(name)
	for {
		if keepHistory {
			// The history of a channel with no subscribers here is kept
			// under its shard's lock with the channel seen absent, so a
			// SubscribeAfter (which reads the history under the channel's
			// lock, then this one) either finds these items or receives
			// them live.
			sh := h.history.shard(hash)
			sh.mu.Lock()
			if c = h.lookup(hash, name); c == nil {
				for _, it := range keep {
					h.history.appendLocked(sh, hist, it, b.now)
				}
			}
			sh.mu.Unlock()
		} else {
			c = h.lookup(hash, name)
		}
		if c == nil {
			if h.onNoChannel != nil {
				h.onNoChannel(name)
			}
			return
		}
		c.mu.Lock()
		if !c.dead {
			break
		}
		c.mu.Unlock()
	}
	for _, it := range keep {
		c.receiveLocked(b, it)
	}
	c.mu.Unlock()
}

// LastID returns the sequencer's last id on channel: the id the next item's
// prev-id must match to pass at once. known is false when there is none (no
// subscribers, nothing sequenced yet, or the last item had no id). Recovery
// uses LastPublishedID instead, which outlives the channel's subscribers.
func (h *Hub) LastID(channel string) (id string, known bool) {
	hash := h.hash(channel)
	for {
		c := h.lookup(hash, channel)
		if c == nil {
			return "", false
		}
		c.mu.Lock()
		dead := c.dead
		id, known = c.seq.lastID, c.seq.lastKnown
		c.mu.Unlock()
		if !dead {
			return id, known
		}
	}
}

// Drain ends every subscriber with ReasonDrain, for shutdown. It is final:
// a request still in flight when the server exits is not held either.
func (h *Hub) Drain() {
	h.drained.Store(true)
	h.endAll(ReasonDrain)
}

// Close ends every subscriber with ReasonHubClosed, drops held items (and
// their timers) and closes the bus; later Subscribe calls end the subscriber
// at once. Calling it again does nothing.
func (h *Hub) Close() {
	if !h.closed.CompareAndSwap(false, true) {
		return
	}
	h.endAll(ReasonHubClosed)
	h.busMu.Lock()
	defer h.busMu.Unlock()
	if err := h.currentBus().Close(); err != nil {
		h.logError("closing bus failed", "", err)
	}
}

// endAll ends every subscriber of every channel with reason and removes them.
func (h *Hub) endAll(reason CloseReason) {
	var ended []*Subscriber
	for _, c := range h.allChannels() {
		c.mu.Lock()
		for k := range c.subs {
			for _, s := range c.subs[k] {
				if s.end(reason) {
					ended = append(ended, s)
				}
			}
		}
		c.mu.Unlock()
	}
	for _, s := range ended {
		h.UnsubscribeAll(s)
	}
}

// Stats returns a snapshot of the gauges and counters.
func (h *Hub) Stats() Stats {
	de, db := h.dedup.sizes()
	var delivered uint64
	for k := range h.counts.delivered {
		delivered += h.counts.delivered[k].Load()
	}
	return Stats{
		SequencerEntries:  int(h.seqHeld.Load()),
		SequencerBytes:    int(h.seqBytes.Load()),
		DedupEntries:      de,
		DedupBytes:        db,
		LastIDEntries:     int(h.lastPublished.entries.Load()),
		LastIDBytes:       int(h.lastPublished.bytes.Load()),
		Channels:          int(h.channels.Load()),
		Subscribers:       int(h.subscribers.Load()),
		Published:         h.published.Load(),
		Delivered:         delivered,
		Duplicates:        h.duplicates.Load(),
		Reordered:         h.reordered.Load(),
		SequencerTimeouts: h.sequencerTimeouts.Load(),
		SlowDisconnects:   h.slowDisconnects.Load(),
		SequencerDropped:  h.sequencerDropped.Load(),
	}
}

// DisconnectSlow ends s as a slow consumer on behalf of its holder, when a
// write to the client timed out or failed, so that every slow disconnect is
// counted in one place whichever side noticed it first. The hub logs it at
// debug; the holder's warning carries the client's request.
func (h *Hub) DisconnectSlow(s *Subscriber, cause error) {
	if s == nil || !s.end(ReasonSlow) {
		return
	}
	h.UnsubscribeAll(s)
	h.slowDisconnects.Add(1)
	if l := h.logger(); l != nil && l.Core().Enabled(zap.DebugLevel) {
		l.Debug("disconnecting slow subscriber", zap.Stringer("kind", s.kind), zap.Error(cause))
	}
}

// End ends one subscriber with reason, as Drain ends all of them: its
// holder sees the reason and finishes (a stream ends cleanly, a WebSocket
// closes with 1001 for ReasonDrain).
func (h *Hub) End(s *Subscriber, reason CloseReason) {
	if s == nil || !s.end(reason) {
		return
	}
	h.UnsubscribeAll(s)
}
