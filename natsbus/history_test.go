package natsbus

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
)

const histSize = 10

// newHistoryNode is a node whose hub and bus keep histSize items of every
// channel, the bus in JetStream.
func newHistoryNode(t *testing.T, url string) *node { return newHistoryNodeSize(t, url, histSize) }

func newHistoryNodeSize(t *testing.T, url string, size int) *node {
	t.Helper()
	n := &node{h: hub.New(hub.Config{WakeInterval: -1, History: hub.HistoryConfig{Size: size}})}
	b, err := New(Options{URLs: []string{url}, Linger: time.Minute, Shards: 4, LastID: n.h.NoteLastPublished,
		History: &HistoryOptions{Size: size, MaxAge: time.Hour}}, n.h.Receive, n.h.Missed)
	if err != nil {
		t.Fatal(err)
	}
	n.bus = b
	n.h.SetBus(b)
	t.Cleanup(n.h.Close)
	return n
}

func waitReady(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, "history stream ready", func() bool { return n.bus.Stats().History.Ready })
	}
}

func publishIDs(t *testing.T, n *node, channel string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		id := strconv.Itoa(i)
		if err := n.h.Publish([]*formats.Item{streamItem(channel, id, id)}); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(ds []hub.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Item.ID
	}
	return out
}

func TestHistoryStreamIsConfiguredFromTheOptions(t *testing.T) {
	s := runJetStream(t)
	a := newHistoryNode(t, serverURL(s))
	waitReady(t, a)
	nc, err := nats.Connect(serverURL(s))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), StreamName(DefaultPrefix))
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxMsgsPerSubject != histSize || cfg.MaxAge != time.Hour || !cfg.AllowDirect ||
		len(cfg.Subjects) != 1 || cfg.Subjects[0] != DefaultPrefix+".h.>" {
		t.Fatalf("stream config %+v", cfg)
	}
	// A second bus on the same prefix finds the stream as it wants it.
	b := newHistoryNode(t, serverURL(s))
	waitReady(t, b)
}

func TestHistoryCatchesUpANodeThatNeverFollowedTheChannel(t *testing.T) {
	checkNoLeak(t)
	s := runJetStream(t)
	a, c := newHistoryNode(t, serverURL(s)), newHistoryNode(t, serverURL(s))
	waitReady(t, a, c)
	publishIDs(t, a, "news", 1, 5)
	sub := hub.NewSubscriber(hub.KindStream)
	if _, res := c.h.SubscribeAfter(sub, "news", "2"); res != hub.HistoryRecovered {
		t.Fatalf("result %v, want recovered", res)
	}
	got := sub.Take(nil)
	if want := []string{"3", "4", "5"}; strings.Join(ids(got), ",") != strings.Join(want, ",") {
		t.Fatalf("caught up with %v, want %v", ids(got), want)
	}
	// Then live, once and in order.
	publishIDs(t, a, "news", 6, 6)
	if got := collect(t, sub, 1); got[0].Item.ID != "6" || len(got) != 1 {
		t.Fatalf("live delivery %v", ids(got))
	}
	if st := c.bus.Stats().History; st.Fetches < 1 || st.FetchFailed != 0 {
		t.Fatalf("history stats %+v", st)
	}
	a.h.Close()
	c.h.Close()
}

func TestHistoryMissWhenTheIDIsNotStored(t *testing.T) {
	s := runJetStream(t)
	a, c := newHistoryNode(t, serverURL(s)), newHistoryNode(t, serverURL(s))
	waitReady(t, a, c)
	publishIDs(t, a, "news", 1, histSize+3) // 1..3 pushed out by MaxMsgsPerSubject
	for _, prev := range []string{"never-published", "2"} {
		sub := hub.NewSubscriber(hub.KindStream)
		if _, res := c.h.SubscribeAfter(sub, "news", prev); res != hub.HistoryMiss {
			t.Fatalf("prev-id %q: result %v, want miss", prev, res)
		}
		if sub.Pending() {
			t.Fatalf("prev-id %q: a miss queued %v", prev, ids(sub.Take(nil)))
		}
		c.h.UnsubscribeAll(sub)
	}
	// A channel nothing was published on misses too.
	sub := hub.NewSubscriber(hub.KindStream)
	if _, res := c.h.SubscribeAfter(sub, "empty", "1"); res != hub.HistoryMiss {
		t.Fatalf("empty channel: result %v, want miss", res)
	}
}

// TestHistoryCatchUpRacingPublisherHasNoGapNoDuplicate catches up a node
// on a channel while another node keeps publishing on it: the
// subscriber sees every id after its prev-id once, in order. The stream
// keeps every item, so each catch-up recovers and anchors.
func TestHistoryCatchUpRacingPublisherHasNoGapNoDuplicate(t *testing.T) {
	s := runJetStream(t)
	a := newHistoryNodeSize(t, serverURL(s), 100)
	waitReady(t, a)
	for round := range 5 {
		c := newHistoryNodeSize(t, serverURL(s), 100)
		waitReady(t, c)
		ch := "race" + strconv.Itoa(round)
		publishIDs(t, a, ch, 1, 3)
		const last = 40
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			publishIDs(t, a, ch, 4, last)
		}()
		sub := hub.NewSubscriber(hub.KindStream)
		_, res := c.h.SubscribeAfter(sub, ch, "3")
		wg.Wait()
		if res != hub.HistoryRecovered {
			t.Fatalf("round %d: %v", round, res)
		}
		var got []hub.Delivery
		eventually(t, "the last id", func() bool {
			got = sub.Take(got)
			return len(got) > 0 && got[len(got)-1].Item.ID == strconv.Itoa(last)
		})
		for i, d := range got {
			if d.Item.ID != strconv.Itoa(4+i) {
				t.Fatalf("round %d (%v): delivery %d is id %s: %v", round, res, i, d.Item.ID, ids(got))
			}
		}
		if n := c.h.Counters().HistoryUnanchored; n != 0 {
			t.Fatalf("round %d: %d catch-ups released unanchored", round, n)
		}
		c.h.Close()
	}
}

func TestHistoryReadsAreSharedByAStormOfHolds(t *testing.T) {
	s := runJetStream(t)
	a, c := newHistoryNode(t, serverURL(s)), newHistoryNode(t, serverURL(s))
	waitReady(t, a, c)
	publishIDs(t, a, "storm", 1, 5)
	const holds = 50
	var wg sync.WaitGroup
	results := make([]hub.HistoryResult, holds)
	subs := make([]*hub.Subscriber, holds)
	for i := range holds {
		subs[i] = hub.NewSubscriber(hub.KindStream)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = c.h.SubscribeAfter(subs[i], "storm", "1")
		}()
	}
	wg.Wait()
	for i, sub := range subs {
		if results[i] != hub.HistoryRecovered {
			t.Fatalf("hold %d: %v", i, results[i])
		}
		if got := strings.Join(ids(sub.Take(nil)), ","); got != "2,3,4,5" {
			t.Fatalf("hold %d caught up with %s", i, got)
		}
	}
	st := c.bus.Stats().History
	if st.Fetches >= holds/2 {
		t.Fatalf("%d holds made %d reads", holds, st.Fetches)
	}
	t.Logf("%d holds made %d reads", holds, st.Fetches)
}

func TestLiveDeliveryGoesOnWithoutJetStream(t *testing.T) {
	s := runServer(t, -1) // no JetStream
	defer s.Shutdown()
	a, b := newHistoryNode(t, serverURL(s)), newHistoryNode(t, serverURL(s))
	sub := b.subscribe(t, "news")
	publishIDs(t, a, "news", 1, 3)
	if got := strings.Join(ids(collect(t, sub, 3)), ","); got != "1,2,3" {
		t.Fatalf("live delivery %s", got)
	}
	eventually(t, "history writes counted as failed", func() bool { return a.bus.Stats().History.WriteFailed >= 3 })
	if a.bus.Stats().History.Ready {
		t.Fatal("history stream reported ready without JetStream")
	}
	// A hold with a prev-id falls back, as without history.
	hold := hub.NewSubscriber(hub.KindStream)
	if _, res := b.h.SubscribeAfter(hold, "other", "1"); res != hub.HistoryMiss {
		t.Fatalf("result %v, want miss", res)
	}
	if st := b.bus.Stats().History; st.FetchFailed != 1 {
		t.Fatalf("history stats %+v", st)
	}
}

func TestLiveDeliveryGoesOnWhenTheStreamIsDeletedAndTheStreamComesBack(t *testing.T) {
	s := runJetStream(t)
	a, b := newHistoryNode(t, serverURL(s)), newHistoryNode(t, serverURL(s))
	waitReady(t, a, b)
	sub := b.subscribe(t, "news")
	nc, err := nats.Connect(serverURL(s))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(context.Background(), StreamName(DefaultPrefix)); err != nil {
		t.Fatal(err)
	}
	publishIDs(t, a, "news", 1, 3)
	if got := strings.Join(ids(collect(t, sub, 3)), ","); got != "1,2,3" {
		t.Fatalf("live delivery %s", got)
	}
	if st := a.bus.Stats().History; st.WriteFailed == 0 {
		t.Fatalf("history stats %+v: the lost writes are not counted", st)
	}
	// The bus makes the stream again, and history works from then on.
	eventually(t, "the stream made again and a publish stored", func() bool {
		publishIDs(t, a, "again", 1, 1)
		_, err := js.Stream(context.Background(), StreamName(DefaultPrefix))
		return err == nil && a.bus.Stats().History.Stored > 0
	})
	publishIDs(t, a, "again", 2, 3)
	c := newHistoryNode(t, serverURL(s))
	waitReady(t, c)
	hold := hub.NewSubscriber(hub.KindStream)
	if _, res := c.h.SubscribeAfter(hold, "again", "2"); res != hub.HistoryRecovered {
		t.Fatalf("result %v, want recovered", res)
	}
	if got := strings.Join(ids(hold.Take(nil)), ","); got != "3" {
		t.Fatalf("caught up with %s", got)
	}
}
