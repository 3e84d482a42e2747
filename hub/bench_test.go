package hub

import (
	"strconv"
	"testing"
	"time"

	"github.com/caddy-grip/grip/formats"
)

// BenchmarkFanout10k publishes one item to 10,000 stream subscribers on one
// channel; ns/delivery is the cost of one enqueue, with a Ready signal per
// subscriber (wake=each) or, as back-to-back publishes are under pacing,
// without (wake=paced). Draining the queues is outside the timer.
func BenchmarkFanout10k(b *testing.B) {
	for _, bc := range []struct {
		name string
		wake time.Duration
	}{{"wake=each", -1}, {"wake=paced", time.Hour}} {
		b.Run(bc.name, func(b *testing.B) { benchFanout(b, 10000, bc.wake) })
	}
}

func benchFanout(b *testing.B, subs int, wake time.Duration) {
	h := New(Config{WakeInterval: wake})
	all := make([]*Subscriber, subs)
	for i := range all {
		all[i] = NewSubscriber(KindStream)
		h.Subscribe(all[i], "c")
	}
	it := &formats.Item{Channel: "c", HTTPStream: &formats.HTTPStream{Content: []byte("data: hello\n\n")}}
	items := []*formats.Item{it}
	var buf []Delivery
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.Publish(items)
		b.StopTimer()
		for _, s := range all {
			buf = s.Take(buf[:0])
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
	if st := h.Stats(); st.Delivered != uint64(b.N*subs) {
		b.Fatalf("delivered %d, want %d", st.Delivered, b.N*subs)
	}
}

// BenchmarkPublishSmall publishes one small sequenced item (id and prev-id,
// so the sequencer runs) to a channel with one subscriber, and takes it.
// With de-dup on, every id stays cached for the whole run, so the cache grows
// with b.N: that sub-benchmark shows the cost at a cache of b.N ids.
func BenchmarkPublishSmall(b *testing.B) {
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"dedup=off", -1}, {"dedup=60s", time.Minute}} {
		b.Run(bc.name, func(b *testing.B) { benchPublishSmall(b, bc.ttl) })
	}
}

func benchPublishSmall(b *testing.B, ttl time.Duration) {
	h := New(Config{IDCacheTTL: ttl})
	s := NewSubscriber(KindWebSocket)
	h.Subscribe(s, "c")
	ids := make([]string, b.N+1)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	msg := &formats.WSMessage{Type: "text", Content: []byte(`{"n":1}`)}
	items := make([]formats.Item, b.N)
	for i := range items {
		items[i] = formats.Item{Channel: "c", ID: ids[i+1], PrevID: ids[i], WSMessage: msg}
	}
	one := make([]*formats.Item, 1)
	var buf []Delivery
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		one[0] = &items[i]
		h.Publish(one)
		buf = s.Take(buf[:0])
	}
	b.StopTimer()
	if st := h.Stats(); st.Delivered != uint64(b.N) || st.Reordered != 0 {
		b.Fatalf("stats %+v, want %d delivered in order", st, b.N)
	}
}
