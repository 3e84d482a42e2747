package hub

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-grip/grip/formats"
)

// item makes an item on ch carrying all three formats, with content = id.
func item(ch, id, prev string) *formats.Item {
	body := []byte(id)
	return &formats.Item{
		Channel:      ch,
		ID:           id,
		PrevID:       prev,
		HTTPResponse: &formats.HTTPResponse{Body: body},
		HTTPStream:   &formats.HTTPStream{Content: body},
		WSMessage:    &formats.WSMessage{Type: "text", Content: body},
	}
}

// ids lists "channel:id" of each delivery.
func ids(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Channel + ":" + d.Item.ID
	}
	return out
}

// taken drains s and returns "channel:id" of what was queued.
func taken(s *Subscriber) []string { return ids(s.Take(nil)) }

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

// eventually polls cond until it holds; the test's own timeout bounds it.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func isClosed(s *Subscriber) bool { return signalled(s.Closed()) }

// signalled reports, without waiting, whether ch can be received from
// (consuming a token if it holds one).
func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestDeliveriesComeOutInPublishOrder(t *testing.T) {
	h := New(Config{})
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "a")
	h.Subscribe(s, "b")

	h.Publish([]*formats.Item{item("a", "a1", ""), item("b", "b1", ""), item("a", "a2", "a1")})
	h.Publish([]*formats.Item{item("b", "b2", "b1")})
	h.Publish([]*formats.Item{item("a", "a3", "a2"), item("a", "a4", "a3")})

	wantIDs(t, "deliveries", taken(s), "a:a1", "b:b1", "a:a2", "b:b2", "a:a3", "a:a4")
	wantIDs(t, "after Take", taken(s))
}

func TestEachKindReceivesOnlyItsFormat(t *testing.T) {
	body := []byte("x")
	cases := []struct {
		name string
		it   *formats.Item
		want map[Kind]bool
	}{
		{"response only", &formats.Item{HTTPResponse: &formats.HTTPResponse{Body: body}}, map[Kind]bool{KindResponse: true}},
		{"stream only", &formats.Item{HTTPStream: &formats.HTTPStream{Content: body}}, map[Kind]bool{KindStream: true}},
		{"ws only", &formats.Item{WSMessage: &formats.WSMessage{Content: body}}, map[Kind]bool{KindWebSocket: true}},
		{"stream and ws", &formats.Item{HTTPStream: &formats.HTTPStream{}, WSMessage: &formats.WSMessage{}}, map[Kind]bool{KindStream: true, KindWebSocket: true}},
		{"all", item("", "", ""), map[Kind]bool{KindResponse: true, KindStream: true, KindWebSocket: true}},
		{"none", &formats.Item{}, map[Kind]bool{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Config{})
			subs := map[Kind]*Subscriber{}
			for _, k := range []Kind{KindResponse, KindStream, KindWebSocket} {
				subs[k] = NewSubscriber(k)
				h.Subscribe(subs[k], "c")
			}
			tc.it.Channel = "c"
			h.Publish([]*formats.Item{tc.it})
			for k, s := range subs {
				got := s.Take(nil)
				if (len(got) == 1) != tc.want[k] || len(got) > 1 {
					t.Errorf("%v subscriber got %d deliveries, want delivered=%v", k, len(got), tc.want[k])
				}
				if len(got) == 1 && got[0].Item != tc.it {
					t.Errorf("%v subscriber got another item", k)
				}
			}
		})
	}
}

func TestInvalidKindIsNeverSubscribed(t *testing.T) {
	h := New(Config{})
	s := NewSubscriber(Kind(9))
	h.Subscribe(s, "c")
	h.Publish([]*formats.Item{item("c", "1", "")})
	if got := s.Channels(); len(got) != 0 {
		t.Fatalf("channels = %q, want none", got)
	}
	if st := h.Stats(); st.Channels != 0 || st.Subscribers != 0 {
		t.Fatalf("stats = %+v, want no channels or subscribers", st)
	}
}

func TestDrainAndCloseEndSubscribersWithTheirReason(t *testing.T) {
	cases := []struct {
		name   string
		end    func(*Hub)
		reason CloseReason
	}{
		{"drain", (*Hub).Drain, ReasonDrain},
		{"close", (*Hub).Close, ReasonHubClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Config{})
			a, b := NewSubscriber(KindStream), NewSubscriber(KindWebSocket)
			h.Subscribe(a, "x")
			h.Subscribe(a, "y")
			h.Subscribe(b, "y")
			h.Publish([]*formats.Item{item("x", "1", "")})

			tc.end(h)

			for _, s := range []*Subscriber{a, b} {
				if !isClosed(s) || s.Reason() != tc.reason {
					t.Fatalf("closed=%v reason=%v, want closed with %v", isClosed(s), s.Reason(), tc.reason)
				}
				if ch := s.Channels(); len(ch) != 0 {
					t.Fatalf("still subscribed to %q", ch)
				}
			}
			// What was queued before the end is still handed over.
			wantIDs(t, "queued before end", taken(a), "x:1")
			if st := h.Stats(); st.Channels != 0 || st.Subscribers != 0 {
				t.Fatalf("stats = %+v, want empty hub", st)
			}
		})
	}
}

func TestSubscribeAfterDrainOrCloseEndsAtOnce(t *testing.T) {
	h := New(Config{})
	h.Drain()
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")
	if !isClosed(s) || s.Reason() != ReasonDrain {
		t.Fatalf("subscriber after Drain: closed=%v reason=%v, want drain", isClosed(s), s.Reason())
	}
	if st := h.Stats(); st.Subscribers != 0 {
		t.Fatalf("stats = %+v, want no subscribers", st)
	}
	h.Close()
	late := NewSubscriber(KindStream)
	h.Subscribe(late, "c")
	if !isClosed(late) || late.Reason() != ReasonHubClosed {
		t.Fatalf("late subscriber: closed=%v reason=%v", isClosed(late), late.Reason())
	}
	if st := h.Stats(); st.Channels != 0 || st.Subscribers != 0 {
		t.Fatalf("stats = %+v, want empty hub", st)
	}
	h.Close() // idempotent
}

func TestStatsCountChannelsSubscribersAndDeliveries(t *testing.T) {
	h := New(Config{})
	a, b := NewSubscriber(KindStream), NewSubscriber(KindStream)
	h.Subscribe(a, "x")
	h.Subscribe(a, "y")
	h.Subscribe(b, "y")
	h.Subscribe(b, "y") // idempotent
	h.Publish([]*formats.Item{item("y", "1", ""), item("nobody", "2", "")})

	want := Stats{Channels: 2, Subscribers: 2, Published: 2, Delivered: 2,
		DedupEntries: 2, LastIDEntries: 2, LastIDBytes: lastIDCost("y", "1") + lastIDCost("nobody", "2")}
	st := h.Stats()
	if st.DedupBytes < 2*dedupEntryBytes {
		t.Fatalf("DedupBytes = %d for 2 ids, want at least %d", st.DedupBytes, 2*dedupEntryBytes)
	}
	st.DedupBytes = 0
	if st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}
	h.Unsubscribe(a, "y")
	h.UnsubscribeAll(b)
	want.Channels, want.Subscribers = 1, 1
	if st := h.Stats(); st.DedupBytes == 0 || func() bool { st.DedupBytes = 0; return st != want }() {
		t.Fatalf("after unsubscribe stats = %+v, want %+v", st, want)
	}
	if got := a.Channels(); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("a.Channels() = %q, want [x]", got)
	}
}

// TestConcurrentChurnLosesNothingForSteadySubscribers: 200 subscribers present
// throughout each receive 100 sequenced items in order, while others
// subscribe and unsubscribe on the same and other channels.
func TestConcurrentChurnLosesNothingForSteadySubscribers(t *testing.T) {
	const steady, items = 200, 100
	h := New(Config{})
	kinds := []Kind{KindResponse, KindStream, KindWebSocket}
	subs := make([]*Subscriber, steady)
	for i := range subs {
		subs[i] = NewSubscriber(kinds[i%3])
		h.Subscribe(subs[i], "c")
	}

	stop := make(chan struct{})
	var churn sync.WaitGroup
	for g := range 4 {
		churn.Add(1)
		go func() {
			defer churn.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := NewSubscriber(kinds[(g+i)%3])
				h.Subscribe(s, "c")
				h.Subscribe(s, "other"+strconv.Itoa(i%7))
				s.Take(nil)
				h.LastID("c")
				h.Stats()
				if i%2 == 0 {
					h.Unsubscribe(s, "c")
				}
				h.UnsubscribeAll(s)
			}
		}()
	}

	var readers sync.WaitGroup
	errs := make(chan error, steady)
	for _, s := range subs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			var got []Delivery
			for len(got) < items {
				select {
				case <-s.Ready():
					got = s.Take(got)
				case <-s.Closed():
					errs <- fmt.Errorf("%v subscriber closed: %v", s.Kind(), s.Reason())
					return
				}
			}
			for i, d := range got {
				if want := strconv.Itoa(i); d.Item.ID != want || len(got) != items {
					errs <- fmt.Errorf("%v subscriber: delivery %d is %q, want %q (of %d)", s.Kind(), i, d.Item.ID, want, len(got))
					return
				}
			}
		}()
	}

	prev := ""
	for i := range items {
		id := strconv.Itoa(i)
		h.Publish([]*formats.Item{item("c", id, prev)})
		prev = id
	}
	readers.Wait()
	close(stop)
	churn.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := h.Stats(); st.Subscribers != steady || st.Channels != 1 {
		t.Fatalf("after churn stats = %+v, want %d subscribers on 1 channel", st, steady)
	}
}

func TestConfigureWhilePublishingKeepsDelivering(t *testing.T) {
	const n = 1000
	h := New(Config{})
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			h.Configure(Config{
				QueueItems:   2*n + i%n,
				IDCacheTTL:   time.Duration(i%3-1) * time.Minute, // -1m, 0 (default), 1m
				MessageWait:  time.Duration(1+i%5) * time.Second,
				SequencerMax: 1 + i%200,
			})
		}
	}()

	prev := ""
	for i := range n {
		id := strconv.Itoa(i)
		h.Publish([]*formats.Item{item("c", id, prev)})
		prev = id
	}
	close(stop)
	wg.Wait()

	got := s.Take(nil)
	if len(got) != n {
		t.Fatalf("got %d deliveries, want %d", len(got), n)
	}
	for i, d := range got {
		if d.Item.ID != strconv.Itoa(i) {
			t.Fatalf("delivery %d is %q", i, d.Item.ID)
		}
	}

	// The last configuration is the one in force.
	h.Configure(Config{QueueItems: 1})
	h.Publish([]*formats.Item{item("c", "x", ""), item("c", "y", "x")})
	if s.Reason() != ReasonSlow {
		t.Fatalf("reason = %v after exceeding QueueItems 1, want slow", s.Reason())
	}
}

func TestConfigWithDefaults(t *testing.T) {
	got := Config{IDCacheTTL: -1}.WithDefaults()
	want := Config{QueueBytes: 1 << 20, QueueItems: 1000, IDCacheTTL: -1, MessageWait: 5 * time.Second, SequencerMax: 100, WakeInterval: 10 * time.Millisecond,
		SequencerBytes: 4 << 20, DedupBytes: 64 << 20, LastIDBytes: 64 << 20}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("WithDefaults = %+v, want %+v", got, want)
	}
	if got := (Config{}).WithDefaults().IDCacheTTL; got != 60*time.Second {
		t.Fatalf("default IDCacheTTL = %v, want 60s", got)
	}
	keep := Config{QueueBytes: 7, QueueItems: 8, IDCacheTTL: time.Second, MessageWait: time.Millisecond, SequencerMax: 3, WakeInterval: -1,
		SequencerBytes: 9, DedupBytes: 10, LastIDBytes: 11}
	if got := keep.WithDefaults(); !reflect.DeepEqual(got, keep) {
		t.Fatalf("WithDefaults changed set fields: %+v", got)
	}
}

func TestDisconnectSlowEndsCountsAndUnsubscribes(t *testing.T) {
	h := New(Config{})
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")
	h.DisconnectSlow(s, errors.New("write timed out"))
	h.DisconnectSlow(s, errors.New("again")) // counted once
	if !isClosed(s) || s.Reason() != ReasonSlow {
		t.Fatalf("closed=%v reason=%v", isClosed(s), s.Reason())
	}
	if st := h.Stats(); st.SlowDisconnects != 1 || st.Subscribers != 0 {
		t.Fatalf("stats = %+v", st)
	}
}
