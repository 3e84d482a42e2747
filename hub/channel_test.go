package hub

import (
	"strconv"
	"sync"
	"testing"

	"github.com/caddy-grip/grip/formats"
)

func TestEmptyChannelIsRemovedAndRecreated(t *testing.T) {
	h := New(Config{})
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")
	h.Subscribe(s, "c")
	if st := h.Stats(); st.Channels != 1 || st.Subscribers != 1 {
		t.Fatalf("stats = %+v, want 1 channel, 1 subscriber", st)
	}
	h.Unsubscribe(s, "c")
	h.Unsubscribe(s, "c") // already gone: no-op
	h.Unsubscribe(s, "never")
	if st := h.Stats(); st.Channels != 0 || st.Subscribers != 0 {
		t.Fatalf("stats = %+v, want empty", st)
	}
	h.Subscribe(s, "c")
	publish(h, item("c", "1", ""))
	wantIDs(t, "after recreate", taken(s), "c:1")
}

func TestSubscriberOnManyChannelsGetsEach(t *testing.T) {
	h := New(Config{})
	s := NewSubscriber(KindWebSocket)
	var items []*formats.Item
	var want []string
	for i := range 300 { // several per shard
		ch := "ch" + strconv.Itoa(i)
		h.Subscribe(s, ch)
		items = append(items, item(ch, "x", ""))
		want = append(want, ch+":x")
	}
	if n := len(s.Channels()); n != 300 {
		t.Fatalf("Channels() has %d, want 300", n)
	}
	h.Publish(items)
	wantIDs(t, "deliveries", taken(s), want...)
}

// TestPublishRacingSubscribeIsAllOrNothingPerBatch: the items of one Publish
// call on one channel reach a subscriber that joins meanwhile either all or
// none, and nothing after its first delivery is missed.
func TestPublishRacingSubscribeIsAllOrNothingPerBatch(t *testing.T) {
	const batches, per = 200, 10
	h := New(Config{QueueItems: 2 * batches * per})
	anchor := NewSubscriber(KindStream) // keeps the channel alive
	h.Subscribe(anchor, "c")

	var wg sync.WaitGroup
	joiners := make(chan *Subscriber, 200)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(joiners)
		for range 200 {
			s := NewSubscriber(KindStream)
			h.Subscribe(s, "c")
			joiners <- s
		}
	}()

	for b := range batches {
		batch := make([]*formats.Item, per)
		for i := range batch {
			batch[i] = item("c", strconv.Itoa(b*per+i), "")
			batch[i].NoSeq = true
		}
		h.Publish(batch)
	}
	wg.Wait()

	if isClosed(anchor) {
		t.Fatalf("anchor closed: %v", anchor.Reason())
	}
	mid := 0
	defer func() { t.Logf("%d of 200 joiners joined mid-stream", mid) }()
	for s := range joiners {
		if isClosed(s) {
			t.Fatalf("joiner closed: %v", s.Reason())
		}
		got := s.Take(nil)
		if len(got) == 0 {
			continue
		}
		first, _ := strconv.Atoi(got[0].Item.ID)
		if first > 0 {
			mid++
		}
		if first%per != 0 {
			t.Fatalf("subscriber's first delivery %d is in the middle of a batch", first)
		}
		if want := batches*per - first; len(got) != want {
			t.Fatalf("subscriber from %d got %d deliveries, want %d", first, len(got), want)
		}
		for i, d := range got {
			if d.Item.ID != strconv.Itoa(first+i) {
				t.Fatalf("delivery %d is %q, want %d", i, d.Item.ID, first+i)
			}
		}
	}
}
