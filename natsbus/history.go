package natsbus

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
)

// HistoryOptions keeps the items of some channels in one JetStream stream
// per bus (per subject prefix), so that any node can catch a client up on
// a channel it did not follow. Every node sharing the prefix must cover
// the same channels: a covered channel travels on its history subject.
type HistoryOptions struct {
	// Covers reports whether channel keeps history; nil covers every one.
	Covers func(channel string) bool
	// Size is how many items each channel keeps (the stream's
	// MaxMsgsPerSubject) and the most a catch-up reads.
	Size int
	// MaxAge drops items older than it; 0 keeps them until pushed out.
	MaxAge time.Duration
	// MaxBytes bounds the stream; the oldest messages go first. 0 is
	// unbounded (the server's limits apply).
	MaxBytes int64
	// Duplicates is the stream's window for Nats-Msg-Id, which is set to
	// the channel and the item id, so that a publish retried on another
	// node is stored once; default DefaultHistoryDuplicates, capped at
	// MaxAge.
	Duplicates time.Duration
	// FetchTimeout bounds one catch-up read; default DefaultFetchTimeout.
	FetchTimeout time.Duration
	// AckTimeout bounds the wait for the stream to confirm that it stored
	// a publish; default DefaultAckTimeout.
	AckTimeout time.Duration
	// MaxFetchBytes bounds the bytes one catch-up read asks the server
	// for; default DefaultMaxFetchBytes.
	MaxFetchBytes int
}

// Defaults for HistoryOptions.
const (
	DefaultHistoryDuplicates = 60 * time.Second // the hub's default id_cache_ttl
	DefaultFetchTimeout      = 2 * time.Second
	DefaultAckTimeout        = 2 * time.Second
	DefaultMaxFetchBytes     = 8 << 20
	// ensureInterval spaces the attempts to create the stream after a
	// failure, so a missing JetStream costs one request per interval.
	ensureInterval = 5 * time.Second
	// historyLogInterval rate-limits the history failure log lines.
	historyLogInterval = time.Minute
	// maxReads bounds the reads in flight per bus (of different channels
	// or positions), and so the memory they hold: maxReads × MaxFetchBytes.
	maxReads = 16
)

// ErrNoHistory is what ReadHistory wraps when the stream cannot be read
// (JetStream disabled, the stream missing, the server too old for batched
// direct gets).
var ErrNoHistory = errors.New("natsbus: JetStream history unavailable")

// HistorySubject is the subject of a channel that keeps history: like
// Subject, under "<prefix>.h.", which the history stream captures.
func HistorySubject(prefix, channel string) string {
	return prefix + ".h." + base64.RawURLEncoding.EncodeToString([]byte(channel))
}

// StreamName is the JetStream stream that keeps the history of the bus
// with prefix: the prefix with every character a stream name may not hold
// replaced, and a hash of the prefix so that two prefixes never share one.
func StreamName(prefix string) string {
	var b strings.Builder
	b.WriteString("grip_history_")
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(prefix))
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(sum[:4]))
	return b.String()
}

// HistoryStats counts the history stream's traffic, for metrics.
type HistoryStats struct {
	// Ready reports the stream created or updated as configured.
	Ready bool
	// Stored counts publishes the stream confirmed; WriteFailed those it
	// refused or did not confirm within AckTimeout (live delivery went on).
	Stored, WriteFailed uint64
	// Fetches counts catch-up reads sent to the stream, and FetchFailed
	// those that failed or timed out; Shared counts the catch-ups that
	// joined another hold's read instead of sending their own.
	Fetches, FetchFailed, Shared uint64
}

// jsHistory is the bus's JetStream side: the stream, publish
// acknowledgements and catch-up reads.
type jsHistory struct {
	b      *Bus
	o      HistoryOptions
	stream string
	js     jetstream.JetStream
	inbox  string // replies to publishes come to inbox.<n>
	ackSub *nats.Subscription

	started    atomic.Bool // start ran: js and ackSub are set
	ready      atomic.Bool
	healthy    atomic.Bool  // the last acknowledgement arrived; false: publishes do not wait
	lastEnsure atomic.Int64 // unix nanos of the last attempt to create the stream
	ensuring   atomic.Bool
	lastLog    atomic.Int64

	amu    sync.Mutex
	nextID uint64
	acks   map[uint64]*ackBatch

	fmu    sync.Mutex
	rounds map[readKey]*readQueue
	reads  chan struct{} // a token per read in flight, at most maxReads

	stored, writeFailed, fetches, fetchFailed, shared atomic.Uint64
}

func newHistory(b *Bus, o HistoryOptions) (*jsHistory, error) {
	if o.Size <= 0 {
		return nil, errors.New("natsbus: history size must be positive")
	}
	// A zero or negative option takes its default.
	o.Duplicates = cmp.Or(max(o.Duplicates, 0), DefaultHistoryDuplicates)
	if o.MaxAge > 0 {
		o.Duplicates = min(o.Duplicates, o.MaxAge)
	}
	o.FetchTimeout = cmp.Or(max(o.FetchTimeout, 0), DefaultFetchTimeout)
	o.AckTimeout = cmp.Or(max(o.AckTimeout, 0), DefaultAckTimeout)
	o.MaxFetchBytes = cmp.Or(max(o.MaxFetchBytes, 0), DefaultMaxFetchBytes)
	h := &jsHistory{b: b, o: o, stream: StreamName(b.prefix), inbox: nats.NewInbox(),
		acks: make(map[uint64]*ackBatch), rounds: make(map[readKey]*readQueue), reads: make(chan struct{}, maxReads)}
	h.healthy.Store(true)
	return h, nil
}

// start sets the history up on the bus's connection, then makes sure of
// the stream if the connection is up (else its connect handler will).
func (h *jsHistory) start() error {
	js, err := jetstream.New(h.b.nc)
	if err != nil {
		return fmt.Errorf("natsbus: jetstream: %w", err)
	}
	h.js = js
	if h.ackSub, err = h.b.nc.Subscribe(h.inbox+".*", h.receiveAck); err != nil {
		return fmt.Errorf("natsbus: subscribing to acknowledgements: %w", err)
	}
	h.started.Store(true)
	if h.b.nc.IsConnected() {
		h.ensure(true)
	}
	return nil
}

func (h *jsHistory) covers(channel string) bool {
	return h != nil && (h.o.Covers == nil || h.o.Covers(channel))
}

// logOnce reports a history failure to the operator's log at most once a
// historyLogInterval.
func (h *jsHistory) logOnce(event string, err error) {
	now := time.Now().UnixNano()
	last := h.lastLog.Load()
	if now-last < int64(historyLogInterval) && last != 0 {
		return
	}
	if h.lastLog.CompareAndSwap(last, now) {
		h.b.logf(event, err)
	}
}

// config is the stream as the options describe it.
func (h *jsHistory) config() jetstream.StreamConfig {
	maxBytes := h.o.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:              h.stream,
		Description:       "caddy-grip channel history for subject prefix " + h.b.prefix,
		Subjects:          []string{h.b.prefix + ".h.>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(h.o.Size),
		MaxMsgs:           -1,
		MaxBytes:          maxBytes,
		MaxAge:            h.o.MaxAge,
		Duplicates:        h.o.Duplicates,
		Storage:           jetstream.FileStorage,
		AllowDirect:       true,
	}
}

// ensure creates the stream, or updates it to the options, in the
// background, at most once per ensureInterval unless force is set (the
// connection came up).
func (h *jsHistory) ensure(force bool) {
	if !h.started.Load() || h.b.nc.IsClosed() {
		return
	}
	now := time.Now().UnixNano()
	if !force && now-h.lastEnsure.Load() < int64(ensureInterval) {
		return
	}
	if !h.ensuring.CompareAndSwap(false, true) {
		return
	}
	h.lastEnsure.Store(now)
	go func() {
		defer h.ensuring.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		if _, err := h.js.CreateOrUpdateStream(ctx, h.config()); err != nil {
			h.ready.Store(false)
			h.logOnce("history stream unavailable, live delivery goes on without it", err)
			return
		}
		h.ready.Store(true)
		h.healthy.Store(true)
	}()
}

// ackBatch is the acknowledgements one Publish waits for.
type ackBatch struct {
	h    *jsHistory
	ids  []uint64
	left atomic.Int32
	done chan struct{}
	once sync.Once
	t    *time.Timer
}

// request gives msg a reply subject on which the stream will acknowledge
// it, and counts the acknowledgement in batch (made on first use).
func (h *jsHistory) request(batch **ackBatch, msg *nats.Msg) {
	a := *batch
	if a == nil {
		a = &ackBatch{h: h, done: make(chan struct{})}
		a.left.Store(1) // until start: the batch is still being sent
		a.t = time.AfterFunc(h.o.AckTimeout, a.expire)
		*batch = a
	}
	a.left.Add(1)
	h.amu.Lock()
	h.nextID++
	id := h.nextID
	h.acks[id] = a
	a.ids = append(a.ids, id)
	h.amu.Unlock()
	msg.Reply = h.inbox + "." + strconv.FormatUint(id, 10)
}

// start tells the batch every message is sent.
func (a *ackBatch) start() {
	if a != nil && a.left.Add(-1) == 0 {
		a.finish()
	}
}

// wait returns once the stream confirmed every message, or at the
// timeout; it waits only while the stream has been answering, so that a
// missing JetStream does not slow live publishing.
func (a *ackBatch) wait() {
	if a == nil || !a.h.healthy.Load() {
		return
	}
	<-a.done
}

func (a *ackBatch) finish() {
	a.once.Do(func() {
		a.t.Stop()
		close(a.done)
	})
}

// expire counts the messages still unconfirmed as failed writes.
func (a *ackBatch) expire() {
	h := a.h
	n := 0
	h.amu.Lock()
	for _, id := range a.ids {
		if h.acks[id] == a {
			delete(h.acks, id)
			n++
		}
	}
	h.amu.Unlock()
	if n > 0 {
		h.writeFailed.Add(uint64(n))
		h.healthy.Store(false)
		h.logOnce("history stream did not confirm a publish in time, live delivery goes on",
			fmt.Errorf("%w: %d publishes unconfirmed after %v", ErrNoHistory, n, h.o.AckTimeout))
		h.ensure(false)
	}
	a.finish()
}

// receiveAck handles the stream's answer to one publish: a PubAck, an
// error, or the server's "no responders" when no stream captures it.
func (h *jsHistory) receiveAck(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	h.amu.Lock()
	a := h.acks[id]
	delete(h.acks, id)
	h.amu.Unlock()
	if a == nil { // expired already: it still tells whether the stream answers
		if ackError(m) == nil {
			h.healthy.Store(true)
		}
		return
	}
	if err := ackError(m); err != nil {
		h.writeFailed.Add(1)
		h.healthy.Store(false)
		h.logOnce("history stream refused a publish, live delivery goes on", err)
		h.ensure(false)
	} else {
		h.stored.Add(1)
		h.healthy.Store(true)
	}
	if a.left.Add(-1) == 0 {
		a.finish()
	}
}

// ackError is the error a stream's answer to a publish reports, if any.
func ackError(m *nats.Msg) error {
	var ack struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	switch {
	case m.Header.Get("Status") != "":
		return fmt.Errorf("%w: status %s %s", ErrNoHistory, m.Header.Get("Status"), m.Header.Get("Description"))
	case json.Unmarshal(m.Data, &ack) != nil:
		return fmt.Errorf("%w: invalid acknowledgement", ErrNoHistory)
	case ack.Error != nil:
		return fmt.Errorf("%w: %s", ErrNoHistory, ack.Error.Description)
	}
	return nil
}

// readResult is one read of a channel's history, shared by the callers
// that waited for it.
type readResult struct {
	items    []*formats.Item
	next     uint64 // the stream position after what was read
	complete bool   // every stored message from the start position was read
	err      error
	done     chan struct{}
}

// readQueue is the reads of one channel from one position: the one in
// flight and the one that callers arriving meanwhile wait for. A caller
// never joins a read that started before it asked: its live subscription
// must be in force when the read starts, or an item could fall between
// the two.
type readQueue struct {
	cur, next *readResult
}

// KeepsHistory reports whether the history stream covers channel.
func (b *Bus) KeepsHistory(channel string) bool { return b.hist.covers(channel) }

// ReadHistory returns the items the history stream keeps on channel from
// stream position from (0: all it keeps), oldest first, at most Size, and
// the position after them; complete is false when the read was cut short
// (MaxFetchBytes). Everything the stream was sent before the call is
// included (see fetch). Callers reading one channel from one position
// share reads: one in flight and one queued at most, so a storm of holds
// on a channel costs a couple of reads.
func (b *Bus) ReadHistory(ctx context.Context, channel string, from uint64) ([]*formats.Item, uint64, bool, error) {
	h := b.hist
	if !h.covers(channel) {
		return nil, 0, false, fmt.Errorf("%w: channel %q keeps no history", ErrNoHistory, channel)
	}
	r := h.read(channel, from)
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, 0, false, ctx.Err()
	}
	return r.items, r.next, r.complete, r.err
}

type readKey struct {
	channel string
	from    uint64
}

// read returns the result of a read of channel from position from that
// starts after the call.
func (h *jsHistory) read(channel string, from uint64) *readResult {
	k := readKey{channel, from}
	h.fmu.Lock()
	defer h.fmu.Unlock()
	q := h.rounds[k]
	if q == nil {
		r := &readResult{done: make(chan struct{})}
		h.rounds[k] = &readQueue{cur: r}
		go h.run(k, r)
		return r
	}
	if q.next == nil {
		q.next = &readResult{done: make(chan struct{})}
	} else {
		h.shared.Add(1)
	}
	return q.next
}

// run reads for r, then for the read queued meanwhile, if any.
func (h *jsHistory) run(k readKey, r *readResult) {
	for r != nil {
		h.reads <- struct{}{}
		r.items, r.next, r.complete, r.err = h.fetch(k.channel, k.from)
		<-h.reads
		close(r.done)
		h.fmu.Lock()
		q := h.rounds[k]
		r = q.next
		if r == nil {
			delete(h.rounds, k)
		} else {
			q.cur, q.next = r, nil
		}
		h.fmu.Unlock()
	}
}

// fetch reads the messages the stream keeps on channel's subject from
// position from, at most Size and about MaxFetchBytes, with one batched
// direct get (nats-server 2.11 or later). It first stores a barrier
// message and waits for its acknowledgement: the stream stores what it
// receives in order, so what the server handed it before the barrier is
// stored by then and the read sees it.
func (h *jsHistory) fetch(channel string, from uint64) (items []*formats.Item, next uint64, complete bool, err error) {
	h.fetches.Add(1)
	defer func() {
		if err != nil {
			h.fetchFailed.Add(1)
			h.logOnce("history read failed, holds fall back to the origin", err)
			h.ensure(false)
		}
	}()
	nc := h.b.nc
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, 0, false, fmt.Errorf("natsbus: reading history: %w", err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // the connection may be gone
	ctx, cancel := context.WithTimeout(context.Background(), h.o.FetchTimeout)
	defer cancel()
	if err := nc.PublishRequest(h.b.prefix+".h."+barrierToken, inbox, nil); err != nil {
		return nil, 0, false, fmt.Errorf("natsbus: reading history: %w", err)
	}
	m, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return nil, 0, false, fmt.Errorf("%w: barrier: %v", ErrNoHistory, err)
	}
	var ack struct {
		Seq uint64 `json:"seq"`
	}
	if err := ackError(m); err != nil {
		return nil, 0, false, fmt.Errorf("barrier: %w", err)
	}
	if err := json.Unmarshal(m.Data, &ack); err != nil || ack.Seq == 0 {
		return nil, 0, false, fmt.Errorf("%w: barrier: no sequence", ErrNoHistory)
	}
	next = ack.Seq + 1
	req, err := json.Marshal(struct {
		Seq      uint64 `json:"seq,omitempty"`
		NextFor  string `json:"next_by_subj"`
		Batch    int    `json:"batch"`
		MaxBytes int    `json:"max_bytes"`
	}{from, HistorySubject(h.b.prefix, channel), h.o.Size, h.o.MaxFetchBytes})
	if err != nil {
		return nil, 0, false, err
	}
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+h.stream, inbox, req); err != nil {
		return nil, 0, false, fmt.Errorf("natsbus: reading history: %w", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, 0, false, fmt.Errorf("%w: %v", ErrNoHistory, err)
		}
		switch st := m.Header.Get("Status"); st {
		case "":
		case "404": // nothing kept on the subject
			return nil, next, true, nil
		case "204": // end of the batch
			complete = m.Header.Get("Nats-Num-Pending") == "0"
			if last, _ := strconv.ParseUint(m.Header.Get("Nats-Last-Sequence"), 10, 64); !complete && last > 0 {
				next = last + 1 // cut short: what follows is unread
			}
			return items, next, complete, nil
		default:
			return nil, 0, false, fmt.Errorf("%w: status %s %s", ErrNoHistory, st, m.Header.Get("Description"))
		}
		if m.Header.Get("Nats-Num-Pending") == "" {
			return nil, 0, false, fmt.Errorf("%w: the server does not batch direct gets (nats-server 2.11 or later needed)", ErrNoHistory)
		}
		it := new(formats.Item)
		if err := json.Unmarshal(m.Data, it); err != nil || it.Channel != channel {
			h.b.invalid.Add(1)
			continue
		}
		items = append(items, it)
	}
}

// barrierToken is the last subject token of the barrier messages fetch
// stores; "=" is outside base64url, so no channel's subject is it.
const barrierToken = "=sync"

// msgIDHeader de-duplicates in the stream.
const msgIDHeader = "Nats-Msg-Id"

// historyMsg is the message that publishes it on its history subject.
func (h *jsHistory) historyMsg(it *formats.Item, data []byte) *nats.Msg {
	m := nats.NewMsg(HistorySubject(h.b.prefix, it.Channel))
	m.Data = data
	if it.ID != "" {
		sum := sha256.Sum256([]byte(it.Channel))
		m.Header.Set(msgIDHeader, base64.RawURLEncoding.EncodeToString(sum[:12])+":"+it.ID)
	}
	return m
}

func (h *jsHistory) stats() HistoryStats {
	return HistoryStats{Ready: h.ready.Load(), Stored: h.stored.Load(), WriteFailed: h.writeFailed.Load(),
		Fetches: h.fetches.Load(), FetchFailed: h.fetchFailed.Load(), Shared: h.shared.Load()}
}

func (h *jsHistory) close() {
	if h != nil && h.ackSub != nil {
		_ = h.ackSub.Unsubscribe()
	}
}

var _ hub.HistorySource = (*Bus)(nil)

// ensureIfOn makes sure of the stream when the connection comes up.
func (h *jsHistory) ensureIfOn() {
	if h != nil {
		h.ensure(true)
	}
}
