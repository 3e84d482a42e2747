package hub

import (
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
		if d.check(uint64(i), "ch", id, now, ttl) {
			t.Fatalf("%s reported as duplicate on first sight", id)
		}
	}
	if n := d.size(); n != 3 {
		t.Fatalf("size = %d, want 3", n)
	}
	later := now + int64(ttl)
	for i := range 3 {
		d.check(uint64(i), "ch", "new", later, ttl)
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
	if d.check(0, "ab", "c", 0, time.Minute) || d.check(0, "a", "bc", 0, time.Minute) {
		t.Fatal("distinct pairs reported as duplicates")
	}
	if !d.check(0, "a", "bc", 1, time.Minute) {
		t.Fatal("repeat not reported as duplicate")
	}
}
