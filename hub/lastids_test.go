package hub

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddy-grip/grip/formats"
)

func TestLastPublishedIDIsKeptWithoutSubscribers(t *testing.T) {
	h := New(Config{})
	if _, ok := h.LastPublishedID("c"); ok {
		t.Fatal("known before any publish")
	}
	h.Publish([]*formats.Item{item("c", "1", ""), item("c", "2", "1")})
	if id, ok := h.LastPublishedID("c"); !ok || id != "2" {
		t.Fatalf("got %q %v, want 2", id, ok)
	}
	// A duplicate does not move it back.
	h.Publish([]*formats.Item{item("c", "1", "")})
	if id, _ := h.LastPublishedID("c"); id != "2" {
		t.Fatalf("after duplicate: %q", id)
	}
	// An item without an id makes it unknown.
	h.Publish([]*formats.Item{item("c", "", "")})
	if _, ok := h.LastPublishedID("c"); ok {
		t.Fatal("still known after an item without id")
	}
}

func TestLastIDsStayBounded(t *testing.T) {
	l := newLastIDs(64, DefaultLastIDBytes) // 2 per generation per shard
	for i := range 10000 {
		ch := fmt.Sprint("c", i)
		l.set(uint64(i), ch, "x")
	}
	n := 0
	for i := range l.shards {
		n += len(l.shards[i].cur) + len(l.shards[i].old)
	}
	if n > 64 {
		t.Fatalf("%d entries kept, want at most 64", n)
	}
	if id, ok := l.get(9999, "c9999"); !ok || id != "x" {
		t.Fatal("most recent channel forgotten")
	}
}

// A holder subscribes, then compares its prev-id with the channel's last
// published id. A publish that found no channel to deliver to must already
// show as the last id to a holder subscribing right then, or a long-poll
// would wait out its timeout for an item it missed.
func TestSubscribeRightAfterAPublishFoundNoChannelSeesItsID(t *testing.T) {
	h := New(Config{})
	var seen string
	h.onNoChannel = func(ch string) {
		s := NewSubscriber(KindResponse)
		h.Subscribe(s, ch)
		seen, _ = h.LastPublishedID(ch)
		h.UnsubscribeAll(s)
	}
	h.Publish([]*formats.Item{item("late", "7", "")})
	if seen != "7" {
		t.Fatalf("a holder subscribing as the publish found no channel saw last id %q, want 7", seen)
	}
}

func TestLastIDStoreKeepsLongChannelNamesWithinItsByteBudget(t *testing.T) {
	const budget = DefaultLastIDBytes
	h := New(Config{})
	name := strings.Repeat("n", 990_000)
	for i := range 300 {
		ch := fmt.Sprint(name, i)
		h.Publish([]*formats.Item{item(ch, "x", "")})
		if st := h.Stats(); st.LastIDBytes > budget {
			t.Fatalf("after %d publishes the last-id store holds %d bytes, budget %d", i+1, st.LastIDBytes, budget)
		}
	}
	st := h.Stats()
	if st.LastIDEntries == 0 || st.LastIDEntries > budget/990_000 {
		t.Fatalf("%d channels remembered, want between 1 and %d", st.LastIDEntries, budget/990_000)
	}
	var n int
	for i := range h.lastPublished.shards {
		sh := &h.lastPublished.shards[i]
		for k, v := range sh.cur {
			n += lastIDCost(k, v)
		}
		for k, v := range sh.old {
			n += lastIDCost(k, v)
		}
	}
	if n != st.LastIDBytes {
		t.Fatalf("Stats says %d bytes, the store holds %d", st.LastIDBytes, n)
	}
}
