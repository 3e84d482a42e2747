package natsbus

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
)

func runServer(t *testing.T, port int) *server.Server {
	t.Helper()
	o := natsserver.DefaultTestOptions
	o.Port = port
	return natsserver.RunServer(&o)
}

// runJetStream starts a server with JetStream on a random port, its store
// in a temporary directory.
func runJetStream(t *testing.T) *server.Server {
	t.Helper()
	o := natsserver.DefaultTestOptions
	o.Port = -1
	o.JetStream = true
	o.StoreDir = t.TempDir()
	s := natsserver.RunServer(&o)
	t.Cleanup(s.Shutdown)
	return s
}

func serverURL(s *server.Server) string {
	return "nats://" + s.Addr().String()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// node is one hub joined to the bus.
type node struct {
	h   *hub.Hub
	bus *Bus

	mu     sync.Mutex
	missed []string
}

func newNode(t *testing.T, url string, linger time.Duration) *node {
	t.Helper()
	n := &node{h: hub.New(hub.Config{WakeInterval: -1})}
	b, err := New(Options{URLs: []string{url}, Linger: linger, Shards: 4, LastID: n.h.NoteLastPublished}, n.h.Receive, func(chs []string) {
		n.mu.Lock()
		n.missed = append(n.missed, chs...)
		n.mu.Unlock()
		n.h.Missed(chs)
	})
	if err != nil {
		t.Fatal(err)
	}
	n.bus = b
	n.h.SetBus(b)
	t.Cleanup(n.h.Close)
	if err := b.Flush(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return n
}

// subscribe adds a stream subscriber and waits until the node's NATS
// subscription is confirmed.
func (n *node) subscribe(t *testing.T, channel string) *hub.Subscriber {
	t.Helper()
	s := hub.NewSubscriber(hub.KindStream)
	n.h.Subscribe(s, channel)
	if err := n.bus.Flush(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

func streamItem(channel, id, content string) *formats.Item {
	return &formats.Item{Channel: channel, ID: id, HTTPStream: &formats.HTTPStream{Action: formats.ActionSend, Content: []byte(content)}}
}

// collect takes deliveries from s until it has want of them.
func collect(t *testing.T, s *hub.Subscriber, want int) []hub.Delivery {
	t.Helper()
	var got []hub.Delivery
	eventually(t, fmt.Sprintf("%d deliveries", want), func() bool {
		got = s.Take(got)
		return len(got) >= want
	})
	return got
}

func checkNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		eventually(t, "goroutines back to the start", func() bool { return runtime.NumGoroutine() <= before })
	})
}

func TestSubjectIsOneSafeTokenForAnyChannel(t *testing.T) {
	long := string(make([]byte, 1024))
	for _, ch := range []string{"a.b", "a b", "*", ">", "ünï", long, "", "$SYS"} {
		subj := Subject("grip", ch)
		tok := subj[len("grip.ch."):]
		for _, r := range tok {
			ok := r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
			if !ok {
				t.Fatalf("channel %q: subject %q has %q", ch, subj, r)
			}
		}
	}
	if Subject("grip", "a.b") == Subject("grip", "a_b") {
		t.Fatal("distinct channels share a subject")
	}
}

func TestPublishOnOneNodeReachesSubscribersOnOthersInOrder(t *testing.T) {
	checkNoLeak(t)
	s := runServer(t, -1)
	defer s.Shutdown()
	a, b, c := newNode(t, serverURL(s), time.Minute), newNode(t, serverURL(s), time.Minute), newNode(t, serverURL(s), time.Minute)
	for _, ch := range []string{"news.today", "odd * > name", "ünï"} {
		sb, sc := b.subscribe(t, ch), c.subscribe(t, ch)
		const n = 1000
		for i := range n {
			if err := a.h.Publish([]*formats.Item{streamItem(ch, strconv.Itoa(i), strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
		for _, sub := range []*hub.Subscriber{sb, sc} {
			got := collect(t, sub, n)
			if len(got) != n {
				t.Fatalf("%q: got %d items, want %d", ch, len(got), n)
			}
			for i, d := range got {
				if string(d.Item.HTTPStream.Content) != strconv.Itoa(i) || d.Channel != ch {
					t.Fatalf("%q: item %d is %q", ch, i, d.Item.HTTPStream.Content)
				}
			}
		}
	}
	// A publishes but follows nothing: only B's and C's subscriptions exist.
	if got := a.bus.Stats().Followed; got != 0 {
		t.Fatalf("publishing node follows %d channels", got)
	}
	for _, n := range []*node{a, b, c} {
		n.h.Close()
	}
}

func TestSameIDPublishedOnTwoNodesIsDeliveredOnce(t *testing.T) {
	s := runServer(t, -1)
	defer s.Shutdown()
	a, b, c := newNode(t, serverURL(s), time.Minute), newNode(t, serverURL(s), time.Minute), newNode(t, serverURL(s), time.Minute)
	sub := c.subscribe(t, "ch")
	for i := range 10 {
		id := strconv.Itoa(i)
		if err := a.h.Publish([]*formats.Item{streamItem("ch", id, id)}); err != nil {
			t.Fatal(err)
		}
		if err := b.h.Publish([]*formats.Item{streamItem("ch", id, id)}); err != nil {
			t.Fatal(err)
		}
	}
	// A marker after the copies: once it arrives, every copy has been seen.
	if err := a.h.Publish([]*formats.Item{streamItem("ch", "end", "end")}); err != nil {
		t.Fatal(err)
	}
	var got []hub.Delivery
	eventually(t, "the end marker", func() bool {
		got = sub.Take(got)
		return len(got) > 0 && string(got[len(got)-1].Item.HTTPStream.Content) == "end"
	})
	if len(got) != 11 {
		t.Fatalf("got %d deliveries, want 11 (each id once)", len(got))
	}
}

func TestAllFormatsSurviveTheWire(t *testing.T) {
	s := runServer(t, -1)
	defer s.Shutdown()
	a, b := newNode(t, serverURL(s), time.Minute), newNode(t, serverURL(s), time.Minute)
	resp := hub.NewSubscriber(hub.KindResponse)
	ws := hub.NewSubscriber(hub.KindWebSocket)
	b.h.Subscribe(resp, "ch")
	b.h.Subscribe(ws, "ch")
	if err := b.bus.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	it := &formats.Item{Channel: "ch", ID: "1", PrevID: "0", Meta: map[string]string{"sender": "x"},
		HTTPResponse: &formats.HTTPResponse{Code: 201, Headers: []formats.Header{{Name: "A", Value: "1"}, {Name: "A", Value: "2"}}, Body: []byte{0, 1, 255}},
		WSMessage:    &formats.WSMessage{Type: "binary", Content: []byte{9, 8}}}
	it.NoSeq = true
	if err := a.h.Publish([]*formats.Item{it}); err != nil {
		t.Fatal(err)
	}
	r := collect(t, resp, 1)[0].Item
	w := collect(t, ws, 1)[0].Item
	if r.HTTPResponse.Code != 201 || len(r.HTTPResponse.Headers) != 2 || string(r.HTTPResponse.Body) != "\x00\x01\xff" || r.Meta["sender"] != "x" || r.PrevID != "0" {
		t.Fatalf("http-response item changed: %+v", r.HTTPResponse)
	}
	// Absent fields stay absent: a nil body-patch must not come back as
	// JSON null, which a response hold would try to apply.
	if !reflect.DeepEqual(*r.HTTPResponse, *it.HTTPResponse) {
		t.Fatalf("http-response changed on the wire:\n got %#v\nwant %#v", *r.HTTPResponse, *it.HTTPResponse)
	}
	if w.WSMessage.Type != "binary" || string(w.WSMessage.Content) != "\x09\x08" {
		t.Fatalf("ws-message item changed: %+v", w.WSMessage)
	}
}

func TestUnfollowWaitsForLingerAndFollowCancelsIt(t *testing.T) {
	s := runServer(t, -1)
	defer s.Shutdown()
	n := newNode(t, serverURL(s), 200*time.Millisecond)
	base := s.NumSubscriptions()
	sub := n.subscribe(t, "ch")
	eventually(t, "server sees the subscription", func() bool { return s.NumSubscriptions() == base+1 })
	n.h.Unsubscribe(sub, "ch")
	// Re-subscribing within the linger keeps the one NATS subscription.
	sub = n.subscribe(t, "ch")
	if got := n.bus.Stats().Followed; got != 1 {
		t.Fatalf("followed %d, want 1", got)
	}
	n.h.Unsubscribe(sub, "ch")
	eventually(t, "unfollowed after the linger", func() bool { return n.bus.Stats().Followed == 0 && s.NumSubscriptions() == base })
}

func TestServerRestartKeepsSubscriptionsAndPublishFailsWhileDown(t *testing.T) {
	s := runServer(t, -1)
	port := s.Addr().(*net.TCPAddr).Port
	a, b := newNode(t, serverURL(s), time.Minute), newNode(t, serverURL(s), time.Minute)
	sub := b.subscribe(t, "ch")
	resp := hub.NewSubscriber(hub.KindResponse)
	b.h.Subscribe(resp, "ch")

	s.Shutdown()
	s.WaitForShutdown()
	eventually(t, "publisher sees the outage", func() bool { return !a.bus.Connected() })
	if err := a.h.Publish([]*formats.Item{streamItem("ch", "lost", "lost")}); err == nil {
		t.Fatal("publish while NATS is down reported success")
	}

	s = runServer(t, port)
	defer s.Shutdown()
	eventually(t, "both reconnect", func() bool { return a.bus.Connected() && b.bus.Connected() })
	if err := b.bus.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	// The hold with a possible gap is updated (a hint).
	eventually(t, "missed called for the followed channel", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.missed) > 0 && b.missed[0] == "ch"
	})
	hint := collect(t, resp, 1)[0].Item
	if hint.HTTPResponse == nil || hint.HTTPResponse.Action != formats.ActionHint {
		t.Fatalf("response hold got %+v, want a hint", hint.HTTPResponse)
	}
	if err := a.h.Publish([]*formats.Item{streamItem("ch", "after", "after")}); err != nil {
		t.Fatal(err)
	}
	var got []hub.Delivery
	eventually(t, "delivery after restart without re-follow", func() bool {
		got = sub.Take(got)
		for _, d := range got {
			if d.Item.HTTPStream != nil && string(d.Item.HTTPStream.Content) == "after" {
				return true
			}
		}
		return false
	})
	for _, d := range got {
		if d.Item.HTTPStream != nil && string(d.Item.HTTPStream.Content) == "lost" {
			t.Fatal("an item refused while down was delivered")
		}
	}
}

func TestSlowConsumerDropSignalsMissed(t *testing.T) {
	s := runServer(t, -1)
	defer s.Shutdown()
	a := newNode(t, serverURL(s), time.Minute)
	n := &node{h: hub.New(hub.Config{})}
	block := make(chan struct{})
	var once sync.Once
	b, err := New(Options{URLs: []string{serverURL(s)}, Shards: 1, ShardBuffer: 1}, func(items []*formats.Item) {
		<-block // a stuck receiver fills the shard
	}, func(chs []string) {
		n.mu.Lock()
		n.missed = append(n.missed, chs...)
		n.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { once.Do(func() { close(block) }); b.Close() }()
	if err := b.Follow("ch"); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := a.h.Publish([]*formats.Item{streamItem("ch", strconv.Itoa(i), "x")}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "slow-consumer drop counted and signalled", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return b.Stats().SlowConsumer > 0 && b.Stats().Dropped > 0 && len(n.missed) > 0
	})
	once.Do(func() { close(block) })
}

func TestLastIDsOfUnfollowedChannelsReachEveryNode(t *testing.T) {
	s := runServer(t, -1)
	defer s.Shutdown()
	a, b, c := newNode(t, serverURL(s), time.Minute), newNode(t, serverURL(s), time.Minute), newNode(t, serverURL(s), time.Minute)
	// b follows nothing; c follows "followed", so its last id comes with
	// the items themselves.
	sub := c.subscribe(t, "followed")
	for _, it := range []*formats.Item{streamItem("quiet", "x1", "1"), streamItem("quiet", "x2", "2"), streamItem("followed", "f1", "f")} {
		if err := a.h.Publish([]*formats.Item{it}); err != nil {
			t.Fatal(err)
		}
	}
	// A redundant publisher repeats x1 on another node: it is a duplicate
	// and must not move the last id back.
	if err := c.h.Publish([]*formats.Item{streamItem("quiet", "x1", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := c.h.Publish([]*formats.Item{streamItem("quiet", "x3", "3")}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b, c} {
		eventually(t, "last id of an unfollowed channel", func() bool {
			id, ok := n.h.LastPublishedID("quiet")
			return ok && id == "x3"
		})
	}
	eventually(t, "last id of a followed channel", func() bool {
		id, ok := b.h.LastPublishedID("followed")
		return ok && id == "f1"
	})
	if got := collect(t, sub, 1); got[0].Item.ID != "f1" {
		t.Fatalf("followed channel got %q", got[0].Item.ID)
	}
	if id, _ := c.h.LastPublishedID("followed"); id != "f1" {
		t.Fatalf("follower's last id %q, want f1", id)
	}
}

func TestWhenFollowedWaitsForTheServerToHaveTheSubscription(t *testing.T) {
	s := runServer(t, -1)
	defer s.Shutdown()
	n := newNode(t, serverURL(s), time.Minute)
	const rounds = 20
	interest := make(chan bool, rounds)
	for i := range rounds {
		ch := fmt.Sprint("confirm-", i)
		n.h.Subscribe(hub.NewSubscriber(hub.KindStream), ch)
		subject := Subject(DefaultPrefix, ch)
		n.h.WhenFollowed(func() { interest <- s.GlobalAccount().SubscriptionInterest(subject) })
	}
	for range rounds {
		if !<-interest {
			t.Fatal("WhenFollowed ran before the server had the subscription")
		}
	}
}

func TestBatchWithAnItemOverMaxPayloadIsRefusedWhole(t *testing.T) {
	o := natsserver.DefaultTestOptions
	o.Port = -1
	o.MaxPayload = 1024
	s := natsserver.RunServer(&o)
	defer s.Shutdown()
	a, b := newNode(t, serverURL(s), time.Minute), newNode(t, serverURL(s), time.Minute)
	sub := b.subscribe(t, "ch")
	big := streamItem("ch", "big", strings.Repeat("x", 2048))
	err := a.h.Publish([]*formats.Item{streamItem("ch", "small", "s"), big})
	if !errors.Is(err, hub.ErrItemTooLarge) {
		t.Fatalf("publish: %v, want ErrItemTooLarge", err)
	}
	if err := a.h.Publish([]*formats.Item{streamItem("ch", "next", "n")}); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, sub, 1); got[0].Item.ID != "next" {
		t.Fatalf("first delivery %q: part of the refused batch went out", got[0].Item.ID)
	}
}

func TestUndecodableMessagesAreCountedAndDropped(t *testing.T) {
	s := runServer(t, -1)
	defer s.Shutdown()
	n := newNode(t, serverURL(s), time.Minute)
	sub := n.subscribe(t, "ch")
	raw, err := nats.Connect(serverURL(s))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// Garbage, and a valid item naming another channel than its subject.
	for _, data := range []string{"not json", `{"Channel":"other","HTTPStream":{"Content":"eA=="}}`, "[1,2]"} {
		subj := Subject(DefaultPrefix, "ch")
		if data == "[1,2]" {
			subj = IDsSubject(DefaultPrefix)
		}
		if err := raw.Publish(subj, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "three invalid messages counted", func() bool { return n.bus.Stats().Invalid == 3 })
	if err := n.h.Publish([]*formats.Item{streamItem("ch", "ok", "ok")}); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, sub, 1); len(got) != 1 || got[0].Item.ID != "ok" {
		t.Fatalf("deliveries %+v, want only the valid item", got)
	}
}
