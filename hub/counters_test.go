package hub

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddy-grip/grip/formats"
)

func TestCountersCountDeliveriesByTransportWithoutUpdateHints(t *testing.T) {
	h := New(Config{})
	resp, stream, ws := NewSubscriber(KindResponse), NewSubscriber(KindStream), NewSubscriber(KindWebSocket)
	for _, s := range []*Subscriber{resp, stream, ws} {
		h.Subscribe(s, "c")
	}
	h.Publish([]*formats.Item{item("c", "1", ""), item("c", "2", "1")})
	h.Update("c") // a hint to the two HTTP subscribers: not a delivery
	c := h.Counters()
	want := [NumKinds]uint64{KindResponse: 2, KindStream: 2, KindWebSocket: 2}
	if c.Delivered != want {
		t.Fatalf("Delivered = %v, want %v", c.Delivered, want)
	}
	if st := h.Stats(); st.Delivered != 6 {
		t.Fatalf("Stats.Delivered = %d, want the 6 of all transports", st.Delivered)
	}
	if c.Dropped != ([NumDropReasons]uint64{}) {
		t.Fatalf("Dropped = %v, want none (Update's hint lacks ws-message, and is not counted)", c.Dropped)
	}
}

func TestCountersCountDropsByReason(t *testing.T) {
	cases := []struct {
		name   string
		reason DropReason
		want   uint64
		run    func(t *testing.T, h *Hub)
	}{
		{"duplicate", DropDuplicate, 1, func(t *testing.T, h *Hub) {
			s := NewSubscriber(KindStream)
			h.Subscribe(s, "c")
			h.Publish([]*formats.Item{item("c", "1", ""), item("c", "1", "")})
		}},
		{"sequencer overflow: a second item on one prev-id", DropSequencerOverflow, 1, func(t *testing.T, h *Hub) {
			s := NewSubscriber(KindStream)
			h.Subscribe(s, "c")
			h.Publish([]*formats.Item{item("c", "1", ""), item("c", "3", "2"), item("c", "4", "2")})
		}},
		{"filtered, per subscriber", DropFiltered, 2, func(t *testing.T, h *Hub) {
			for _, user := range []string{"alice", "alice", "bob"} {
				s := NewSubscriber(KindStream)
				s.SetMeta(map[string]string{"user": user})
				s.SetFilters("c", []string{FilterSkipSelf})
				h.Subscribe(s, "c")
			}
			it := item("c", "", "")
			it.Meta = map[string]string{"sender": "alice"}
			h.Publish([]*formats.Item{it})
		}},
		{"no format, per subscriber", DropNoFormat, 2, func(t *testing.T, h *Hub) {
			for _, k := range []Kind{KindWebSocket, KindWebSocket, KindStream} {
				h.Subscribe(NewSubscriber(k), "c")
			}
			h.Publish([]*formats.Item{{Channel: "c", HTTPStream: &formats.HTTPStream{Content: []byte("x")}}})
		}},
		{"queue full: the item and the discarded queue", DropQueueFull, 3, func(t *testing.T, h *Hub) {
			h.Configure(Config{QueueItems: 2})
			s := NewSubscriber(KindStream)
			h.Subscribe(s, "c")
			h.Publish([]*formats.Item{item("c", "1", "")})
			h.Publish([]*formats.Item{item("c", "2", "")})
			h.Publish([]*formats.Item{item("c", "3", "")}) // over 2: 1, 2 and 3 are lost
			if s.Reason() != ReasonSlow {
				t.Fatalf("reason %v, want slow", s.Reason())
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Config{})
			tc.run(t, h)
			c := h.Counters()
			for r, n := range c.Dropped {
				want := uint64(0)
				if DropReason(r) == tc.reason {
					want = tc.want
				}
				if n != want {
					t.Errorf("Dropped[%v] = %d, want %d", DropReason(r), n, want)
				}
			}
		})
	}
}

func TestCountersCountASequencerTimeoutAsADropAndTheLateItemAsReordered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, s := seqHub(t, Config{MessageWait: time.Second})
		publish(h, item("c", "3", "2")) // 2 never comes
		time.Sleep(time.Second)
		synctest.Wait()
		wantIDs(t, "after MessageWait", taken(s), "c:3")
		if c := h.Counters(); c.Dropped[DropSequencerTimeout] != 1 {
			t.Fatalf("sequencer_timeout drops = %d, want 1", c.Dropped[DropSequencerTimeout])
		}
		if st := h.Stats(); st.Reordered != 1 {
			t.Fatalf("Reordered = %d, want 1", st.Reordered)
		}
	})
}

func TestCountersCountHoldsAndDisconnectsByTransportAndReason(t *testing.T) {
	h := New(Config{})
	h.HoldStarted(KindStream)
	h.HoldStarted(KindStream)
	h.HoldStarted(KindResponse)
	h.HoldEnded(KindStream, DisconnectClient)
	h.HoldEnded(KindResponse, DisconnectTimeout)
	h.HoldStarted(Kind(0)) // invalid: ignored
	h.HoldEnded(KindWebSocket, DisconnectReason(200))
	c := h.Counters()
	if want := ([NumKinds]int64{KindStream: 1}); c.Holds != want {
		t.Errorf("Holds = %v, want %v", c.Holds, want)
	}
	if want := ([NumKinds]uint64{KindStream: 2, KindResponse: 1}); c.HoldsTotal != want {
		t.Errorf("HoldsTotal = %v, want %v", c.HoldsTotal, want)
	}
	var want [NumKinds][NumDisconnectReasons]uint64
	want[KindStream][DisconnectClient] = 1
	want[KindResponse][DisconnectTimeout] = 1
	if c.Disconnects != want {
		t.Errorf("Disconnects = %v, want %v", c.Disconnects, want)
	}
	h.CountDrop(DropFiltered, 2)
	h.CountDrop(DropReason(99), 1)
	if got := h.Counters().Dropped[DropFiltered]; got != 2 {
		t.Errorf("filtered after CountDrop = %d, want 2", got)
	}
}

func TestDropAndDisconnectReasonNames(t *testing.T) {
	drops := []string{"duplicate", "sequencer_overflow", "sequencer_timeout", "filtered", "no_format", "queue_full"}
	for r := range NumDropReasons {
		if got := DropReason(r).String(); got != drops[r] {
			t.Errorf("DropReason(%d) = %q, want %q", r, got, drops[r])
		}
	}
	disc := []string{"client", "slow_consumer", "write_timeout", "publish_close", "timeout", "answered", "origin_close", "origin_error", "shutdown"}
	for r := range NumDisconnectReasons {
		if got := DisconnectReason(r).String(); got != disc[r] {
			t.Errorf("DisconnectReason(%d) = %q, want %q", r, got, disc[r])
		}
	}
	if ReasonSlow.Disconnect() != DisconnectSlowConsumer || ReasonDrain.Disconnect() != DisconnectShutdown || ReasonHubClosed.Disconnect() != DisconnectShutdown {
		t.Error("CloseReason.Disconnect maps wrongly")
	}
}
