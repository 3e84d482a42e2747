package hub

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func TestDuplicateIDWithinTTLIsDroppedEvenWithNoSeq(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		h := New(Config{IDCacheTTL: ttl})
		s := NewSubscriber(KindStream)
		h.Subscribe(s, "c")
		h.Subscribe(s, "d")

		noSeq := item("c", "1", "")
		noSeq.NoSeq = true
		publish(h, item("c", "1", ""), noSeq, item("d", "1", ""))
		wantIDs(t, "first pass", taken(s), "c:1", "d:1")

		time.Sleep(ttl - time.Nanosecond)
		publish(h, item("c", "1", ""))
		wantIDs(t, "just inside the window", taken(s))
		if st := h.Stats(); st.Duplicates != 2 {
			t.Fatalf("Duplicates = %d, want 2", st.Duplicates)
		}

		time.Sleep(time.Nanosecond)
		publish(h, item("c", "1", ""))
		wantIDs(t, "after the window", taken(s), "c:1")
	})
}

func TestDuplicatesAreDroppedWithoutSubscribersToo(t *testing.T) {
	h := New(Config{})
	publish(h, item("c", "1", ""))
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")
	publish(h, item("c", "1", ""))
	wantIDs(t, "deliveries", taken(s))
}

func TestDedupDisabledOrWithoutIDDeliversRepeats(t *testing.T) {
	cases := []struct {
		name string
		ttl  time.Duration
		id   string
	}{
		{"negative ttl", -1, "1"},
		{"no id", time.Minute, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Config{IDCacheTTL: tc.ttl})
			s := NewSubscriber(KindStream)
			h.Subscribe(s, "c")
			publish(h, item("c", tc.id, ""), item("c", tc.id, ""))
			wantIDs(t, "deliveries", taken(s), "c:"+tc.id, "c:"+tc.id)
			if st := h.Stats(); st.Duplicates != 0 {
				t.Fatalf("Duplicates = %d, want 0", st.Duplicates)
			}
		})
	}
}

func TestDedupForgetsExpiredIDs(t *testing.T) {
	d := newDedup()
	const now, ttl = int64(1000), time.Second
	for i, id := range []string{"a", "b", "c"} {
		if d.check(uint64(i), "ch", id, now, ttl, DefaultDedupBytes) {
			t.Fatalf("%s reported as duplicate on first sight", id)
		}
	}
	if n := d.size(); n != 3 {
		t.Fatalf("size = %d, want 3", n)
	}
	later := now + int64(ttl)
	for i := range 3 {
		d.check(uint64(i), "ch", "new", later, ttl, DefaultDedupBytes)
	}
	if n := d.size(); n != 3 {
		t.Fatalf("size after expiry = %d, want 3 (only the new ids)", n)
	}
	for i := range d.shards {
		if got := len(d.shards[i].fifo) - d.shards[i].head; got > 1 {
			t.Fatalf("shard %d keeps %d fifo entries, want at most 1", i, got)
		}
	}
}

func TestDedupKeySeparatesChannelFromID(t *testing.T) {
	d := newDedup()
	if d.key("ab", "c") == d.key("a", "bc") {
		t.Fatal(`("ab","c") and ("a","bc") share a key`)
	}
	if d.check(0, "ab", "c", 0, time.Minute, DefaultDedupBytes) || d.check(0, "a", "bc", 0, time.Minute, DefaultDedupBytes) {
		t.Fatal("distinct pairs reported as duplicates")
	}
	if !d.check(0, "a", "bc", 1, time.Minute, DefaultDedupBytes) {
		t.Fatal("repeat not reported as duplicate")
	}
}

func TestDedupMapsShrinkAfterABurstExpires(t *testing.T) {
	d := newDedup()
	const ttl = time.Second
	const burst = 1_000_000
	for i := range burst {
		d.check(uint64(i), "ch", fmt.Sprint(i), 0, ttl, DefaultDedupBytes)
	}
	entries, peakBytes := d.sizes()
	if entries != burst {
		t.Fatalf("after the burst: %d entries, want %d", entries, burst)
	}
	// Once the burst expires, one publish per shard finds it gone.
	for i := range dedupShards {
		d.check(uint64(i), "ch", "after", int64(ttl), ttl, DefaultDedupBytes)
	}
	entries, bytes := d.sizes()
	if entries != dedupShards {
		t.Fatalf("after expiry: %d entries, want %d", entries, dedupShards)
	}
	if limit := dedupShards * dedupKeepMin * dedupEntryBytes; bytes > limit {
		t.Fatalf("after expiry the cache holds %d bytes (peak %d), want at most %d: maps not rebuilt", bytes, peakBytes, limit)
	}
	for i := range d.shards {
		if p := d.shards[i].peak; p > dedupKeepMin {
			t.Fatalf("shard %d still sized for %d entries", i, p)
		}
	}
}

func TestDedupStaysWithinItsByteBudget(t *testing.T) {
	d := newDedup()
	const budget = 1 << 20
	for i := range 200_000 {
		d.check(uint64(i), "ch", fmt.Sprint(i), 0, time.Minute, budget)
	}
	entries, _ := d.sizes()
	if entries*dedupEntryBytes > budget {
		t.Fatalf("%d ids (%d bytes) kept, budget %d", entries, entries*dedupEntryBytes, budget)
	}
	// The newest ids are the ones kept.
	if !d.check(199_999, "ch", "199999", 1, time.Minute, budget) {
		t.Fatal("the newest id was forgotten")
	}
}
