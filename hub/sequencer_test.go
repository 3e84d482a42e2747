package hub

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddy-grip/grip/formats"
)

// seqHub returns a hub with one stream subscriber on "c" that has already
// received item "1", so the channel's last id is "1".
func seqHub(t *testing.T, cfg Config) (*Hub, *Subscriber) {
	t.Helper()
	cfg.IDCacheTTL = -1 // these tests republish ids on purpose
	h := New(cfg)
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")
	h.Publish([]*formats.Item{item("c", "1", "")})
	wantIDs(t, "setup", taken(s), "c:1")
	wantLast(t, h, "1", true)
	return h, s
}

func wantLast(t *testing.T, h *Hub, id string, known bool) {
	t.Helper()
	if got, ok := h.LastID("c"); got != id || ok != known {
		t.Fatalf("LastID = %q,%v; want %q,%v", got, ok, id, known)
	}
}

func publish(h *Hub, items ...*formats.Item) { h.Publish(items) }

func TestSequencerHoldsOutOfOrderItemUntilPredecessor(t *testing.T) {
	h, s := seqHub(t, Config{})
	publish(h, item("c", "3", "2"))
	wantIDs(t, "while 2 is missing", taken(s))
	wantLast(t, h, "1", true)

	publish(h, item("c", "2", "1"))
	wantIDs(t, "after 2 arrives", taken(s), "c:2", "c:3")
	wantLast(t, h, "3", true)
	if st := h.Stats(); st.Reordered != 1 || st.SequencerTimeouts != 0 {
		t.Fatalf("stats = %+v, want 1 reordered, no timeouts", st)
	}
}

func TestSequencerReleasesAChainOfHeldItems(t *testing.T) {
	h, s := seqHub(t, Config{})
	publish(h, item("c", "4", "3"), item("c", "3", "2"), item("c", "5", "4"))
	wantIDs(t, "held", taken(s))
	publish(h, item("c", "2", "1"))
	wantIDs(t, "released", taken(s), "c:2", "c:3", "c:4", "c:5")
	wantLast(t, h, "5", true)
	if st := h.Stats(); st.Reordered != 3 {
		t.Fatalf("Reordered = %d, want 3", st.Reordered)
	}
}

func TestSequencerDeliversHeldItemAfterMessageWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const wait = 5 * time.Second
		h, s := seqHub(t, Config{MessageWait: wait})
		publish(h, item("c", "3", "2"))
		publish(h, item("c", "4", "3")) // chained behind 3

		time.Sleep(wait - time.Millisecond)
		synctest.Wait()
		wantIDs(t, "just before MessageWait", taken(s))

		time.Sleep(time.Millisecond)
		synctest.Wait()
		wantIDs(t, "at MessageWait", taken(s), "c:3", "c:4")
		wantLast(t, h, "4", true)
		st := h.Stats()
		if st.SequencerTimeouts != 1 || st.Reordered != 2 {
			t.Fatalf("stats = %+v, want 1 timeout, 2 reordered", st)
		}

		// The late predecessor is now out of sequence: delivered as-is.
		publish(h, item("c", "2", "1"))
		wantIDs(t, "late predecessor", taken(s))
		time.Sleep(wait)
		synctest.Wait()
		wantIDs(t, "late predecessor after wait", taken(s), "c:2")
	})
}

func TestSequencerReleasesExpiredItemsInArrivalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, s := seqHub(t, Config{MessageWait: time.Second})
		publish(h, item("c", "b", "x"))
		time.Sleep(100 * time.Millisecond)
		publish(h, item("c", "a", "y"))
		time.Sleep(100 * time.Millisecond)
		publish(h, item("c", "d", "z"))

		time.Sleep(time.Second - 150*time.Millisecond)
		synctest.Wait()
		wantIDs(t, "first expiry", taken(s), "c:b")
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		wantIDs(t, "second expiry", taken(s), "c:a")
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		wantIDs(t, "third expiry", taken(s), "c:d")
	})
}

func TestSequencerDropsSecondItemOnTheSamePrevID(t *testing.T) {
	h, s := seqHub(t, Config{})
	first, second := item("c", "3a", "2"), item("c", "3b", "2")
	publish(h, first, second)
	if st := h.Stats(); st.SequencerDropped != 1 {
		t.Fatalf("SequencerDropped = %d, want 1", st.SequencerDropped)
	}
	publish(h, item("c", "2", "1"))
	wantIDs(t, "released", taken(s), "c:2", "c:3a")
}

func TestSequencerHoldsAtMostSequencerMaxPerChannel(t *testing.T) {
	h, s := seqHub(t, Config{SequencerMax: 2})
	publish(h, item("c", "3", "2"), item("c", "4", "3"), item("c", "5", "4"))
	if st := h.Stats(); st.SequencerDropped != 1 {
		t.Fatalf("SequencerDropped = %d, want 1", st.SequencerDropped)
	}
	publish(h, item("c", "2", "1"))
	wantIDs(t, "released", taken(s), "c:2", "c:3", "c:4")
}

func TestFirstItemAfterFirstSubscribePassesAtOnce(t *testing.T) {
	h := New(Config{})
	// Published with nobody listening: not sequenced, sets no last id.
	publish(h, item("c", "1", ""))
	wantLast(t, h, "", false)

	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")
	publish(h, item("c", "7", "6"))
	wantIDs(t, "first item", taken(s), "c:7")
	wantLast(t, h, "7", true)
}

func TestLastIDIsForgottenWhenTheLastSubscriberLeaves(t *testing.T) {
	h, s := seqHub(t, Config{})
	other := NewSubscriber(KindWebSocket)
	h.Subscribe(other, "c")
	h.Unsubscribe(s, "c")
	wantLast(t, h, "1", true) // one subscriber remains

	h.UnsubscribeAll(other)
	wantLast(t, h, "", false)

	h.Subscribe(s, "c")
	publish(h, item("c", "9", "8"))
	wantIDs(t, "after resubscribe", taken(s), "c:9")
}

func TestHeldItemsAreDroppedWhenTheLastSubscriberLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, s := seqHub(t, Config{MessageWait: time.Second})
		publish(h, item("c", "3", "2"))
		h.Unsubscribe(s, "c")
		if st := h.Stats(); st.SequencerDropped != 1 {
			t.Fatalf("SequencerDropped = %d, want 1", st.SequencerDropped)
		}
		h.Subscribe(s, "c")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		wantIDs(t, "after the wait", taken(s))
	})
}

func TestItemWithoutIDClearsLastID(t *testing.T) {
	h, s := seqHub(t, Config{})
	publish(h, item("c", "", ""))
	wantLast(t, h, "", false)
	publish(h, item("c", "5", "4"))
	wantIDs(t, "deliveries", taken(s), "c:", "c:5")
}

func TestItemWithoutIDReleasesNothingButUnblocksLaterOnes(t *testing.T) {
	h, s := seqHub(t, Config{})
	publish(h, item("c", "3", "2"), item("c", "", "1"))
	wantIDs(t, "id-less item passes, 3 stays held", taken(s), "c:")
	publish(h, item("c", "2", "x")) // last id unknown: passes, and releases 3
	wantIDs(t, "2 then 3", taken(s), "c:2", "c:3")
}

func TestNoSeqBypassesTheSequencer(t *testing.T) {
	h, s := seqHub(t, Config{})
	it := item("c", "3", "2")
	it.NoSeq = true
	publish(h, it)
	wantIDs(t, "no-seq item", taken(s), "c:3")
	wantLast(t, h, "1", true) // as in Pushpin, no-seq items do not move the last id
}

func TestItemWithoutPrevIDIsNeverHeld(t *testing.T) {
	h, s := seqHub(t, Config{})
	publish(h, item("c", "5", ""))
	wantIDs(t, "deliveries", taken(s), "c:5")
	wantLast(t, h, "5", true)
}

func TestSequencerDropsHeldItemsPastItsByteCap(t *testing.T) {
	h, s := seqHub(t, Config{SequencerBytes: 3 << 20, QueueBytes: 8 << 20})
	publish(h, item("c", "0", ""))
	wantIDs(t, "first", taken(s), "c:0")
	big := func(id, prev string) *formats.Item {
		it := item("c", id, prev)
		it.HTTPStream.Content = make([]byte, 1<<20)
		return it
	}
	// Items waiting on 1..5, 1 MB each: two fit under 3 MB, the rest drop.
	for i := 2; i <= 6; i++ {
		publish(h, big(fmt.Sprint(i), fmt.Sprint(i-1)))
	}
	st := h.Stats()
	if st.SequencerEntries != 2 || st.SequencerDropped != 3 {
		t.Fatalf("held %d, dropped %d; want 2 held and 3 dropped", st.SequencerEntries, st.SequencerDropped)
	}
	if st.SequencerBytes > 3<<20 || st.SequencerBytes < 2<<20 {
		t.Fatalf("held %d bytes, want 2 MB to 3 MB", st.SequencerBytes)
	}
	publish(h, item("c", "1", "0"))
	wantIDs(t, "chain", taken(s), "c:1", "c:2", "c:3")
	if st := h.Stats(); st.SequencerEntries != 0 || st.SequencerBytes != 0 {
		t.Fatalf("after release: %d held, %d bytes, want none", st.SequencerEntries, st.SequencerBytes)
	}
}
