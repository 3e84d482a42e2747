package hub

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddy-grip/grip/formats"
)

func TestMissedUpdatesChannelsPacedAndOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(Config{WakeInterval: -1})
		defer h.Close()
		const channels = 3 * recoverBatch
		subs := make([]*Subscriber, channels)
		var names []string
		for i := range subs {
			subs[i] = NewSubscriber(KindResponse)
			names = append(names, fmt.Sprint("ch", i))
			h.Subscribe(subs[i], names[i])
		}
		// Reported twice in one call: each channel is updated once.
		h.Missed(append(names, names...))
		hinted := func() int {
			n := 0
			for _, s := range subs {
				if s.Pending() {
					n++
				}
			}
			return n
		}
		synctest.Wait()
		if got := hinted(); got != recoverBatch {
			t.Fatalf("updated %d channels at once, want the first batch of %d", got, recoverBatch)
		}
		// Reported again while still queued: still once.
		h.Missed(names[recoverBatch+5:])
		time.Sleep(recoverTick)
		synctest.Wait()
		if got := hinted(); got != 2*recoverBatch {
			t.Fatalf("after one tick %d channels updated, want %d", got, 2*recoverBatch)
		}
		time.Sleep(2 * recoverTick)
		synctest.Wait()
		for i, s := range subs {
			if got := s.Take(nil); len(got) != 1 || got[0].Item.HTTPResponse.Action != formats.ActionHint {
				t.Fatalf("channel %d got %d deliveries, want one hint", i, len(got))
			}
		}
	})
}
