package hub

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/caddy-grip/grip/formats"
)

// fakeBus records what the hub asks of it; it delivers published items to
// its receiver only when loop is set.
type fakeBus struct {
	mu        sync.Mutex
	recv      Receiver
	loop      bool
	calls     []string
	following map[string]bool
	published []*formats.Item
	closed    int
	failNext  error
}

func newFakeBus(recv Receiver, loop bool) *fakeBus {
	return &fakeBus{recv: recv, loop: loop, following: map[string]bool{}}
}

func (b *fakeBus) Publish(items []*formats.Item) error {
	b.mu.Lock()
	b.published = append(b.published, items...)
	loop := b.loop
	b.mu.Unlock()
	if loop {
		b.recv(items)
	}
	return nil
}

func (b *fakeBus) Follow(ch string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.failNext; err != nil {
		b.failNext = nil
		return err
	}
	b.calls = append(b.calls, "follow "+ch)
	b.following[ch] = true
	return nil
}

func (b *fakeBus) Unfollow(ch string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "unfollow "+ch)
	delete(b.following, ch)
	return nil
}

func (b *fakeBus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed++
	return nil
}

func (b *fakeBus) snapshot() (calls []string, following []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.following {
		following = append(following, ch)
	}
	slices.Sort(following)
	return slices.Clone(b.calls), following
}

func TestBusFollowsOnFirstSubscriberAndUnfollowsOnLast(t *testing.T) {
	h := New(Config{})
	bus := newFakeBus(h.Receive, true)
	h.SetBus(bus)
	a, b := NewSubscriber(KindStream), NewSubscriber(KindStream)
	h.Subscribe(a, "c")
	h.Subscribe(b, "c")
	h.Subscribe(b, "d")
	h.Unsubscribe(a, "c")
	h.Unsubscribe(b, "c")
	h.Unsubscribe(b, "d")
	calls, _ := bus.snapshot()
	wantIDs(t, "bus calls", calls, "follow c", "follow d", "unfollow c", "unfollow d")
}

func TestPublishGoesThroughTheBus(t *testing.T) {
	h := New(Config{})
	bus := newFakeBus(h.Receive, false)
	h.SetBus(bus)
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")

	publish(h, item("c", "1", ""))
	wantIDs(t, "before the bus delivers", taken(s))
	if len(bus.published) != 1 {
		t.Fatalf("bus got %d items, want 1", len(bus.published))
	}
	h.Receive(bus.published) // what the bus does on arrival
	wantIDs(t, "after the bus delivers", taken(s), "c:1")
	if st := h.Stats(); st.Published != 1 || st.Delivered != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestSetBusFollowsExistingChannelsAndClosesThePrevious(t *testing.T) {
	h := New(Config{})
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "a")
	h.Subscribe(s, "b")
	first := newFakeBus(h.Receive, true)
	h.SetBus(first)
	_, following := first.snapshot()
	wantIDs(t, "first bus follows", following, "a", "b")

	second := newFakeBus(h.Receive, true)
	h.SetBus(second)
	if first.closed != 1 {
		t.Fatalf("previous bus closed %d times, want 1", first.closed)
	}
	_, following = second.snapshot()
	wantIDs(t, "second bus follows", following, "a", "b")

	h.Close()
	if second.closed != 1 {
		t.Fatalf("bus closed %d times on hub Close, want 1", second.closed)
	}
	_, following = second.snapshot()
	wantIDs(t, "after Close", following)
}

func TestFailedFollowIsRetriedOnNextSubscribe(t *testing.T) {
	h := New(Config{})
	bus := newFakeBus(h.Receive, true)
	h.SetBus(bus)
	bus.failNext = errors.New("boom")
	a, b := NewSubscriber(KindStream), NewSubscriber(KindStream)
	h.Subscribe(a, "c")
	_, following := bus.snapshot()
	wantIDs(t, "after failed follow", following)

	h.Subscribe(b, "c") // the channel exists; the follow is retried
	calls, following := bus.snapshot()
	wantIDs(t, "after retry", following, "c")
	h.Subscribe(NewSubscriber(KindStream), "c")
	if again, _ := bus.snapshot(); len(again) != len(calls) {
		t.Fatalf("bus calls %q after a followed channel's Subscribe, want none new", again[len(calls):])
	}
}

func TestFollowStateSettlesUnderChurn(t *testing.T) {
	h := New(Config{})
	bus := newFakeBus(h.Receive, true)
	h.SetBus(bus)
	keep := NewSubscriber(KindStream)
	h.Subscribe(keep, "kept")

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				s := NewSubscriber(KindStream)
				ch := "ch" + strconv.Itoa((g+i)%5)
				h.Subscribe(s, ch)
				h.Subscribe(s, "kept")
				h.UnsubscribeAll(s)
			}
		}()
	}
	wg.Wait()
	_, following := bus.snapshot()
	wantIDs(t, "following after churn", following, "kept")
}

func TestLocalBusCallsItsReceiver(t *testing.T) {
	var got []*formats.Item
	b := NewLocalBus(func(items []*formats.Item) { got = append(got, items...) })
	it := item("c", "1", "")
	if err := b.Publish([]*formats.Item{it}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != it {
		t.Fatalf("receiver got %v", got)
	}
	for _, err := range []error{b.Follow("c"), b.Unfollow("c"), b.Close()} {
		if err != nil {
			t.Fatal(err)
		}
	}
}
