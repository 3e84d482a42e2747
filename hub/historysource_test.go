package hub

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddy-grip/grip/formats"
)

// sourceBus is a bus whose history reads are scripted: read n (from 0)
// runs during(n) first, so a test can publish live while a read is in
// flight, then answers reads[n].
type sourceBus struct {
	h      *Hub
	mu     sync.Mutex
	reads  []sourceRead
	froms  []uint64
	during func(n int)
}

type sourceRead struct {
	items []*formats.Item
	next  uint64
	err   error
}

func (b *sourceBus) Publish(items []*formats.Item) error { b.h.Receive(items); return nil }
func (b *sourceBus) Follow(string) error                 { return nil }
func (b *sourceBus) Unfollow(string) error               { return nil }
func (b *sourceBus) Close() error                        { return nil }
func (b *sourceBus) KeepsHistory(ch string) bool         { return ch != "local-only" }
func (b *sourceBus) readsMade() (froms []uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append(froms, b.froms...)
}

func (b *sourceBus) ReadHistory(_ context.Context, _ string, from uint64) ([]*formats.Item, uint64, bool, error) {
	b.mu.Lock()
	n := len(b.froms)
	b.froms = append(b.froms, from)
	during := b.during
	b.mu.Unlock()
	if during != nil {
		during(n)
	}
	if n >= len(b.reads) {
		return nil, 0, false, errors.New("no more scripted reads")
	}
	r := b.reads[n]
	return r.items, r.next, r.err == nil, r.err
}

func items(ch string, ids ...string) []*formats.Item {
	out := make([]*formats.Item, len(ids))
	for i, id := range ids {
		out[i] = item(ch, id, "")
	}
	return out
}

func sourceHub(t *testing.T, b *sourceBus) *Hub {
	h := historyHub(HistoryConfig{Size: 10})
	b.h = h
	h.SetBus(b)
	t.Cleanup(h.Close)
	return h
}

// takeUntil takes s's deliveries until it has n of them.
func takeUntil(t *testing.T, s *Subscriber, n int) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n {
		got = append(got, itemIDs(s)...)
		if time.Now().After(deadline) {
			t.Fatalf("got %v, want %d deliveries", got, n)
		}
		time.Sleep(time.Millisecond)
	}
	return got
}

func TestCatchUpFromTheBusAnchorsOnTheFirstLiveItem(t *testing.T) {
	// The first read ends before 4 (the source had not stored it yet and
	// its live copy never reached the node); 5 comes live, and the second
	// read, from where the first ended, shows 4 before it.
	b := &sourceBus{reads: []sourceRead{
		{items: items("c", "1", "2", "3"), next: 10},
		{items: items("c", "4", "5"), next: 12},
	}}
	h := sourceHub(t, b)
	s := NewSubscriber(KindStream)
	if _, res := h.SubscribeAfter(s, "c", "2"); res != HistoryRecovered {
		t.Fatalf("result %v", res)
	}
	wantIDs(t, "the replay", itemIDs(s), "3")
	publishIDs(t, h, "c", "5")
	wantIDs(t, "after the anchor", takeUntil(t, s, 2), "4", "5")
	publishIDs(t, h, "c", "6")
	wantIDs(t, "live", takeUntil(t, s, 1), "6")
	if froms := b.readsMade(); len(froms) != 2 || froms[0] != 0 || froms[1] != 10 {
		t.Fatalf("reads from %v", froms)
	}
	if c := h.Counters(); c.HistoryFromBus != 1 || c.HistoryUnanchored != 0 || c.HistoryRecovered != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestCatchUpFromTheBusDropsLiveCopiesOfReplayedItems(t *testing.T) {
	// 3 arrives live during the read (an overlap: no second read), and
	// 4's live copy arrives after the replay.
	b := &sourceBus{reads: []sourceRead{{items: items("c", "1", "2", "3", "4"), next: 10}}}
	h := sourceHub(t, b)
	b.during = func(int) { publishIDs(t, h, "c", "3") }
	s := NewSubscriber(KindStream)
	if _, res := h.SubscribeAfter(s, "c", "2"); res != HistoryRecovered {
		t.Fatalf("result %v", res)
	}
	publishIDs(t, h, "c", "4", "5")
	wantIDs(t, "deliveries", takeUntil(t, s, 3), "3", "4", "5")
	if froms := b.readsMade(); len(froms) != 1 {
		t.Fatalf("reads from %v", froms)
	}
}

func TestCatchUpFromTheBusMissReleasesLiveItems(t *testing.T) {
	for name, r := range map[string]sourceRead{
		"prev-id not kept": {items: items("c", "7", "8"), next: 10},
		"read failed":      {err: errors.New("stream unavailable")},
	} {
		t.Run(name, func(t *testing.T) {
			b := &sourceBus{reads: []sourceRead{r}}
			h := sourceHub(t, b)
			b.during = func(int) { publishIDs(t, h, "c", "9") }
			s := NewSubscriber(KindStream)
			if _, res := h.SubscribeAfter(s, "c", "2"); res != HistoryMiss {
				t.Fatalf("result %v", res)
			}
			wantIDs(t, "live only", itemIDs(s), "9")
			publishIDs(t, h, "c", "10")
			wantIDs(t, "live", itemIDs(s), "10")
		})
	}
}

func TestCatchUpPrefersTheRingAndSkipsChannelsTheBusDoesNotKeep(t *testing.T) {
	b := &sourceBus{}
	h := sourceHub(t, b)
	// The ring has what this node received live.
	keep := NewSubscriber(KindStream)
	h.Subscribe(keep, "c")
	publishIDs(t, h, "c", "1", "2", "3")
	s := NewSubscriber(KindStream)
	if _, res := h.SubscribeAfter(s, "c", "1"); res != HistoryRecovered {
		t.Fatalf("result %v", res)
	}
	wantIDs(t, "from the ring", itemIDs(s), "2", "3")
	o := NewSubscriber(KindStream)
	if _, res := h.SubscribeAfter(o, "local-only", "1"); res != HistoryMiss {
		t.Fatalf("result %v", res)
	}
	if froms := b.readsMade(); len(froms) != 0 {
		t.Fatalf("the bus was read from %v", froms)
	}
}

func TestCatchUpEndsWithTheSubscription(t *testing.T) {
	b := &sourceBus{reads: []sourceRead{{items: items("c", "1", "2"), next: 10}}}
	h := sourceHub(t, b)
	s := NewSubscriber(KindWebSocket)
	b.during = func(int) { h.Unsubscribe(s, "c") }
	if _, res := h.SubscribeAfter(s, "c", "1"); res != HistoryMiss {
		t.Fatalf("result %v", res)
	}
	// Subscribed again, s receives live items at once.
	h.Subscribe(s, "c")
	publishIDs(t, h, "c", "3")
	wantIDs(t, "live", itemIDs(s), "3")
}

func TestCatchUpReleasesAnItemWithoutIDUnanchoredAndLetsHintsThrough(t *testing.T) {
	b := &sourceBus{reads: []sourceRead{{items: items("c", "1", "2"), next: 10}}}
	h := sourceHub(t, b)
	s := NewSubscriber(KindStream)
	if _, res := h.SubscribeAfter(s, "c", "1"); res != HistoryRecovered {
		t.Fatalf("result %v", res)
	}
	wantIDs(t, "the replay", itemIDs(s), "2")
	// A hint is no content: it reaches the hold at once.
	h.Update("c")
	if got := s.Take(nil); len(got) != 1 || got[0].Item.HTTPStream.Action != formats.ActionHint {
		t.Fatalf("hint during the anchoring: %v", got)
	}
	// An item without id cannot be looked up: released, and counted.
	publishIDs(t, h, "c", "")
	wantIDs(t, "the item without id", takeUntil(t, s, 1), "")
	if c := h.Counters(); c.HistoryUnanchored != 1 {
		t.Fatalf("counters %+v", c)
	}
	if froms := b.readsMade(); len(froms) != 1 {
		t.Fatalf("reads from %v", froms)
	}
}
