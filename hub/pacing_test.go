package hub

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddy-grip/grip/formats"
)

const testWake = 10 * time.Millisecond

// wokenNow reports whether s has a Ready token, and consumes it.
func wokenNow(s *Subscriber) bool { return signalled(s.Ready()) }

// pacedHub returns a hub with WakeInterval testWake and n stream
// subscribers on "c", after a first publish that every one has taken, so
// that the channel has just finished a round.
func pacedHub(t *testing.T, n int) (*Hub, []*Subscriber) {
	t.Helper()
	h := New(Config{WakeInterval: testWake})
	subs := make([]*Subscriber, n)
	for i := range subs {
		subs[i] = NewSubscriber(KindStream)
		h.Subscribe(subs[i], "c")
	}
	publish(h, item("c", "1", ""))
	for i, s := range subs {
		if !wokenNow(s) {
			t.Fatalf("subscriber %d: first publish did not wake it at once", i)
		}
		wantIDs(t, "first publish", taken(s), "c:1")
	}
	return h, subs
}

func TestPublishesInsideWakeIntervalWakeOnceWithAllInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, subs := pacedHub(t, 3)
		publish(h, item("c", "2", "1"))
		time.Sleep(testWake / 2)
		publish(h, item("c", "3", "2"), item("c", "4", "3"))
		synctest.Wait()
		for _, s := range subs {
			if wokenNow(s) {
				t.Fatal("a publish inside the interval woke a subscriber")
			}
		}
		time.Sleep(testWake / 2)
		synctest.Wait()
		for _, s := range subs {
			if !wokenNow(s) {
				t.Fatal("the interval ended without a wake")
			}
			wantIDs(t, "one wake", taken(s), "c:2", "c:3", "c:4")
			if wokenNow(s) {
				t.Fatal("woken twice")
			}
		}
	})
}

func TestPublishAfterQuietSpellWakesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, subs := pacedHub(t, 2)
		time.Sleep(testWake)
		publish(h, item("c", "2", "1"))
		for _, s := range subs {
			if !wokenNow(s) {
				t.Fatal("a publish after a quiet spell did not wake at once")
			}
			wantIDs(t, "after quiet", taken(s), "c:2")
		}
	})
}

func TestNegativeWakeIntervalWakesOnEveryPublish(t *testing.T) {
	h := New(Config{WakeInterval: -1})
	s := NewSubscriber(KindStream)
	h.Subscribe(s, "c")
	for _, id := range []string{"1", "2", "3"} {
		publish(h, item("c", id, ""))
		if !wokenNow(s) {
			t.Fatalf("publish %s did not wake at once", id)
		}
		wantIDs(t, "unpaced", taken(s), "c:"+id)
	}
}

func TestUpdateWakesAtOnceWithHeldDeliveries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, subs := pacedHub(t, 1)
		s := subs[0]
		publish(h, item("c", "2", "1"))
		if wokenNow(s) {
			t.Fatal("publish inside the interval woke at once")
		}
		h.Update("c")
		if !wokenNow(s) {
			t.Fatal("Update did not wake at once")
		}
		got := s.Take(nil)
		if len(got) != 2 || got[0].Item.ID != "2" || got[1].Item.HTTPStream.Action != formats.ActionHint {
			t.Fatalf("deliveries %q, want c:2 then the hint", ids(got))
		}
	})
}

func TestDrainEndsAtOnceAndKeepsHeldDeliveries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, subs := pacedHub(t, 1)
		s := subs[0]
		publish(h, item("c", "2", "1"))
		h.Drain()
		if !isClosed(s) || s.Reason() != ReasonDrain {
			t.Fatalf("closed=%v reason=%v, want drained at once", isClosed(s), s.Reason())
		}
		wantIDs(t, "after drain", taken(s), "c:2")
	})
}

func TestUnsubscribeWakesWhatTheChannelHeldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, subs := pacedHub(t, 2)
		publish(h, item("c", "2", "1"))
		h.Unsubscribe(subs[0], "c")
		if !wokenNow(subs[0]) {
			t.Fatal("leaving the channel did not wake the subscriber")
		}
		wantIDs(t, "left", taken(subs[0]), "c:2")
		if wokenNow(subs[1]) {
			t.Fatal("another subscriber was woken early")
		}
	})
}

func TestNextRoundWaitsForTheLastToBeTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, subs := pacedHub(t, 2)
		fast, slow := subs[0], subs[1]
		time.Sleep(testWake)
		publish(h, item("c", "2", "1")) // a round: both woken
		if !wokenNow(fast) || !wokenNow(slow) {
			t.Fatal("publish after a quiet spell did not wake both")
		}
		wantIDs(t, "fast takes", taken(fast), "c:2")
		publish(h, item("c", "3", "2"))
		time.Sleep(testWake / 2)
		synctest.Wait()
		if wokenNow(fast) {
			t.Fatal("a round began while the last one was still being taken")
		}
		wantIDs(t, "slow takes", taken(slow), "c:2", "c:3")
		time.Sleep(testWake/2 + testWake/4)
		synctest.Wait()
		if wokenNow(fast) {
			t.Fatal("a round began less than WakeInterval after the last take")
		}
		time.Sleep(testWake / 4)
		synctest.Wait()
		if !wokenNow(fast) {
			t.Fatal("no round WakeInterval after the last one was taken")
		}
		wantIDs(t, "fast, next round", taken(fast), "c:3")
	})
}

func TestStuckHolderDefersTheChannelAtMostOneInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, subs := pacedHub(t, 2)
		fast := subs[0] // subs[1] never takes again
		time.Sleep(testWake)
		publish(h, item("c", "2", "1"))
		wokenNow(fast)
		wantIDs(t, "fast takes", taken(fast), "c:2")
		start := time.Now()
		publish(h, item("c", "3", "2"))
		for !wokenNow(fast) {
			time.Sleep(time.Millisecond)
			synctest.Wait()
		}
		if d := time.Since(start); d > testWake {
			t.Fatalf("woken after %v, want at most %v", d, testWake)
		}
		wantIDs(t, "after the stuck one was left out", taken(fast), "c:3")
		// The channel is still paced: a publish inside the interval waits.
		publish(h, item("c", "4", "3"))
		if wokenNow(fast) {
			t.Fatal("a stuck holder left the channel unpaced")
		}
	})
}

// Holders that stop reading (stuck in a write to a client that reads
// nothing) must neither make healthy holders of the same channel overflow
// nor delay them beyond a round, at any share of stuck ones.
func TestStalledSubscribersDoNotDelayOrOverflowHealthyOnes(t *testing.T) {
	const step = time.Millisecond // publish rate: 1,000 items/s
	for _, stalled := range []int{1, 4, 20} {
		t.Run(fmt.Sprint(stalled, " stalled"), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const healthy = 200
				h := New(Config{WakeInterval: testWake, QueueItems: 50})
				var good, stuck []*Subscriber
				for i := range healthy + stalled {
					s := NewSubscriber(KindStream)
					h.Subscribe(s, "c")
					if i < healthy {
						good = append(good, s)
					} else {
						stuck = append(stuck, s)
					}
				}
				sent := map[string]time.Time{}
				var worst time.Duration
				prev := ""
				for k := 1; k <= 2000; k++ {
					id := fmt.Sprint(k)
					sent[id] = time.Now()
					publish(h, item("c", id, prev))
					prev = id
					if k == 1 {
						for _, s := range stuck {
							s.Take(nil) // took the first, then stuck mid-write
						}
					}
					synctest.Wait()
					for i, s := range good {
						if isClosed(s) {
							t.Fatalf("healthy subscriber %d ended (%v) after %d publishes", i, s.Reason(), k)
						}
						if !wokenNow(s) {
							continue
						}
						for _, d := range s.Take(nil) {
							worst = max(worst, time.Since(sent[d.Item.ID]))
						}
					}
					time.Sleep(step)
				}
				if limit := 2*testWake + step; worst > limit {
					t.Fatalf("healthy subscribers waited up to %v for an item, want at most %v", worst, limit)
				}
			})
		})
	}
}
