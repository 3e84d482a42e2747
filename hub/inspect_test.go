package hub

import (
	"fmt"
	"testing"

	"github.com/caddy-grip/grip/formats"
)

func TestChannelsListsTheLargestFirstWithinTheLimit(t *testing.T) {
	h := New(Config{WakeInterval: -1})
	defer h.Close()
	// Channel "c<i>" gets i stream subscribers, and one response hold each.
	for i := 1; i <= 20; i++ {
		name := fmt.Sprint("c", i)
		for range i {
			h.Subscribe(NewSubscriber(KindStream), name)
		}
		h.Subscribe(NewSubscriber(KindResponse), name)
	}
	h.Subscribe(NewSubscriber(KindWebSocket), "other")
	if err := h.Publish([]*formats.Item{{Channel: "c20", ID: "last", HTTPStream: &formats.HTTPStream{Content: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	top, matched := h.Channels("c", 3)
	if matched != 20 || len(top) != 3 {
		t.Fatalf("matched %d, listed %d; want 20 and 3", matched, len(top))
	}
	for i, want := range []string{"c20", "c19", "c18"} {
		if top[i].Name != want {
			t.Fatalf("position %d is %q, want %q (%+v)", i, top[i].Name, want, top)
		}
	}
	if c := top[0]; c.Stream != 20 || c.Response != 1 || c.Subscribers != 21 || c.LastID != "last" || !c.LastIDKnown {
		t.Fatalf("c20: %+v", c)
	}
	if all, n := h.Channels("", 100); n != 21 || len(all) != 21 || all[20].Name != "other" || all[20].WebSocket != 1 {
		t.Fatalf("all: %d listed of %d, last %+v", len(all), n, all[len(all)-1])
	}
	if none, n := h.Channels("zz", 10); n != 0 || len(none) != 0 {
		t.Fatalf("prefix zz: %+v", none)
	}
}

func TestChannelIsFoundBySubscribersOrLastID(t *testing.T) {
	h := New(Config{WakeInterval: -1})
	defer h.Close()
	h.Subscribe(NewSubscriber(KindStream), "live")
	if err := h.Publish([]*formats.Item{{Channel: "gone", ID: "v9", HTTPStream: &formats.HTTPStream{Content: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	if c, ok := h.Channel("live"); !ok || c.Stream != 1 || c.LastIDKnown {
		t.Fatalf("live: %+v %v", c, ok)
	}
	if c, ok := h.Channel("gone"); !ok || c.Subscribers != 0 || c.LastID != "v9" {
		t.Fatalf("gone: %+v %v", c, ok)
	}
	if _, ok := h.Channel("never"); ok {
		t.Fatal("a channel never seen was found")
	}
}

func BenchmarkChannelsOver10000Subscribers(b *testing.B) {
	h := New(Config{WakeInterval: -1})
	defer h.Close()
	for i := range 10000 {
		h.Subscribe(NewSubscriber(KindStream), fmt.Sprint("ch", i%2000))
	}
	b.ResetTimer()
	for b.Loop() {
		if top, n := h.Channels("", 100); len(top) != 100 || n != 2000 {
			b.Fatal(len(top), n)
		}
	}
}
