package hub

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddy-grip/grip/formats"
)

func historyHub(hc HistoryConfig) *Hub {
	return New(Config{WakeInterval: -1, History: hc})
}

// itemIDs takes s's queue and returns the items' ids.
func itemIDs(s *Subscriber) []string {
	var out []string
	for _, d := range s.Take(nil) {
		out = append(out, d.Item.ID)
	}
	return out
}

func publishIDs(t *testing.T, h *Hub, ch string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := h.Publish([]*formats.Item{item(ch, id, "")}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHistoryKeepsTheLastItemsAndCatchesUpAfterAPrevID(t *testing.T) {
	h := historyHub(HistoryConfig{Size: 3})
	defer h.Close()
	// Nobody subscribed: the items go to the history only.
	publishIDs(t, h, "c", "1", "2", "3", "4", "5")

	s := NewSubscriber(KindStream)
	if _, res := h.SubscribeAfter(s, "c", "3"); res != HistoryRecovered {
		t.Fatalf("prev-id 3: %v, want recovered", res)
	}
	wantIDs(t, "after 3", itemIDs(s), "4", "5")
	publishIDs(t, h, "c", "6")
	wantIDs(t, "live after the catch-up", itemIDs(s), "6")

	for prev, want := range map[string]HistoryResult{"2": HistoryMiss, "6": HistoryRecovered, "never": HistoryMiss, "": HistoryOff} {
		s := NewSubscriber(KindStream)
		if _, res := h.SubscribeAfter(s, "c", prev); res != want {
			t.Fatalf("prev-id %q: %v, want %v", prev, res, want)
		}
		wantIDs(t, "queue of prev-id "+prev, itemIDs(s))
	}
	if c := h.Counters(); c.HistoryItems != 3 || c.HistoryRecovered != 2 || c.HistoryMissed != 2 {
		t.Fatalf("counters %+v", c)
	}
}

func TestHistoryResumesAfterTheNewestOfARepeatedID(t *testing.T) {
	h := historyHub(HistoryConfig{Size: 10})
	defer h.Close()
	h.Configure(Config{WakeInterval: -1, IDCacheTTL: -1, History: HistoryConfig{Size: 10}}) // repeated ids are not duplicates here
	publishIDs(t, h, "c", "a", "b", "a", "c")
	s := NewSubscriber(KindStream)
	h.SubscribeAfter(s, "c", "a")
	wantIDs(t, "after the newest a", itemIDs(s), "c")
}

func TestHistoryOnlyForMatchingChannels(t *testing.T) {
	h := historyHub(HistoryConfig{Size: 10, Channels: []string{"news.*", "ticker/*/x", "exact"}})
	defer h.Close()
	for ch, want := range map[string]HistoryResult{
		"news.a": HistoryRecovered, "news.": HistoryRecovered, "ticker/a/b/x": HistoryRecovered, "exact": HistoryRecovered,
		"news": HistoryOff, "other": HistoryOff, "exactly": HistoryOff, "ticker/a": HistoryOff,
	} {
		publishIDs(t, h, ch, "1", "2")
		if _, res := h.SubscribeAfter(NewSubscriber(KindStream), ch, "1"); res != want {
			t.Errorf("%q: %v, want %v", ch, res, want)
		}
		if h.HasHistory(ch) != (want != HistoryOff) {
			t.Errorf("HasHistory(%q) = %v", ch, !(want != HistoryOff))
		}
	}
}

func TestHistoryDropsItemsPastTheTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := historyHub(HistoryConfig{Size: 10, TTL: time.Minute})
		defer h.Close()
		publishIDs(t, h, "c", "old")
		time.Sleep(2 * time.Minute)
		publishIDs(t, h, "c", "new1", "new2")
		if _, res := h.SubscribeAfter(NewSubscriber(KindStream), "c", "old"); res != HistoryMiss {
			t.Fatalf("an item past the TTL: %v, want a miss", res)
		}
		s := NewSubscriber(KindStream)
		if _, res := h.SubscribeAfter(s, "c", "new1"); res != HistoryRecovered {
			t.Fatalf("a fresh item: %v, want recovered", res)
		}
		wantIDs(t, "after new1", itemIDs(s), "new2")
		if c := h.Counters(); c.HistoryItems != 2 {
			t.Fatalf("%d items kept, want the 2 within the TTL", c.HistoryItems)
		}
	})
}

func TestHistoryStaysWithinItsByteBoundDroppingTheOldestChannels(t *testing.T) {
	const budget = 64 << 10
	h := historyHub(HistoryConfig{Size: 100, MaxBytes: budget})
	defer h.Close()
	for i := range 2000 {
		ch := fmt.Sprint("ch", i)
		publishIDs(t, h, ch, "1", "2")
		if b := h.Counters().HistoryBytes; b > budget {
			t.Fatalf("after %d channels the history holds %d bytes, over %d", i+1, b, budget)
		}
	}
	// The newest channels are kept, the oldest went.
	if _, res := h.SubscribeAfter(NewSubscriber(KindStream), "ch1999", "1"); res != HistoryRecovered {
		t.Fatalf("newest channel: %v", res)
	}
	if _, res := h.SubscribeAfter(NewSubscriber(KindStream), "ch0", "1"); res != HistoryMiss {
		t.Fatalf("oldest channel: %v, want it evicted", res)
	}
}

func TestHistoryCatchUpMustFitTheQueue(t *testing.T) {
	h := New(Config{WakeInterval: -1, QueueItems: 3, History: HistoryConfig{Size: 10}})
	defer h.Close()
	publishIDs(t, h, "c", "1", "2", "3", "4", "5", "6")
	s := NewSubscriber(KindStream)
	if _, res := h.SubscribeAfter(s, "c", "1"); res != HistoryMiss {
		t.Fatalf("5 items into a queue of 3: %v, want a miss", res)
	}
	wantIDs(t, "nothing queued", itemIDs(s))
	if s.Reason() != ReasonNone {
		t.Fatalf("subscriber ended: %v", s.Reason())
	}
}

func TestHistoryReplaysOnlyTheSubscribersFormat(t *testing.T) {
	h := historyHub(HistoryConfig{Size: 10})
	defer h.Close()
	publishIDs(t, h, "c", "1")
	if err := h.Publish([]*formats.Item{{Channel: "c", ID: "ws", WSMessage: &formats.WSMessage{Content: []byte("x")}}, item("c", "3", "")}); err != nil {
		t.Fatal(err)
	}
	s := NewSubscriber(KindResponse)
	h.SubscribeAfter(s, "c", "1")
	wantIDs(t, "response hold", itemIDs(s), "3")
}

// TestHistoryCatchUpRacingAPublisherHasNoGapAndNoDuplicate subscribes
// with a prev-id while a publisher runs, many times, with and without
// other subscribers on the channel: the subscriber gets every item after
// its prev-id exactly once, in order.
func TestHistoryCatchUpRacingAPublisherHasNoGapAndNoDuplicate(t *testing.T) {
	h := historyHub(HistoryConfig{Size: 1000})
	defer h.Close()
	const before, total = 20, 120
	for round := range 60 {
		ch := fmt.Sprint("race", round)
		if round%2 == 1 {
			h.Subscribe(NewSubscriber(KindStream), ch) // the channel exists: the delivery path
		}
		for i := 1; i <= before; i++ {
			publishIDs(t, h, ch, strconv.Itoa(i))
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := before + 1; i <= total; i++ {
				if err := h.Publish([]*formats.Item{item(ch, strconv.Itoa(i), "")}); err != nil {
					t.Error(err)
				}
			}
		}()
		s := NewSubscriber(KindStream)
		if _, res := h.SubscribeAfter(s, ch, strconv.Itoa(before)); res != HistoryRecovered {
			t.Fatalf("round %d: %v", round, res)
		}
		wg.Wait()
		var want []string
		for i := before + 1; i <= total; i++ {
			want = append(want, strconv.Itoa(i))
		}
		wantIDs(t, fmt.Sprint("round ", round), itemIDs(s), want...)
	}
}

// TestHistoryHasAnItemOnceItsPublishFoundNoChannel subscribes at the very
// moment a publish found no channel to deliver to: the item must be in the
// history already, or that subscriber would never get it.
func TestHistoryHasAnItemOnceItsPublishFoundNoChannel(t *testing.T) {
	h := historyHub(HistoryConfig{Size: 10})
	defer h.Close()
	publishIDs(t, h, "c", "1")
	s := NewSubscriber(KindStream)
	var res HistoryResult
	once := false
	h.onNoChannel = func(ch string) {
		if !once {
			once = true
			_, res = h.SubscribeAfter(s, ch, "1")
		}
	}
	publishIDs(t, h, "c", "2")
	if res != HistoryRecovered {
		t.Fatalf("subscribe at the no-channel moment: %v", res)
	}
	wantIDs(t, "the item that found no channel", itemIDs(s), "2")
}

// BenchmarkHistoryMemory10kChannels100Items fills the history of 10,000
// channels with 100 items of 100 bytes each and reports the heap it took
// beside the history's own byte count.
func BenchmarkHistoryMemory10kChannels100Items(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h := historyHub(HistoryConfig{Size: 100, MaxBytes: 1 << 30})
		content := []byte(strings.Repeat("x", 100))
		for c := range 10000 {
			ch := "ch" + strconv.Itoa(c)
			for i := range 100 {
				_ = h.Publish([]*formats.Item{{Channel: ch, ID: strconv.Itoa(i), HTTPStream: &formats.HTTPStream{Content: content}}})
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		c := h.Counters()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(c.HistoryItems), "heap-B/item")
		b.ReportMetric(float64(c.HistoryBytes)/float64(c.HistoryItems), "counted-B/item")
		b.ReportMetric(float64(c.HistoryItems), "items")
		h.Close()
	}
}
