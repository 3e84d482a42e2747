package hub

import (
	"bytes"
	"testing"

	"github.com/caddy-grip/grip/formats"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestReadySignalsWhenDeliveriesBecomePending(t *testing.T) {
	h := New(Config{})
	s := NewSubscriber(KindWebSocket)
	h.Subscribe(s, "c")
	select {
	case <-s.Ready():
		t.Fatal("Ready signalled with nothing pending")
	default:
	}
	h.Publish([]*formats.Item{item("c", "1", ""), item("c", "2", "1")})
	<-s.Ready()
	wantIDs(t, "first batch", taken(s), "c:1", "c:2")
	h.Publish([]*formats.Item{item("c", "3", "2")})
	<-s.Ready()
	wantIDs(t, "second batch", taken(s), "c:3")
}

func TestSlowSubscriberIsDisconnectedAndOthersUnaffected(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1000) // Cost 64+1+1000+1000 = 2065
	cases := []struct {
		name string
		cfg  Config
		n    int // items published; the last one overflows
	}{
		{"items limit", Config{QueueItems: 3}, 4},
		{"bytes limit", Config{QueueBytes: 5000}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			h := New(tc.cfg)
			h.SetLogger(zap.New(core))
			slow, fast := NewSubscriber(KindStream), NewSubscriber(KindWebSocket)
			h.Subscribe(slow, "c")
			h.Subscribe(slow, "d")
			h.Subscribe(fast, "c")

			var want []string
			for i := range tc.n {
				it := item("c", string(rune('a'+i)), "")
				it.HTTPStream.Content, it.WSMessage.Content = big, big
				h.Publish([]*formats.Item{it})
				want = append(want, "c:"+it.ID)
				wantIDs(t, "fast subscriber", taken(fast), want[len(want)-1])
			}

			if !isClosed(slow) || slow.Reason() != ReasonSlow {
				t.Fatalf("slow subscriber: closed=%v reason=%v", isClosed(slow), slow.Reason())
			}
			if ch := slow.Channels(); len(ch) != 0 {
				t.Fatalf("slow subscriber still on %q", ch)
			}
			wantIDs(t, "slow subscriber queue after disconnect", taken(slow))

			h.Publish([]*formats.Item{item("c", "later", ""), item("d", "later", "")})
			wantIDs(t, "slow subscriber after disconnect", taken(slow))
			wantIDs(t, "fast subscriber after disconnect", taken(fast), "c:later")
			if isClosed(fast) {
				t.Fatal("fast subscriber was closed")
			}

			st := h.Stats()
			if st.SlowDisconnects != 1 || st.Subscribers != 1 || st.Channels != 1 {
				t.Fatalf("stats = %+v, want 1 slow disconnect, 1 subscriber on 1 channel", st)
			}
			entries := logs.FilterMessage("disconnecting slow subscriber").All()
			if len(entries) != 1 || entries[0].Level != zapcore.DebugLevel {
				t.Fatalf("log entries = %+v, want one debug line (the holder warns, with the request)", logs.All())
			}
			fields := entries[0].ContextMap()
			if fields["kind"] != "stream" || fields["channel"] != "c" {
				t.Fatalf("log fields = %v, want kind=stream channel=c", fields)
			}
		})
	}
}

func TestLoneLargeItemIsNotSlowness(t *testing.T) {
	h := New(Config{QueueBytes: 100})
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")
	it := item("c", "1", "")
	it.HTTPStream.Content = bytes.Repeat([]byte("x"), 500)
	h.Publish([]*formats.Item{it})
	if isClosed(s) {
		t.Fatal("a single item over QueueBytes into an empty queue closed the subscriber")
	}
	wantIDs(t, "deliveries", taken(s), "c:1")
}

func TestEnqueueOverflowEndsSubscriberAndDropsQueue(t *testing.T) {
	s := NewSubscriber(KindStream)
	it := item("c", "1", "")
	for range 3 {
		if r, _ := s.enqueue("c", it, it.Cost(), 3, 1<<20, true, nil); r != enqueueDone {
			t.Fatalf("enqueue = %v, want done", r)
		}
	}
	if r, lost := s.enqueue("c", it, it.Cost(), 3, 1<<20, true, nil); r != enqueueOverflowed || lost != 4 {
		t.Fatalf("fourth enqueue = %v losing %d, want overflowed losing 4 (3 queued and itself)", r, lost)
	}
	if r, _ := s.enqueue("c", it, it.Cost(), 3, 1<<20, true, nil); r != enqueueSkipped {
		t.Fatalf("enqueue after end = %v, want skipped", r)
	}
	if got := s.Take(nil); len(got) != 0 {
		t.Fatalf("Take after slow end returned %d deliveries", len(got))
	}
}

func TestKindAndReasonNames(t *testing.T) {
	cases := []struct{ got, want string }{
		{KindResponse.String(), "response"},
		{KindStream.String(), "stream"},
		{KindWebSocket.String(), "websocket"},
		{Kind(0).String(), "unknown"},
		{ReasonNone.String(), "none"},
		{ReasonSlow.String(), "slow"},
		{ReasonDrain.String(), "drain"},
		{ReasonHubClosed.String(), "hub-closed"},
		{CloseReason(42).String(), "unknown"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("name %q, want %q", tc.got, tc.want)
		}
	}
}
